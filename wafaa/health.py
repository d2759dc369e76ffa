"""/health and /ready: cheap checks of the parts Wafaa needs, each bounded in time.

/health: 200 only when the database, the pgvector extension, Redis and at least one live
worker are fine; otherwise 503 naming the failed checks. Never touches a client schema.
/ready: 503 once this process is draining (SIGTERM received, or the drain file exists).
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import psycopg
import redis
from django.conf import settings
from django.http import JsonResponse

from wafaa import heartbeat

logger = logging.getLogger(__name__)

CHECK_DEADLINE_SECONDS = 0.75  # the whole answer stays under a second on a busy machine
_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")
_draining = False


def start_draining() -> None:
    global _draining
    _draining = True


def is_draining() -> bool:
    drain_file = os.environ.get("READY_DRAIN_FILE")
    return _draining or bool(drain_file and os.path.exists(drain_file))


def database_dsn() -> dict:
    db = settings.DATABASES["default"]
    return {
        "dbname": db["NAME"],
        "user": db["USER"],
        "password": db["PASSWORD"],
        "host": db["HOST"],
        "port": db["PORT"] or None,
    }


def check_database() -> dict:
    # A dedicated short-timeout connection: the request's own connection may wait for seconds.
    with psycopg.connect(**database_dsn(), connect_timeout=1, autocommit=True) as conn:
        conn.execute("SET statement_timeout = 500")
        conn.execute("SELECT 1")
        row = conn.execute(
            "SELECT n.nspname, e.extversion FROM pg_extension e "
            "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
        ).fetchone()
    if row is None:
        return {"database": "ok", "pgvector": "missing: run migrate_schemas"}
    if row[0] != "public":
        return {"database": "ok", "pgvector": f"in schema {row[0]}, expected public"}
    return {"database": "ok", "pgvector": "ok"}


def check_redis() -> dict:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5
    )
    try:
        client.ping()
        worker = heartbeat.worker_status(client)
    finally:
        client.close()
    return {"redis": "ok", "worker": worker}


def _run(check) -> tuple[dict, str | None]:
    try:
        return check(), None
    except Exception as exc:  # each failure is reported by name, never raised
        # The kind of error only: its text names internal hosts and ports, and /health is
        # public. The details are in this process's log.
        logger.warning("health check failed", extra={"check": check.__name__}, exc_info=True)
        return {}, type(exc).__name__


def run_checks() -> dict:
    started = time.monotonic()
    futures = {
        ("database", "pgvector"): _executor.submit(_run, check_database),
        ("redis", "worker"): _executor.submit(_run, check_redis),
    }
    checks: dict[str, str] = {}
    for names, future in futures.items():
        remaining = max(0.05, CHECK_DEADLINE_SECONDS - (time.monotonic() - started))
        try:
            result, error = future.result(timeout=remaining)
        except FutureTimeout:
            result, error = {}, f"timed out after {CHECK_DEADLINE_SECONDS} s"
        if error:
            checks[names[0]] = f"failed: {error}"
            checks[names[1]] = "unknown"
        else:
            checks.update(result)
    return checks


def health_view(request):
    checks = run_checks()
    failed = sorted(name for name, value in checks.items() if value != "ok")
    from wafaa.ai_config import mode as ai_mode

    body = {
        "status": "ok" if not failed else "fail",
        "checks": checks,
        "failed": failed,
        "ai": ai_mode(),
        "release": settings.RELEASE,
    }
    return JsonResponse(body, status=200 if not failed else 503)


def ready_view(request):
    if is_draining():
        return JsonResponse({"status": "draining"}, status=503)
    return JsonResponse({"status": "ready"})
