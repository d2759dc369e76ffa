"""`make drill`: the shipped monitoring and deploy configuration, proved without Docker.

Runs what docker-compose runs, as local processes on 127.0.0.1, from the same files:
two gunicorn web replicas behind Caddy (deploy/caddy/Caddyfile), a Celery worker and beat,
Prometheus (deploy/prometheus/prometheus.yml and alerts.yml) and Alertmanager
(deploy/alertmanager/alertmanager.yml), each rendered with local addresses in place of the
compose service names (the only change, with scrape and evaluation every 5 s instead of 15 s
so the drill is short). Then:

1. Prometheus scrapes both web replicas and the worker as shipped (every target up);
2. a stream of signed WhatsApp webhooks through the proxy while the two web replicas are
   restarted one after the other as scripts/deploy.sh does (drain file: /ready answers 503
   and the proxy's health check takes the replica out; then SIGTERM, start again, wait for
   /ready): every webhook answered 200, every message stored;
3. the worker is stopped: WafaaWorkerDown fires within its `for:` and Alertmanager delivers it
   to a receiver (a local HTTP listener, in place of the shipped webhook receiver).

Figures are printed and written to bench/results/drill.json. Exit 0 when every check passed.
Needs caddy, prometheus and prometheus-alertmanager (Debian packages; `make drill` installs
them). Traffic stays on 127.0.0.1; every process is stopped at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / ".run" / "drill"
RESULTS = ROOT / "bench" / "results" / "drill.json"
INTERVAL = "5s"
DRAIN_SECONDS = 3  # > the Caddyfile's health_interval (1 s) + health_timeout (1 s)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(every)
    raise DrillError(f"timed out after {timeout:.0f}s waiting for {what}")


class DrillError(Exception):
    pass


class Processes:
    """Every process the drill starts, each logging to .run/drill/<name>.log."""

    def __init__(self):
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        log = open(WORK / f"{name}.log", "ab")  # noqa: SIM115 - the process owns it
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    def stop(self, name: str, sig=signal.SIGTERM, timeout: float = 40) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name, timeout=15)


class AlertReceiver:
    """Stands in for the shipped webhook receiver: records what Alertmanager delivers."""

    def __init__(self):
        self.alerts: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.alerts.extend(json.loads(body).get("alerts", []))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def received(self, alertname: str, status: str = "firing") -> bool:
        return any(
            a.get("labels", {}).get("alertname") == alertname and a.get("status") == status
            for a in self.alerts
        )


def render_configs(ports: dict, receiver_url: str) -> dict[str, Path]:
    """The shipped Prometheus and Alertmanager files, with local addresses."""
    prom_dir = WORK / "prometheus"
    prom_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "deploy/prometheus/alerts.yml", prom_dir / "alerts.yml")
    config = (ROOT / "deploy/prometheus/prometheus.yml").read_text()
    replacements = {
        '"web:8000"': f'"127.0.0.1:{ports["web_a"]}"',
        '"web-2:8000"': f'"127.0.0.1:{ports["web_b"]}"',
        '"worker:9100"': f'"127.0.0.1:{ports["worker_metrics"]}"',
        '"alertmanager:9093"': f'"127.0.0.1:{ports["alertmanager"]}"',
        "scrape_interval: 15s": f"scrape_interval: {INTERVAL}",
        "evaluation_interval: 15s": f"evaluation_interval: {INTERVAL}",
    }
    for old, new in replacements.items():
        if old not in config:
            raise DrillError(f"deploy/prometheus/prometheus.yml no longer holds {old}")
        config = config.replace(old, new)
    (prom_dir / "prometheus.yml").write_text(config)
    am_dir = WORK / "alertmanager"
    am_dir.mkdir(parents=True, exist_ok=True)
    am_config = (ROOT / "deploy/alertmanager/alertmanager.yml").read_text()
    shipped_receiver = "http://alert-receiver:9095/alerts"
    if shipped_receiver not in am_config:
        raise DrillError("deploy/alertmanager/alertmanager.yml no longer holds its receiver")
    (am_dir / "alertmanager.yml").write_text(am_config.replace(shipped_receiver, receiver_url))
    return {"prometheus": prom_dir / "prometheus.yml", "alertmanager": am_dir / "alertmanager.yml"}


def app_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONPATH": str(ROOT),
            "EMBEDDING_BACKEND": env.get("EMBEDDING_BACKEND", "hashing"),
            "OPENAI_API_KEY": "",
            "LOG_LEVEL": "WARNING",
            "CELERY_WORKER_HEARTBEAT_SECONDS": "5",
            "CELERY_BROKER_KEYPREFIX": f"drill-{uuid.uuid4().hex[:8]}:",
            "PROMETHEUS_WIPE_ON_START": "false",
        }
    )
    env.update(extra or {})
    return env


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    for tool in ("caddy", "prometheus", "prometheus-alertmanager"):
        if shutil.which(tool) is None:
            print(f"drill: {tool} is missing (make drill installs it)", file=sys.stderr)
            return 2

    from tests.fakes.graph_api import FakeGraphApi

    graph = FakeGraphApi().start()
    receiver = AlertReceiver()
    ports = {
        name: free_port()
        for name in (
            "web_a",
            "web_b",
            "proxy",
            "caddy_admin",
            "worker_metrics",
            "prometheus",
            "alertmanager",
        )
    }
    base_env = app_env({"GRAPH_API_BASE_URL": graph.url})
    procs = Processes()
    results: dict = {"ports": ports}
    try:
        setup = subprocess.run(
            [sys.executable, "manage.py", "bootstrap", "--demo"], cwd=ROOT, env=base_env
        )
        if setup.returncode:
            raise DrillError("bootstrap --demo failed")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()

        def start_web(name: str):
            metrics_dir = WORK / f"metrics-{name}"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir()
            env = {
                **base_env,
                "PORT": str(ports[name]),
                "WEB_CONCURRENCY": "2",
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                "READY_DRAIN_FILE": str(WORK / f"drain-{name}"),
            }
            procs.start(
                name,
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    "config/gunicorn.conf.py",
                    "config.wsgi:application",
                ],
                env,
            )
            wait_until(lambda: _ready(ports[name]), 60, f"{name} /ready")

        worker_metrics = WORK / "metrics-worker"
        worker_metrics.mkdir()
        worker_env = {
            **base_env,
            "PROMETHEUS_MULTIPROC_DIR": str(worker_metrics),
            "WORKER_METRICS_PORT": str(ports["worker_metrics"]),
        }
        procs.start(
            "worker",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel",
                "INFO",
                "-Q",
                "replies,default,ingest",
                "-n",
                "drill@%h",
                "--concurrency",
                "2",
            ],
            worker_env,
        )
        procs.start(
            "beat",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(WORK / "beat-schedule"),
            ],
            {**base_env, "PROMETHEUS_MULTIPROC_DIR": str(worker_metrics)},
        )
        start_web("web_a")
        start_web("web_b")
        caddy_home = WORK / "caddy"
        caddy_home.mkdir()
        procs.start(
            "proxy",
            ["caddy", "run", "--config", "deploy/caddy/Caddyfile", "--adapter", "caddyfile"],
            {
                **os.environ,
                "HOME": str(caddy_home),
                "XDG_DATA_HOME": str(caddy_home),
                "XDG_CONFIG_HOME": str(caddy_home),
                "WAFAA_SITE_ADDRESS": f"http://127.0.0.1:{ports['proxy']}",
                "WAFAA_WEB_UPSTREAMS": f"127.0.0.1:{ports['web_a']} 127.0.0.1:{ports['web_b']}",
                "CADDY_ADMIN": f"127.0.0.1:{ports['caddy_admin']}",
            },
        )
        proxy = f"http://127.0.0.1:{ports['proxy']}"
        wait_until(lambda: _ready_via(proxy), 30, "the proxy")
        configs = render_configs(ports, receiver.url)
        procs.start(
            "alertmanager",
            [
                "prometheus-alertmanager",
                f"--config.file={configs['alertmanager']}",
                f"--storage.path={WORK / 'alertmanager' / 'data'}",
                f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                "--cluster.listen-address=",
            ],
            dict(os.environ),
        )
        procs.start(
            "prometheus",
            [
                "prometheus",
                f"--config.file={configs['prometheus']}",
                f"--storage.tsdb.path={WORK / 'prometheus' / 'data'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            ],
            dict(os.environ),
        )
        prom = f"http://127.0.0.1:{ports['prometheus']}"

        # 1. Every shipped target is scraped.
        started = time.monotonic()
        targets = wait_until(lambda: _all_targets_up(prom), 90, "every Prometheus target up")
        results["targets"] = targets
        results["targets_up_after_s"] = round(time.monotonic() - started, 1)
        print(f"drill: Prometheus scrapes {', '.join(sorted(targets))}: all up")

        # 2. A rolling restart of both web replicas under a stream of signed webhooks.
        stream = WebhookStream(proxy)
        stream.start()
        time.sleep(2)
        restart_times = {}
        for name in ("web_a", "web_b"):
            began = time.monotonic()
            # What scripts/deploy.sh does: drain first (/ready 503, so the proxy's health
            # check takes the replica out), then SIGTERM (gunicorn finishes what it has).
            drain = WORK / f"drain-{name}"
            drain.touch()
            time.sleep(DRAIN_SECONDS)
            procs.stop(name)
            drain.unlink()
            start_web(name)
            restart_times[name] = round(time.monotonic() - began, 1)
            time.sleep(2)
        stream.stop()
        stored = wait_until(
            lambda: _stored(stream.message_ids) == len(stream.message_ids) or None,
            90,
            "every streamed message stored",
        )
        errors = [s for s in stream.statuses if s != 200]
        results["rolling_restart"] = {
            "webhooks_sent": len(stream.statuses),
            "non_200": len(errors),
            "statuses": sorted(set(stream.statuses)),
            "stored": _stored(stream.message_ids),
            "restart_seconds": restart_times,
        }
        print(
            f"drill: rolling restart: {len(stream.statuses)} webhooks, "
            f"{len(errors)} not 200, {results['rolling_restart']['stored']} stored"
        )
        if errors or not stored:
            raise DrillError(f"rolling restart lost or refused webhooks: {errors[:10]}")

        # 3. The worker stops: WafaaWorkerDown fires and reaches Alertmanager's receiver.
        procs.stop("worker")
        stopped = time.monotonic()
        wait_until(lambda: _alert_firing(prom, "WafaaWorkerDown"), 300, "WafaaWorkerDown")
        fired = time.monotonic() - stopped
        wait_until(lambda: receiver.received("WafaaWorkerDown"), 120, "the alert delivered")
        delivered = time.monotonic() - stopped
        results["worker_down"] = {
            "fired_after_s": round(fired, 1),
            "delivered_after_s": round(delivered, 1),
            "bound_s": 60 + 4 * 5,  # for: 1m, plus scrape and evaluation slack
        }
        print(
            f"drill: worker stopped; WafaaWorkerDown firing after {fired:.0f} s, "
            f"delivered by Alertmanager after {delivered:.0f} s"
        )
        if fired > results["worker_down"]["bound_s"]:
            raise DrillError("WafaaWorkerDown fired later than its bound")
        results["ok"] = True
    except DrillError as exc:
        results["ok"] = False
        results["error"] = str(exc)
        print(f"drill: FAILED: {exc} (logs in {WORK})", file=sys.stderr)
    finally:
        procs.stop_all()
        graph.stop()
        receiver.server.shutdown()
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print("drill: OK" if results["ok"] else "drill: FAILED")
    return 0 if results["ok"] else 1


def _ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _ready_via(proxy: str) -> bool:
    try:
        return requests.get(f"{proxy}/ready", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _all_targets_up(prom: str) -> list[str] | None:
    try:
        active = requests.get(f"{prom}/api/v1/targets", timeout=2).json()["data"]["activeTargets"]
    except (requests.RequestException, ValueError, KeyError):
        return None
    jobs = {}
    for target in active:
        jobs.setdefault(target["labels"]["job"], []).append(target["health"])
    if set(jobs) >= {"wafaa-web", "wafaa-worker"} and all(
        h == "up" for healths in jobs.values() for h in healths
    ):
        return [f"{job} ({len(h)})" for job, h in jobs.items()]
    return None


def _alert_firing(prom: str, name: str) -> bool:
    try:
        alerts = requests.get(f"{prom}/api/v1/alerts", timeout=2).json()["data"]["alerts"]
    except (requests.RequestException, ValueError, KeyError):
        return False
    return any(a["labels"].get("alertname") == name and a["state"] == "firing" for a in alerts)


def _stored(message_ids: list[str]) -> int:
    from django_tenants.utils import tenant_context

    from conversations.models import Message
    from tenants.models import Client

    with tenant_context(Client.objects.get(slug="demo")):
        return Message.objects.filter(external_id__in=message_ids).count()


class WebhookStream:
    """Signed WhatsApp webhooks for the demo number, ~20 a second, until stopped."""

    def __init__(self, proxy: str):
        from channels_app.models import ChannelAccount

        account = ChannelAccount.objects.get(client__slug="demo", kind="whatsapp")
        self.url = f"{proxy}/webhook/whatsapp/demo/"
        self.phone_number_id = account.external_id
        self.secret = account.app_secret
        self.statuses: list[int] = []
        self.message_ids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(30)

    def _run(self):
        from channels_app.providers import sign_body
        from conversations.management.commands.simulate_message import webhook_body

        session = requests.Session()
        n = 0
        while not self._stop.is_set() and n < 5000:
            n += 1
            message_id = f"wamid.DRILL{uuid.uuid4().hex}"
            body = webhook_body(
                phone_number_id=self.phone_number_id,
                wa_id=f"1555{n % 50:07d}",
                name="Drill",
                message_id=message_id,
                text="What are your opening hours?",
            )
            try:
                response = session.post(
                    self.url,
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Hub-Signature-256": sign_body(body, self.secret),
                    },
                    timeout=15,
                )
                status = response.status_code
            except requests.RequestException:
                status = 0
            self.statuses.append(status)
            self.message_ids.append(message_id)
            time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
