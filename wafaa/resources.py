"""Resource metrics: each process's CPU and memory, Redis memory, PostgreSQL connections.

In multiprocess mode (gunicorn workers and Celery processes writing into one
PROMETHEUS_MULTIPROC_DIR) prometheus_client drops the `process_*` metrics: only the process
answering the scrape could report its own. `ProcessesCollector` instead reads /proc, at
scrape time, for every process that writes metrics into the directory (their pids are in the
files' names), so /metrics shows the CPU and memory of every web and worker process on the
host. Outside multiprocess mode it reports the current process alone.

Redis memory against `maxmemory` and PostgreSQL connections against `max_connections` are
sampled by a beat task (`sample_backing_services`), so a scrape never waits on either.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

_PID_IN_NAME = re.compile(r"_(\d+)\.db$")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _multiproc_pids(directory: str) -> set[int]:
    pids = set()
    for path in Path(directory).glob("*.db"):
        match = _PID_IN_NAME.search(path.name)
        if match:
            pids.add(int(match.group(1)))
    return pids


def process_kind(cmdline: str) -> str:
    """web, worker, beat or other, from a process's command line."""
    if "gunicorn" in cmdline:
        return "web"
    if "celery" in cmdline:
        return "beat" if " beat" in cmdline else "worker"
    return "other"


def read_process(pid: int) -> dict | None:
    """CPU seconds, resident bytes and kind of a live process, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text().split()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return None
    # Fields after the command name (which may hold spaces) start after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return {
        "cpu_seconds": (utime + stime) / _TICKS,
        "resident_bytes": int(statm[1]) * _PAGE_SIZE,
        "kind": process_kind(cmdline),
    }


class ProcessesCollector:
    """CPU and resident memory of every process writing metrics (see the module docstring)."""

    def describe(self):
        yield CounterMetricFamily("wafaa_process_cpu_seconds", "", labels=["pid", "kind"])
        yield GaugeMetricFamily("wafaa_process_resident_memory_bytes", "", labels=["pid", "kind"])

    def collect(self):
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        pids = _multiproc_pids(directory) if directory else set()
        pids.add(os.getpid())
        cpu = CounterMetricFamily(
            "wafaa_process_cpu_seconds",
            "CPU time of each web and worker process",
            labels=["pid", "kind"],
        )
        memory = GaugeMetricFamily(
            "wafaa_process_resident_memory_bytes",
            "Resident memory of each web and worker process",
            labels=["pid", "kind"],
        )
        for pid in sorted(pids):
            info = read_process(pid)
            if info is None:  # a process that exited: its files stay until the next start
                continue
            cpu.add_metric([str(pid), info["kind"]], info["cpu_seconds"])
            memory.add_metric([str(pid), info["kind"]], info["resident_bytes"])
        yield cpu
        yield memory


@functools.cache
def _scrape_redis():
    """A Redis client for scrapes: a hung Redis must not hang /metrics."""
    import redis
    from django.conf import settings

    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5, decode_responses=True
    )


class WorkerHeartbeatCollector:
    """The newest worker heartbeat, the number of live workers and beat's last tick, read
    from Redis at scrape.

    Read by the web (and every worker's metrics port), not sampled by a worker: when every
    worker is down the figure must still be exported, and grow old, for WafaaWorkerDown.
    """

    def describe(self):
        # Every name it may export (collect() leaves out what Redis does not hold).
        for name in (
            "wafaa_worker_last_heartbeat_timestamp",
            "wafaa_workers_live",
            "wafaa_beat_last_tick_timestamp",
        ):
            yield GaugeMetricFamily(name, "")

    def collect(self):
        from wafaa import heartbeat

        try:
            client = _scrape_redis()
            newest = client.zrevrange(heartbeat.KEY, 0, 0, withscores=True)
            live = len(heartbeat.live_workers(client))
            beat_tick = client.get(heartbeat.BEAT_KEY)
        except Exception:  # Redis down: no figure (WafaaWorkerHeartbeatMissing, /health)
            return
        if newest:
            gauge = GaugeMetricFamily(
                "wafaa_worker_last_heartbeat_timestamp",
                "Newest heartbeat any Celery worker wrote to Redis (read at scrape)",
            )
            gauge.add_metric([], newest[0][1])
            yield gauge
        workers = GaugeMetricFamily(
            "wafaa_workers_live", "Celery workers with a recent heartbeat (read at scrape)"
        )
        workers.add_metric([], live)
        yield workers
        if beat_tick is not None:
            beat = GaugeMetricFamily(
                "wafaa_beat_last_tick_timestamp",
                "When Celery beat last ticked (wafaa.beat.HeartbeatScheduler; read at scrape)",
            )
            beat.add_metric([], float(beat_tick))
            yield beat


def sample_backing_services() -> dict:
    """Redis memory and PostgreSQL connections into their gauges (called by a beat task)."""
    from django.db import connection

    from wafaa import metrics
    from wafaa.redis import get_redis

    info = get_redis().info("memory")
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    metrics.REDIS_MEMORY_USED.set(used)
    metrics.REDIS_MEMORY_MAX.set(limit)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        )
        in_use = cursor.fetchone()[0]
        cursor.execute("SHOW max_connections")
        max_connections = int(cursor.fetchone()[0])
    metrics.PG_CONNECTIONS.set(in_use)
    metrics.PG_MAX_CONNECTIONS.set(max_connections)
    return {
        "redis_used_memory": used,
        "redis_maxmemory": limit,
        "pg_connections": in_use,
        "pg_max_connections": max_connections,
    }
