"""Shared pieces of the benchmarks: Django set-up, servers started as real processes, figures.

Benchmarks run against the development services (scripts/devservices.py) in clients of their
own (slug prefix `bench-`), never in a test database, and write JSON to bench/results/.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))


def setup_django(settings_module: str = "config.settings") -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def setup_reply_bench() -> str:
    """Django for a reply-path bench: the bench's own broker database (4), so no other
    process takes its tasks, and the hashing embedder (the benches measure the pipeline, not
    the embedding model)."""
    setup_django()
    from django.conf import settings

    from config.celery import app

    broker = settings.REDIS_URL.rsplit("/", 1)[0] + "/4"
    os.environ["CELERY_BROKER_URL"] = broker
    app.conf.broker_url = broker
    os.environ["EMBEDDING_BACKEND"] = "hashing"
    settings.EMBEDDING_BACKEND = "hashing"
    return broker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> dict:
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p95_ms": round(percentile(values, 95) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2) if values else None,
    }


def write_results(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count()},
        **data,
    }
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


class Process:
    """A child process (gunicorn, celery) in its own process group, stopped on exit."""

    def __init__(self, args: list[str], env: dict, log_name: str):
        self.log_path = RESULTS / f"{log_name}.log.tmp"
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def child_env(**extra) -> dict:
    from django.conf import settings

    env = dict(os.environ)
    db = settings.DATABASES["default"]
    env.update(
        {
            "DATABASE_URL": f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "REDIS_URL": settings.REDIS_URL,
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_gunicorn(
    env: dict, port: int, workers: int = 2, app: str = "config.wsgi:application"
) -> Process:
    bin_dir = Path(sys.executable).parent
    proc = Process(
        [
            str(bin_dir / "gunicorn"),
            "-c",
            "config/gunicorn.conf.py",
            app,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
        ],
        env,
        "gunicorn",
    )
    wait_http(f"http://127.0.0.1:{port}/ready")
    return proc


def start_worker(
    env: dict,
    concurrency: int = 2,
    queues: str = "replies,default,ingest",
    pool: str = "prefork",
    name: str = "",
    extra: list[str] | None = None,
) -> Process:
    name = name or f"bench-{os.getpid()}"
    proc = Process(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "-Q",
            queues,
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
            "-n",
            f"{name}@%h",
            *(extra or []),
        ],
        env,
        name,
    )
    from wafaa import heartbeat
    from wafaa.redis import get_redis

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(w.startswith(f"{name}@") for w in heartbeat.live_workers(get_redis())):
            return proc
        if proc.proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"worker did not start; see {proc.log_path}")


def process_tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (Linux /proc), in MB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    total_kb, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
        todo.extend(children.get(current, []))
    return round(total_kb / 1024, 1)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait_http(url: str, timeout: float = 30) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def bench_client(slug: str):
    """A dedicated client for a benchmark (created once, reused)."""
    from tenants.models import Client
    from tenants.services import client_create

    return Client.objects.filter(slug=slug).first() or client_create(name=slug, slug=slug)
