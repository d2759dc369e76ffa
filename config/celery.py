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
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutting_down,
)
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


@worker_process_init.connect
def _start_tracing(**kwargs):
    from wafaa.otel import init_otel

    init_otel(service_name="wafaa-worker")


@worker_init.connect
def _ingest_memory_ceiling(sender=None, **kwargs):
    """A worker that consumes `ingest` recycles a pool process grown past
    INGEST_WORKER_MAX_MEMORY_PER_CHILD_MB (checked after each task; the hard ceiling during a
    task is the extraction child's RLIMIT_AS, see knowledge.sandbox)."""
    from django.conf import settings

    limit_mb = settings.INGEST_WORKER_MAX_MEMORY_PER_CHILD_MB
    queues = getattr(getattr(sender, "app", None), "amqp", None)
    consumed = set(queues.queues.consume_from or {}) if queues else set()
    if limit_mb and "ingest" in consumed and not getattr(sender, "max_memory_per_child", None):
        sender.max_memory_per_child = limit_mb * 1024  # Celery counts KiB
        logging.getLogger("wafaa.worker").info(
            "ingest pool processes are replaced after a task past %s MB", limit_mb
        )


@worker_init.connect
def _serve_worker_metrics(**kwargs):
    """Serve this worker's metrics (all its pool processes) on WORKER_METRICS_PORT, if set.

    Under docker-compose each worker container has its own metrics directory, which the web
    container's /metrics cannot read; Prometheus scrapes each worker here instead.
    """
    from django.conf import settings

    if not settings.WORKER_METRICS_PORT:
        return
    from prometheus_client import start_http_server

    from wafaa.metrics_export import scrape_registry

    start_http_server(settings.WORKER_METRICS_PORT, registry=scrape_registry())
    logging.getLogger("wafaa.worker").info(
        "worker metrics on port %s", settings.WORKER_METRICS_PORT
    )


@worker_process_shutdown.connect
def _metrics_process_dead(pid=None, **kwargs):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
