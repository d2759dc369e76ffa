"""Container health checks: `python -m wafaa.healthcheck web|worker|beat` (exit 0 when healthy).

Used by docker-compose and the Dockerfile's HEALTHCHECK so a hung process is restarted and a
deploy can wait for readiness. Deliberately light: no Django set-up, only the environment
(PORT, REDIS_URL), a one-second budget, and one line saying why when unhealthy.

- web: GET /ready on this container's port answers 200 (503 while draining).
- worker: a worker of this host (`<name>@<hostname>`) wrote its heartbeat recently.
- beat: beat's scheduler ticked recently (wafaa.beat.HeartbeatScheduler).
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request

from wafaa import heartbeat


def _redis():
    import redis

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def check_web() -> str | None:
    port = os.environ.get("PORT", "8000")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as response:
            return None if response.status == 200 else f"/ready answered {response.status}"
    except Exception as exc:  # refused, timed out, or an HTTP error status (503: draining)
        return f"/ready failed: {exc}"


def check_worker(hostname: str | None = None) -> str | None:
    hostname = hostname or socket.gethostname()
    live = heartbeat.live_workers(_redis())
    mine = [name for name in live if name.split("@", 1)[-1] == hostname]
    return None if mine else f"no recent heartbeat from a worker on {hostname}"


def check_beat() -> str | None:
    age = heartbeat.beat_age(_redis())
    if age is None:
        return "beat has never ticked"
    if age > heartbeat.BEAT_LIVE_AFTER_SECONDS:
        return f"beat last ticked {age:.0f} s ago"
    return None


CHECKS = {"web": check_web, "worker": check_worker, "beat": check_beat}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHECKS:
        print(f"usage: python -m wafaa.healthcheck {'|'.join(CHECKS)}", file=sys.stderr)
        return 2
    try:
        problem = CHECKS[argv[0]]()
    except Exception as exc:  # Redis unreachable, for instance
        problem = f"check failed: {type(exc).__name__}"
    if problem:
        print(f"unhealthy: {problem}")
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
