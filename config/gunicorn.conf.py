"""gunicorn settings for the web process (all overridable by environment variables)."""

import os
import shutil
import signal

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "1"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
# On SIGTERM, requests in flight get this long to finish; /ready answers 503 meanwhile.
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "25"))
keepalive = 5
accesslog = None  # our middleware logs each request as a JSON line
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server):
    # Prometheus multiprocess mode: a fresh directory for each server start, unless the
    # directory is shared with other processes started alongside (make run's worker) and the
    # runner has already emptied it.
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and os.environ.get("PROMETHEUS_WIPE_ON_START", "true") == "true":
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


def post_worker_init(worker):
    # Turn /ready to 503 as soon as this worker is told to stop, then let gunicorn drain.
    from wafaa import health

    original = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        health.start_draining()
        if callable(original):
            original(signum, frame)

    signal.signal(signal.SIGTERM, on_term)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
