"""Worker heartbeats in Redis, read by /health and the worker-down alert.

Each worker writes its hostname with the current time into one sorted set every few seconds
(a Celery bootstep, see config.celery); a worker is live when it wrote recently.
"""

from __future__ import annotations

import time

KEY = "wafaa:workers:heartbeat"
LIVE_AFTER_SECONDS = 30


def beat(client, hostname: str) -> None:
    now = time.time()
    pipe = client.pipeline()
    pipe.zadd(KEY, {hostname: now})
    # Forget workers that stopped long ago so the set stays small.
    pipe.zremrangebyscore(KEY, 0, now - 24 * 3600)
    pipe.execute()


def forget(client, hostname: str) -> None:
    client.zrem(KEY, hostname)


def live_workers(client) -> list[str]:
    now = time.time()
    return [
        member.decode() if isinstance(member, bytes) else member
        for member in client.zrangebyscore(KEY, now - LIVE_AFTER_SECONDS, "+inf")
    ]


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
