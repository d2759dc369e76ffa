"""The Celery app: tasks run inside the client schema they were sent from.

tenant-schemas-celery stamps the current schema on every task's headers and switches to it
before the task runs. Our base task (wafaa.tasks.WafaaTask) adds the trace id, a delivery
cap for tasks that keep killing their worker, and a loud failure for client tasks sent from
the public schema. Reliability settings (late acks, reject on worker loss, prefetch 1,
visibility timeout, time limits) are in config.settings under CELERY_*.
"""

import logging
import os

from celery import bootsteps
from celery.signals import worker_shutting_down
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = CeleryApp("wafaa", task_cls="wafaa.tasks:WafaaTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class HeartbeatStep(bootsteps.StartStopStep):
    """Writes this worker's heartbeat to Redis on a timer (read by /health)."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        self.tref = None

    def start(self, worker):
        from django.conf import settings

        interval = settings.CELERY_WORKER_HEARTBEAT_SECONDS
        self._beat(worker)
        self.tref = worker.timer.call_repeatedly(interval, self._beat, (worker,), priority=10)

    def stop(self, worker):
        if self.tref:
            self.tref.cancel()
        try:
            from wafaa import heartbeat
            from wafaa.redis import get_redis

            heartbeat.forget(get_redis(), worker.hostname)
        except Exception:  # stopping must not fail because Redis is gone
            logging.getLogger("wafaa.heartbeat").debug("could not remove worker heartbeat")

    def _beat(self, worker):
        from wafaa import heartbeat
        from wafaa.redis import get_redis

        try:
            heartbeat.beat(get_redis(), worker.hostname)
        except Exception:
            logging.getLogger("wafaa.heartbeat").warning("could not write worker heartbeat")


app.steps["worker"].add(HeartbeatStep)


@worker_shutting_down.connect
def _log_shutdown(sig=None, how=None, exitcode=None, **kwargs):
    import logging

    logging.getLogger("wafaa.worker").info(
        "worker shutting down; unfinished tasks go back to the queue (late acks)",
        extra={"signal": sig, "how": how},
    )
