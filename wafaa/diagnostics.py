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
