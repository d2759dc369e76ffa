"""`make run`'s supervisor: a process that dies is started again, its siblings keep running,
and a stop request ends them all."""

from __future__ import annotations

import io
import sys
import threading
import time

from scripts.supervise import Supervisor, read_procfile


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_dead_process_is_restarted_and_the_others_keep_running(tmp_path):
    py = sys.executable
    out = io.StringIO()
    supervisor = Supervisor(
        {
            "crashy": f"{py} -c 'import sys; print(\"up\"); sys.exit(3)'",
            "steady": f"{py} -c 'import time; print(\"steady\", flush=True); time.sleep(60)'",
        },
        cwd=tmp_path,
        backoff_base=0.05,
        backoff_cap=0.2,
        out=out,
    )
    thread = threading.Thread(target=supervisor.run)
    thread.start()
    crashy, steady = supervisor.processes
    try:
        assert _wait(lambda: crashy.starts >= 3)
        assert crashy.exits[:2] == [3, 3]
        assert steady.starts == 1 and steady.proc.poll() is None
    finally:
        supervisor.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert steady.proc.poll() is not None  # stopped with the supervisor
    log = out.getvalue()
    assert "crashy | up" in log.replace("  ", " ") and "exited with 3" in log


def test_the_procfile_is_read_with_its_variables_left_to_the_shell(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("# comment\nweb: gunicorn app\nworker: celery -c ${N:-2}\n")
    assert read_procfile(procfile) == {"web": "gunicorn app", "worker": "celery -c ${N:-2}"}
