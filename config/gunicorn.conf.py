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
# gunicorn answers a request line longer than this itself (plain-text 414, before the app);
# below it, URLs longer than MAX_URL_LENGTH get the app's JSON 414 (wafaa.middleware).
limit_request_line = 8190
# gunicorn (25.1+) opens a control socket for `gunicornc` at one path per user
# ($XDG_RUNTIME_DIR/gunicorn.ctl): two instances on one machine fight over it. Off, unless
# WEB_CONTROL_SOCKET names this instance's own path.
if os.environ.get("WEB_CONTROL_SOCKET"):
    control_socket = os.environ["WEB_CONTROL_SOCKET"]
else:
    control_socket_disable = True
# Web requests only: a query still running this long before gunicorn's worker timeout is
# cancelled by PostgreSQL, and the caller gets a JSON 503 instead of a killed worker. Workers
# (long ingestion statements) keep no such limit.
os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", str(max(1, timeout - 5) * 1000))


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
