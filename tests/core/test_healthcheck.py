"""Container health checks (`python -m wafaa.healthcheck web|worker|beat`), run as the
container runtime runs them: a separate process, exit code and one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from tests.conftest import ROOT


def _check(kind: str, env: dict) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "wafaa.healthcheck", kind],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    return done.returncode, done.stdout.strip()


def test_a_live_worker_of_this_host_is_healthy(worker_env, celery_worker_process):
    code, out = _check("worker", worker_env)
    assert (code, out) == (0, "healthy")


def test_only_a_recent_heartbeat_of_this_host_counts(redis_client, settings, monkeypatch):
    from wafaa import heartbeat
    from wafaa.healthcheck import check_worker

    monkeypatch.setenv("REDIS_URL", settings.REDIS_URL)
    heartbeat.beat(redis_client, "replies@host-a")
    redis_client.zadd(heartbeat.KEY, {"replies@host-b": time.time() - 600})
    assert check_worker("host-a") is None
    assert check_worker("host-b") == "no recent heartbeat from a worker on host-b"
    assert check_worker("host-c") == "no recent heartbeat from a worker on host-c"


def test_without_redis_the_worker_check_fails_fast_and_says_why(worker_env):
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    code, out = _check("worker", {**worker_env, "REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    assert code == 1
    assert out == "unhealthy: check failed: ConnectionError"
    assert time.monotonic() - started < 10


def test_beat_is_healthy_while_it_ticks_and_unhealthy_when_it_stopped(
    worker_env, redis_client, tmp_path
):
    from wafaa import heartbeat

    redis_client.delete(heartbeat.BEAT_KEY)
    assert _check("beat", worker_env) == (1, "unhealthy: beat has never ticked")
    beat = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "beat",
            "--schedule",
            str(tmp_path / "schedule"),
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=worker_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while redis_client.get(heartbeat.BEAT_KEY) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _check("beat", worker_env) == (0, "healthy")
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(20)
    # Beat stopped a while ago: its last tick is old.
    redis_client.set(heartbeat.BEAT_KEY, str(time.time() - 120))
    code, out = _check("beat", worker_env)
    assert code == 1 and out.startswith("unhealthy: beat last ticked 12")


def test_web_is_healthy_when_ready_and_unhealthy_while_draining(worker_env, tmp_path):
    """Against a real gunicorn: /ready answers 503 once the drain file exists."""
    import requests

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    drain = tmp_path / "drain"
    env = {**worker_env, "PORT": str(port), "READY_DRAIN_FILE": str(drain)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "config/gunicorn.conf.py",
            "config.wsgi:application",
            "--workers",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/ready", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        assert _check("web", env) == (0, "healthy")
        drain.touch()
        code, out = _check("web", env)
        assert code == 1 and "503" in out
    finally:
        server.terminate()
        server.wait(30)


def test_an_unknown_kind_is_a_usage_error(worker_env):
    code, _ = _check("database", worker_env)
    assert code == 2
