"""Resource metrics: every process's CPU and memory, Redis and PostgreSQL capacity, and a
check that every alert reads a metric some Wafaa process exports."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from wafaa.resources import ProcessesCollector, process_kind


def _samples(collector) -> dict[tuple[str, str], float]:
    found = {}
    for family in collector.collect():
        for sample in family.samples:
            found[(sample.name, sample.labels.get("pid", ""))] = sample.value
    return found


@pytest.mark.parametrize(
    ("cmdline", "kind"),
    [
        ("gunicorn: worker [config.wsgi:application]", "web"),
        ("/app/.venv/bin/python .venv/bin/celery -A config worker -Q replies", "worker"),
        ("/app/.venv/bin/python .venv/bin/celery -A config beat --loglevel INFO", "beat"),
        ("python manage.py shell", "other"),
    ],
)
def test_processes_are_labelled_by_kind(cmdline, kind):
    assert process_kind(cmdline) == kind


def test_every_process_writing_metrics_is_reported_and_a_dead_one_is_not(tmp_path, monkeypatch):
    """Multiprocess mode: the pids come from the metrics files' names, the figures from /proc."""
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout.readline().strip() == "up"  # the interpreter is running
        (tmp_path / f"counter_{other.pid}.db").write_bytes(b"")
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        found = _samples(ProcessesCollector())
        rss = found[("wafaa_process_resident_memory_bytes", str(other.pid))]
        assert 1_000_000 < rss < 500_000_000  # a real Python process's resident memory
        assert ("wafaa_process_cpu_seconds_total", str(other.pid)) in found
    finally:
        other.kill()
        other.wait()
    found = _samples(ProcessesCollector())
    assert ("wafaa_process_resident_memory_bytes", str(other.pid)) not in found


def test_metrics_endpoint_shows_this_process_and_the_in_flight_gauge(client):
    body = client.get("/metrics").content.decode()
    assert re.search(r'^wafaa_process_resident_memory_bytes\{kind="\w+",pid="\d+"\} \d', body, re.M)
    assert "wafaa_http_requests_in_flight" in body


def test_backing_services_are_sampled_against_their_limits(db, redis_client):
    from django.db import connection

    from wafaa import metrics
    from wafaa.resources import sample_backing_services

    figures = sample_backing_services()
    configured = int(redis_client.config_get("maxmemory")["maxmemory"])
    assert figures["redis_maxmemory"] == configured
    assert metrics.REDIS_MEMORY_MAX._value.get() == configured
    assert figures["redis_used_memory"] > 0
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_connections")
        assert figures["pg_max_connections"] == int(cursor.fetchone()[0])
    assert figures["pg_connections"] >= 1  # this test's own connection at least
    assert metrics.PG_CONNECTIONS._value.get() == figures["pg_connections"]


# --- every alert reads a metric that some Wafaa process exports ------------------------------

_PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "irate", "by", "without", "and",
    "or", "unless", "on", "ignoring", "group_left", "group_right", "time", "absent",
    "histogram_quantile", "le", "bool", "offset", "topk", "bottomk", "abs", "clamp_min",
    "delta", "deriv", "vector", "scalar",
}  # fmt: skip
# Series that Prometheus itself makes, not a target.
_PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE"}


def _alert_metric_names() -> dict[str, set[str]]:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    names: dict[str, set[str]] = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            expr = re.sub(r"\{[^}]*\}", "", rule["expr"])  # label matchers hold no metric
            expr = re.sub(r"\[[^\]]*\]", "", expr)  # nor do ranges
            expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # nor groupings
            expr = re.sub(r"\d+(\.\d+)?(e\d+)?", "", expr)  # nor numbers
            words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
            names[rule["alert"]] = words - _PROMQL_WORDS
    return names


def _exportable_names() -> set[str]:
    """Every sample name the processes can export: our metrics, django-prometheus's, and our
    collectors' (the registries are the same in web and worker processes)."""
    import prometheus_client

    import wafaa.metrics
    import wafaa.metrics_export  # noqa: F401 - registers the process collector

    return set(prometheus_client.REGISTRY._names_to_collectors)


def test_every_alert_reads_metrics_that_a_target_exports():
    exportable = _exportable_names()
    missing = {
        alert: sorted(names - exportable - _PROMETHEUS_OWN)
        for alert, names in _alert_metric_names().items()
        if names - exportable - _PROMETHEUS_OWN
    }
    assert not missing, f"alerts reading metrics nothing exports: {missing}"


def test_the_shipped_prometheus_config_scrapes_web_and_worker():
    config = yaml.safe_load(Path(ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"wafaa-web", "wafaa-worker"} <= jobs


def test_worker_and_beat_heartbeats_are_read_from_redis_at_each_scrape(client, redis_client):
    """Exported by the web itself, so the figures exist, and grow old, when every worker is
    down. (The suite's own worker may beat meanwhile: it can only make them newer.)"""
    import time

    from wafaa import heartbeat

    written = time.time()
    redis_client.zadd(heartbeat.KEY, {"replies@old-host": written - 300})
    heartbeat.beat(redis_client, "replies@host-a")
    heartbeat.beat_scheduler(redis_client, 1_700_000_000.0)
    body = client.get("/metrics").content.decode()
    newest = float(re.search(r"^wafaa_worker_last_heartbeat_timestamp (\S+)$", body, re.M)[1])
    assert newest >= written - 1  # ours, or a newer one; never the old host's
    live = float(re.search(r"^wafaa_workers_live (\S+)$", body, re.M)[1])
    assert 1 <= live == len(heartbeat.live_workers(redis_client))
    assert re.search(r"^wafaa_beat_last_tick_timestamp 1\.7e\+09$", body, re.M)
    redis_client.zrem(heartbeat.KEY, "replies@old-host", "replies@host-a")
