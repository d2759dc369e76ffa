"""The Celery app: tasks run inside the client schema they were sent from.

tenant-schemas-celery stamps the current schema on every task's headers and switches to it
before the task runs. Our base task (wafaa.tasks.WafaaTask) adds the trace id, a delivery
cap for tasks that keep killing their worker, and a loud failure for client tasks sent from
the public schema. Reliability settings (late acks, reject on worker loss, prefetch 1,
visibility timeout, time limits) are in config.settings under CELERY_*.
"""

import logging
import os
import threading

from celery import bootsteps
from celery.signals import (
    task_internal_error,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutting_down,
)
from tenant_schemas_celery.app import CeleryApp, switch_schema

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from wafaa import kombu_patch

kombu_patch.install()

app = CeleryApp("wafaa", task_cls="wafaa.tasks:WafaaTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class HeartbeatStep(bootsteps.StartStopStep):
    """Writes this worker's heartbeat, with its own database and broker checks, to Redis
    (read by /health). The checks may wait up to their timeouts while something is down, so
    they run in a thread of their own, never in the worker's event loop."""

    def __init__(self, worker, **kwargs):
        self.thread = None
        self.stopping = threading.Event()

    def start(self, worker):
        from django.conf import settings

        interval = settings.CELERY_WORKER_HEARTBEAT_SECONDS
        self.stopping.clear()
        self._beat(worker)
        self.thread = threading.Thread(
            target=self._loop, args=(worker, interval), name="wafaa-heartbeat", daemon=True
        )
        self.thread.start()

    def _loop(self, worker, interval):
        while not self.stopping.wait(interval):
            self._beat(worker)

    def stop(self, worker):
        self.stopping.set()
        try:
            from wafaa import heartbeat
            from wafaa.redis import get_redis

            heartbeat.forget(get_redis(), worker.hostname)
        except Exception:  # stopping must not fail because Redis is gone
            logging.getLogger("wafaa.heartbeat").debug("could not remove worker heartbeat")

    def _beat(self, worker):
        from django.conf import settings

        from wafaa import heartbeat
        from wafaa.health import database_dsn
        from wafaa.redis import get_redis

        try:
            checks = heartbeat.own_checks(
                database_dsn=database_dsn(), broker_url=settings.CELERY_BROKER_URL
            )
            heartbeat.beat(get_redis(), worker.hostname, checks)
        except Exception:
            logging.getLogger("wafaa.heartbeat").warning("could not write worker heartbeat")


app.steps["worker"].add(HeartbeatStep)


# --- database connections around every task ------------------------------------------------
# A worker lives for days and PostgreSQL may restart under it. Django checks a reused
# connection only when told a unit of work begins (close_if_unusable_or_obsolete, which web
# requests get from request_started); tasks get it here, before the schema switch that is
# the task's first query. With CONN_HEALTH_CHECKS on, the first query of each task then
# pings a reused connection and replaces it if PostgreSQL went away.
task_prerun.disconnect(sender=None, dispatch_uid="tenant_schemas_switch_schema")


@task_prerun.connect(dispatch_uid="wafaa_switch_schema")
def _connections_checked_then_switch_schema(sender=None, task=None, kwargs=None, **extra):
    from django.db import close_old_connections

    from wafaa.tasks import DB_ERROR_ATTR, DB_ERRORS, close_all_connections

    task = task or sender
    eager = getattr(task.request, "is_eager", False)
    if not eager:
        close_old_connections()
    for attempt in range(2):
        try:
            switch_schema(task, kwargs)
            return
        except DB_ERRORS as exc:
            # A dead connection fails its first query; a fresh one may work at once.
            close_all_connections()
            if attempt:
                # Raised inside the task's call, where it is counted and retried (an error
                # raised here would fail the task as an internal error, and ack it).
                setattr(task.request, DB_ERROR_ATTR, exc)


@task_postrun.connect(dispatch_uid="wafaa_close_old_connections")
def _connections_checked_after_task(sender=None, task=None, **extra):
    from django.db import close_old_connections

    task = task or sender
    if not getattr(task.request, "is_eager", False):
        close_old_connections()


@task_internal_error.connect(dispatch_uid="wafaa_count_internal_errors")
def _count_internal_error(sender=None, exception=None, **extra):
    # Failures outside the task's call (a signal handler, the tracer) are failures too; one
    # raised by the call itself (eager tasks propagate it here) was counted already.
    from wafaa import metrics

    if getattr(exception, "wafaa_counted", False):
        return
    metrics.TASKS.labels(task=getattr(sender, "name", "unknown"), state="failed").inc()


@worker_shutting_down.connect
def _log_shutdown(sig=None, how=None, exitcode=None, **kwargs):
    import logging

    logging.getLogger("wafaa.worker").info(
        "worker shutting down; unfinished tasks go back to the queue (late acks)",
        extra={"signal": sig, "how": how},
    )


@task_prerun.connect
def _reset_query_log(**kwargs):
    """With DEBUG (development), Django keeps every statement of a connection (up to 9,000).
    The web forgets them at each request; a worker must at each task, or a threads worker
    holds 9,000 statements for each of its 100 threads (RSS grew ~35 kB per reply)."""
    from django.db import reset_queries

    reset_queries()


@worker_init.connect
@worker_process_init.connect
def _mark_worker_process(**kwargs):
    from wafaa import tasks

    tasks.IN_WORKER = True


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
