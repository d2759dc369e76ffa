"""A worker stopped mid-task: the task is finished or redelivered, never lost."""

from __future__ import annotations

import signal
import sys
import time
import uuid

import pytest

from tests.conftest import WorkerProcess

QUEUE = "test-shutdown"


@pytest.fixture
def shutdown_worker(worker_env, tmp_path):
    started = []

    def start(name):
        worker = WorkerProcess(
            worker_env, f"{name}-{uuid.uuid4().hex[:6]}", tmp_path / f"{name}.log"
        )
        worker.proc = None
        import subprocess

        worker.log = open(worker.log_path, "ab")  # noqa: SIM115
        worker.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--concurrency",
                "1",
                "-Q",
                QUEUE,
                "-n",
                f"{worker.name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            cwd=worker_env["PYTHONPATH"],
            env=worker_env,
            stdout=worker.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(sig=signal.SIGKILL)


def _wait(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGQUIT], ids=["warm-SIGTERM", "cold-SIGQUIT"]
)
def test_a_task_survives_its_worker_being_stopped(shutdown_worker, redis_client, db, sig):
    from wafaa.diagnostics import slow_probe_task

    first = shutdown_worker("first")
    first.wait_ready(redis_client)
    key = f"test:slow:{uuid.uuid4().hex}"
    slow_probe_task.apply_async((key, 2.0), queue=QUEUE)
    assert _wait(lambda: redis_client.get(f"{key}:started"), 20), first.output()
    first.stop(sig=sig, timeout=30)  # SIGTERM: finish the task first; SIGQUIT: give it back
    second = shutdown_worker("second")
    second.wait_ready(redis_client)
    assert _wait(lambda: redis_client.get(f"{key}:done"), 30), first.output() + second.output()
    assert int(redis_client.get(f"{key}:done")) >= 1
