"""Diagnostic tasks for operators: prove a worker runs tasks inside the right schema."""

from __future__ import annotations

from celery import shared_task
from django.db import connection

from wafaa.redis import get_redis


@shared_task(name="wafaa.schema_probe_task")
def schema_probe_task(key: str) -> str:
    """Write the schema this task ran in (and its trace id) to a Redis key, for 5 minutes."""
    from wafaa import context

    schema = connection.schema_name
    get_redis().set(key, f"{schema}|{context.current_trace_id()}", ex=300)
    return schema


@shared_task(name="wafaa.queue_depth_sample_task")
def queue_depth_sample_task() -> dict:
    """Sample the length of each Celery queue in Redis into the queue-depth gauge (beat)."""
    from django.conf import settings

    from wafaa import metrics

    client = get_redis()
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    depths = {queue: client.llen(prefix + queue) for queue in settings.CELERY_WORKER_QUEUES}
    for queue, depth in depths.items():
        metrics.QUEUE_DEPTH.labels(queue=queue).set(depth)
    return depths


@shared_task(name="wafaa.resources_sample_task")
def resources_sample_task() -> dict:
    """Redis memory and PostgreSQL connections into their gauges (beat)."""
    from wafaa.resources import sample_backing_services

    return sample_backing_services()


@shared_task(name="wafaa.noop_task")
def noop_task(counter_key: str) -> None:
    """Does nothing but count itself: the baseline for task throughput (bench/pipeline.py)."""
    get_redis().incr(counter_key)


@shared_task(name="wafaa.slow_probe_task", acks_late=True)
def slow_probe_task(key: str, seconds: float) -> None:
    """Marks `key:started`, works for `seconds`, then marks `key:done` with the worker's name.

    For checking worker shutdown behaviour in a deployment (and in our tests): a task running
    while its worker stops must finish or come back, never vanish.
    """
    import socket
    import time

    client = get_redis()
    client.set(f"{key}:started", socket.gethostname(), ex=600)
    time.sleep(seconds)
    client.incr(f"{key}:done")
    client.expire(f"{key}:done", 600)
