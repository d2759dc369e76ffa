"""Worker heartbeats in Redis, read by /health and the worker-down alert.

Each worker writes its hostname with the current time into one sorted set every few seconds
(a Celery bootstep, see config.celery); a worker is live when it wrote recently. With each
beat it also records its own checks: can it reach the database and the broker? A worker that
is alive but cannot reach PostgreSQL answers nothing, so /health must not call it fine.
"""

from __future__ import annotations

import json
import time

KEY = "wafaa:workers:heartbeat"
CHECKS_KEY = "wafaa:workers:checks"
LIVE_AFTER_SECONDS = 30


def beat(client, hostname: str, checks: dict | None = None) -> None:
    now = time.time()
    pipe = client.pipeline()
    pipe.zadd(KEY, {hostname: now})
    if checks is not None:
        pipe.hset(CHECKS_KEY, hostname, json.dumps(checks))
    # Forget workers that stopped long ago so the set stays small.
    pipe.zremrangebyscore(KEY, 0, now - 24 * 3600)
    pipe.execute()


def forget(client, hostname: str) -> None:
    pipe = client.pipeline()
    pipe.zrem(KEY, hostname)
    pipe.hdel(CHECKS_KEY, hostname)
    pipe.execute()


def live_workers(client) -> list[str]:
    now = time.time()
    return [
        member.decode() if isinstance(member, bytes) else member
        for member in client.zrangebyscore(KEY, now - LIVE_AFTER_SECONDS, "+inf")
    ]


def live_worker_checks(client) -> dict[str, dict]:
    """Each live worker's own checks ({"database": "ok", "broker": "ok"}; {} if it sent none)."""
    workers = live_workers(client)
    if not workers:
        return {}
    values = client.hmget(CHECKS_KEY, workers)
    result = {}
    for name, value in zip(workers, values, strict=True):
        try:
            result[name] = json.loads(value) if value else {}
        except ValueError:
            result[name] = {}
    return result


def worker_status(client) -> str:
    """'ok' when at least one live worker reaches the database and the broker; else why not."""
    checks = live_worker_checks(client)
    if not checks:
        return f"no live worker heartbeat in the last {LIVE_AFTER_SECONDS} s"
    if any(all(v == "ok" for v in c.values()) for c in checks.values()):
        return "ok"
    failing = sorted({k for c in checks.values() for k, v in c.items() if v != "ok"})
    return f"live workers cannot reach: {', '.join(failing)}"


def own_checks(*, database_dsn: dict, broker_url: str, timeout: float = 2.0) -> dict:
    """The checks a worker runs on itself before each beat (bounded by `timeout` each)."""
    import psycopg
    import redis

    checks = {}
    try:
        with psycopg.connect(
            **database_dsn, connect_timeout=max(1, int(timeout)), autocommit=True
        ) as conn:
            conn.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            conn.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # reported by kind only: error texts carry hosts and ports
        checks["database"] = f"failed: {type(exc).__name__}"
    broker = redis.Redis.from_url(
        broker_url, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        broker.ping()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"failed: {type(exc).__name__}"
    finally:
        broker.close()
    return checks


# Beat's own heartbeat (wafaa.beat.HeartbeatScheduler): one key with the time of its last tick.
BEAT_KEY = "wafaa:beat:heartbeat"
BEAT_EVERY_SECONDS = 5
BEAT_LIVE_AFTER_SECONDS = 60


def beat_scheduler(client, now: float | None = None) -> None:
    client.set(BEAT_KEY, str(now or time.time()), ex=24 * 3600)


def beat_age(client) -> float | None:
    """Seconds since beat last ticked, or None when it never did."""
    value = client.get(BEAT_KEY)
    return None if value is None else max(0.0, time.time() - float(value))
