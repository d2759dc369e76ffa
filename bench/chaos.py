"""`make chaos`: the fault suite. Real processes, real faults, no operator action.

What runs: an embedded PostgreSQL and Valkey of the suite's own (under `.run/chaos/`, started
with scripts/devservices.py and its durable settings), the fake Graph API and fake OpenAI
servers (tests/fakes, in this process), and web (gunicorn), one Celery worker and beat under
`make run`'s supervisor (scripts/supervise.py), which restarts whatever dies.

Each scenario sends a burst of WhatsApp messages (one per customer, signed webhooks; a POST
that is not answered 200 is sent again a second later, as Meta does), injects its fault in
the middle of the burst, clears it, and waits until every customer has a reply. It asserts
0 lost, 0 duplicated replies and recovery within its bound, and records figures:

- worker_kill9: the worker's process group is SIGKILLed mid-burst.
- redis_killed: Valkey is SIGKILLed (its data is gone) and restarted on the same port.
- redis_flushall: FLUSHALL mid-burst (queued tasks and locks gone).
- postgres_restart: PostgreSQL stopped with `pg_ctl -m immediate` for a few seconds.
- graph_incident: Graph answers 429 (130429), then 5xx, then hangs past the read timeout.
- sigterm_llm_inflight: the worker gets SIGTERM while LLM calls (1 s each) are in flight.
- poison: one message whose LLM call outlasts the task's time limit every time, among
  others: parked after REPLY_MAX_ATTEMPTS attempts, the others answered meanwhile.

Figures are printed and written to bench/results/chaos.json. Exit status 1 if a scenario
fails. The timers are shortened for the suite (sweeps every 5 s, a 20 s visibility timeout,
an 8 s soft time limit): recovery bounds are stated per scenario with those settings.

Usage: python bench/chaos.py [--messages 40] [--only name,name]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RUN_DIR = ROOT / ".run" / "chaos"
PHONE_ID = "990000000000001"
APP_SECRET = "chaos-app-secret"
SOFT_TIME_LIMIT = 8
REPLY_MAX_ATTEMPTS = 3

# Settings of the suite's processes: shorter timers than production, so a scenario recovers
# in seconds (bounds below are stated with these).
SUITE_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "EMBEDDING_BACKEND": "hashing",
    "LOG_LEVEL": "WARNING",
    "OPENAI_API_KEY": "chaos-key-for-the-fake-server",
    "LLM_TIMEOUT": "30",  # longer than the soft time limit: the poison hits the time limit
    "LLM_MAX_RETRIES": "2",
    "REPLY_QUIET_PERIOD_SECONDS": "0.2",
    "REPLY_MAX_ATTEMPTS": str(REPLY_MAX_ATTEMPTS),
    "SAME_CUSTOMER_SPACING_MS": "0",
    "WHATSAPP_MESSAGES_PER_SECOND": "80",
    "GRAPH_API_READ_TIMEOUT": "2",
    "GRAPH_API_CONNECT_TIMEOUT": "1",
    "SWEEP_EVERY_SECONDS": "5",
    "SWEEP_AFTER_SECONDS": "10",
    "CELERY_VISIBILITY_TIMEOUT": "20",
    "CELERY_TASK_SOFT_TIME_LIMIT": str(SOFT_TIME_LIMIT),
    "CELERY_TASK_TIME_LIMIT": str(SOFT_TIME_LIMIT + 4),
    "CELERY_WORKER_HEARTBEAT_SECONDS": "1",
    "WEB_CONCURRENCY": "2",
    "PROMETHEUS_MULTIPROC_DIR": "",
}


def log(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} chaos | {text}", flush=True)


# --- services ------------------------------------------------------------------------------


def devservices(command: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["WAFAA_RUN_DIR"] = str(RUN_DIR)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "devservices.py"), command],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"devservices {command}: {result.stderr.strip()}")
    return dict(
        line.split("=", 1) for line in result.stdout.splitlines() if re.match(r"^[A-Z_]+=", line)
    )


class Stack:
    """The processes under test, run by scripts/supervise.py from a Procfile of the suite."""

    def __init__(self, env: dict, port: int):
        self.env = env
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = RUN_DIR / "supervisor.log"
        procfile = RUN_DIR / "Procfile"
        procfile.write_text(
            f"web: gunicorn -c config/gunicorn.conf.py config.wsgi:application "
            f"--bind 127.0.0.1:{port}\n"
            "worker: celery -A config worker --loglevel WARNING --concurrency 2 "
            "-Q replies,default,ingest -n chaos@%h --without-gossip --without-mingle\n"
            f"beat: celery -A config beat --loglevel WARNING --schedule {RUN_DIR}/beat-schedule\n"
        )
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "supervise.py"), str(procfile)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def pid(self, name: str) -> int | None:
        found = re.findall(
            rf"{name}\s*\| started \(pid (\d+)\)", self.log_path.read_text(errors="replace")
        )
        return int(found[-1]) if found else None

    def starts(self, name: str) -> int:
        text = self.log_path.read_text(errors="replace")
        return len(re.findall(rf"{name}\s*\| started \(pid", text))

    def signal(self, name: str, sig: int, group: bool = True) -> None:
        pid = self.pid(name)
        if pid is None:
            raise RuntimeError(f"{name} has no pid")
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)

    def worker_live(self) -> bool:
        from wafaa import heartbeat
        from wafaa.redis import get_redis

        try:
            return any(n.startswith("chaos@") for n in heartbeat.live_workers(get_redis()))
        except Exception:
            return False

    def wait_ready(self, timeout: float = 90) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                web = requests.get(f"{self.base}/ready", timeout=1).status_code == 200
            except requests.RequestException:
                web = False
            if web and self.worker_live():
                return
            time.sleep(0.2)
        raise RuntimeError(f"the stack did not start in {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


# --- traffic -------------------------------------------------------------------------------


class Burst:
    """One message per customer, sent as signed webhooks; redelivered until answered 200."""

    def __init__(self, stack: Stack, name: str, count: int, rate: float, texts=None):
        self.stack = stack
        self.name = name
        run = uuid.uuid4().int % 1_000_000  # customers of their own, run after run
        self.customers = [f"21{run:06d}{i:04d}" for i in range(count)]
        self.texts = texts or [f"{name} question {i}: what time do you open?" for i in range(count)]
        self.rate = rate
        self.latencies: list[float] = []
        self.non_200: Counter = Counter()
        self.stored_at: dict[str, float] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stop = threading.Event()

    def start(self) -> Burst:
        self.thread.start()
        return self

    def _post(self, index: int) -> None:
        import requests

        from channels_app.providers import sign_body
        from tests.factories import wa_text_payload

        body = wa_text_payload(
            message_id=f"wamid.{self.name}.{index}.{uuid.uuid4().hex[:6]}",
            text=self.texts[index],
            phone_id=PHONE_ID,
            wa_id=self.customers[index],
            name=f"Customer {index}",
        )
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_body(body, APP_SECRET),
        }
        url = f"{self.stack.base}/webhook/whatsapp/chaos/"
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                status = requests.post(url, data=body, headers=headers, timeout=10).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            self.latencies.append(time.monotonic() - started)
            if status == 200:
                self.stored_at[self.customers[index]] = time.monotonic()
                return
            self.non_200[str(status)] += 1
            time.sleep(1.0)  # Meta redelivers

    def _run(self) -> None:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for index in range(len(self.customers)):
                pool.submit(self._post, index)
                time.sleep(1.0 / self.rate)

    def replies(self, graph) -> Counter:
        wanted = set(self.customers)
        return Counter(
            r.json.get("to")
            for r in graph.message_sends(successful_only=True)
            if r.json and r.json.get("to") in wanted
        )

    def wait_answered(self, graph, timeout: float, expect: set | None = None) -> float | None:
        expect = expect if expect is not None else set(self.customers)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if expect <= set(self.replies(graph)):
                return time.monotonic()
            time.sleep(0.25)
        return None


def health_probe(stack: Stack, until: threading.Event, into: list) -> threading.Thread:
    import requests

    def run():
        while not until.is_set():
            started = time.monotonic()
            try:
                response = requests.get(f"{stack.base}/health", timeout=5)
                into.append((time.monotonic() - started, response.status_code, response.json()))
            except requests.RequestException as exc:
                into.append((time.monotonic() - started, type(exc).__name__, None))
            time.sleep(0.5)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# --- scenarios -----------------------------------------------------------------------------


def _result(burst: Burst, graph, fault_cleared: float, done: float | None, bound: float, **extra):
    replies = burst.replies(graph)
    expected = set(extra.pop("expected", burst.customers))
    lost = sorted(c for c in expected if replies.get(c, 0) == 0)
    duplicated = sorted(c for c, n in replies.items() if n > 1)
    recovery = None if done is None else round(max(0.0, done - fault_cleared), 1)
    ok = not lost and not duplicated and recovery is not None and recovery <= bound
    lat = sorted(burst.latencies)
    return {
        "ok": ok,
        "sent": len(burst.customers),
        "answered": sum(1 for c in expected if replies.get(c)),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "recovery_seconds": recovery,
        "recovery_bound_seconds": bound,
        "webhook_non_200": dict(burst.non_200),
        "webhook_max_ms": round(lat[-1] * 1000) if lat else None,
        **extra,
    }


def scenario_worker_kill9(stack, graph, llm, n):
    burst = Burst(stack, "kill9", n, rate=15).start()
    time.sleep(n / 15 / 3)
    stack.signal("worker", signal.SIGKILL)
    log("worker SIGKILLed")
    while not stack.worker_live() or stack.starts("worker") < 2:
        time.sleep(0.1)
    cleared = time.monotonic()
    burst.thread.join()
    done = burst.wait_answered(graph, 90)
    # A killed task comes back after the visibility timeout (20 s here).
    return _result(burst, graph, cleared, done, bound=60)


def scenario_redis_killed(stack, graph, llm, n):
    burst = Burst(stack, "redis-kill", n, rate=15).start()
    time.sleep(n / 15 / 3)
    probes, stop = [], threading.Event()
    health_probe(stack, stop, probes)
    devservices("crash-valkey")
    log("Valkey SIGKILLed")
    time.sleep(4)
    devservices("start")
    cleared = time.monotonic()
    log("Valkey restarted on its port")
    stop.set()
    burst.thread.join()
    done = burst.wait_answered(graph, 90)
    health_ms = [round(p[0] * 1000) for p in probes]
    return _result(
        burst,
        graph,
        cleared,
        done,
        bound=60,
        health_max_ms_during_outage=max(health_ms) if health_ms else None,
        health_statuses=sorted({str(p[1]) for p in probes}),
    )


def scenario_redis_flushall(stack, graph, llm, n):
    from wafaa.redis import get_redis

    burst = Burst(stack, "flushall", n, rate=15).start()
    time.sleep(n / 15 / 2)
    get_redis().flushall()
    cleared = time.monotonic()
    log("FLUSHALL")
    burst.thread.join()
    done = burst.wait_answered(graph, 90)
    return _result(burst, graph, cleared, done, bound=60)


def scenario_postgres_restart(stack, graph, llm, n):
    burst = Burst(stack, "pg-restart", n, rate=15).start()
    time.sleep(n / 15 / 3)
    probes, stop = [], threading.Event()
    health_probe(stack, stop, probes)
    devservices("crash-postgres")
    log("PostgreSQL stopped (immediate)")
    time.sleep(5)
    devservices("start")
    cleared = time.monotonic()
    log("PostgreSQL started")
    time.sleep(2)
    stop.set()
    burst.thread.join()
    done = burst.wait_answered(graph, 120)
    health_ms = [round(p[0] * 1000) for p in probes]
    return _result(
        burst,
        graph,
        cleared,
        done,
        bound=60,
        health_max_ms_during_outage=max(health_ms) if health_ms else None,
        health_statuses=sorted({str(p[1]) for p in probes}),
        health_failed_checks=sorted(
            {c for p in probes if isinstance(p[2], dict) for c in p[2].get("failed", [])}
        ),
    )


def scenario_graph_incident(stack, graph, llm, n):
    phase = 8.0
    started = time.monotonic()
    graph.incident(phase, status=429, code=130429)
    burst = Burst(stack, "graph", n, rate=15).start()
    time.sleep(phase)
    graph.incident(phase, status=500, code=2)
    log("Graph: 429 storm over, 5xx now")
    time.sleep(phase)
    graph.incident(phase, hang=3.0)
    log("Graph: hangs now")
    time.sleep(phase)
    cleared = time.monotonic()
    log("Graph: incident over")
    burst.thread.join()
    done = burst.wait_answered(graph, 120)
    # Requests per second to the number during the incident (every send attempt counts).
    seconds = Counter(
        int(r.received_at - started)
        for r in graph.requests
        if r.is_message_send and started <= r.received_at < cleared
    )
    return _result(
        burst,
        graph,
        cleared,
        done,
        bound=90,
        incident_seconds=round(cleared - started),
        requests_during_incident=sum(seconds.values()),
        max_requests_per_second=max(seconds.values()) if seconds else 0,
    )


def scenario_sigterm_llm_inflight(stack, graph, llm, n):
    llm.latency = 1.0
    try:
        burst = Burst(stack, "sigterm", n, rate=15).start()
        time.sleep(3)
        stack.signal("worker", signal.SIGTERM, group=False)
        log("worker SIGTERMed with LLM calls in flight")
        while stack.starts("worker") < 2 or not stack.worker_live():
            time.sleep(0.1)
        cleared = time.monotonic()
        burst.thread.join()
        done = burst.wait_answered(graph, 120)
    finally:
        llm.latency = 0.0
    return _result(burst, graph, cleared, done, bound=60)


def scenario_poison(stack, graph, llm, n):
    texts = [f"poison-run question {i}: do you deliver?" for i in range(n)]
    texts[n // 3] = "POISON: this question makes the model think forever"
    burst = Burst(stack, "poison", n, rate=15, texts=texts).start()
    poison_customer = burst.customers[n // 3]
    others = set(burst.customers) - {poison_customer}
    started = time.monotonic()
    burst.thread.join()
    done = burst.wait_answered(graph, 90, expect=others)
    # Parked after REPLY_MAX_ATTEMPTS attempts: each ends at the soft time limit.
    from django.db import close_old_connections, connection
    from django_tenants.utils import tenant_context

    from conversations.models import Message
    from tenants.models import Client

    connection.close()  # this process's connection may predate a PostgreSQL restart
    client = Client.objects.get(slug="chaos")
    deadline = time.monotonic() + 120
    parked = None
    while time.monotonic() < deadline:
        close_old_connections()
        with tenant_context(client):
            parked = Message.objects.filter(
                conversation__contact__wa_id=poison_customer, direction="in"
            ).first()
        if parked and parked.status == "parked":
            break
        time.sleep(1)
    parked_after = round(time.monotonic() - started, 1)
    poison_calls = sum(1 for call in llm.chat_calls if "POISON" in json.dumps(call))
    result = _result(
        burst,
        graph,
        started,
        done,
        bound=60,
        expected=others,
        poison_status=parked.status if parked else None,
        poison_attempts=parked.attempts if parked else None,
        poison_llm_calls=poison_calls,
        poison_parked_after_seconds=parked_after,
        poison_replies=burst.replies(graph).get(poison_customer, 0),
    )
    result["ok"] = (
        result["ok"]
        and result["poison_status"] == "parked"
        and poison_calls <= REPLY_MAX_ATTEMPTS
        and result["poison_replies"] == 0
    )
    return result


SCENARIOS = {
    "worker_kill9": scenario_worker_kill9,
    "redis_killed": scenario_redis_killed,
    "redis_flushall": scenario_redis_flushall,
    "postgres_restart": scenario_postgres_restart,
    "graph_incident": scenario_graph_incident,
    "sigterm_llm_inflight": scenario_sigterm_llm_inflight,
    "poison": scenario_poison,
}


# --- set-up --------------------------------------------------------------------------------


def prepare(env: dict) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "bootstrap"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    import django

    django.setup()
    from channels_app.models import ChannelAccount
    from tenants.models import Client
    from tenants.services import client_create
    from tests.factories import ChannelAccountFactory

    old = Client.objects.filter(slug="chaos").first()
    if old is not None:  # a fresh client each run: nothing left over from the last one
        ChannelAccount.objects.filter(client=old).delete()
        old.delete(force_drop=True)
    client = client_create(name="Chaos", slug="chaos")
    Client.objects.filter(pk=client.pk).update(messages_per_day=1_000_000)
    ChannelAccountFactory(client=client, external_id=PHONE_ID, app_secret=APP_SECRET)


def answer(body: dict) -> str:
    question = next(
        (m.get("content") for m in reversed(body.get("messages", [])) if m.get("role") == "user"),
        "",
    )
    if "POISON" in str(question):
        time.sleep(SOFT_TIME_LIMIT * 3)  # longer than the task may run, every time
    return f"Answer: {str(question)[-60:]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    only = [s for s in args.only.split(",") if s]

    from bench.common import free_port, write_results
    from tests.fakes.graph_api import FakeGraphApi
    from tests.fakes.openai_server import FakeOpenAI

    RUN_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    urls = devservices("start")
    graph = FakeGraphApi().start()
    llm = FakeOpenAI().start()
    llm.reply_fn(answer)
    env = {
        **os.environ,
        **SUITE_ENV,
        **urls,
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GRAPH_API_BASE_URL": graph.url,
        "OPENAI_BASE_URL": llm.url,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR")
    env.pop("CELERY_BROKER_KEYPREFIX", None)
    os.environ.update({k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"})
    results: dict[str, dict] = {}
    stack = None
    try:
        prepare(env)
        from wafaa.redis import get_redis

        get_redis().flushall()  # no task or pause left by an earlier run
        stack = Stack(env, free_port())
        stack.wait_ready()
        log(f"stack ready in {time.monotonic() - started:.0f} s")
        for name, scenario in SCENARIOS.items():
            if only and name not in only:
                continue
            log(f"--- {name}")
            t0 = time.monotonic()
            starts = stack.starts("worker")
            try:
                results[name] = scenario(stack, graph, llm, args.messages)
                results[name]["worker_restarts"] = stack.starts("worker") - starts
            except Exception as exc:  # a broken scenario is a failed one, the rest still run
                results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            results[name]["seconds"] = round(time.monotonic() - t0, 1)
            log(f"{name}: {json.dumps(results[name])}")
            stack.wait_ready(timeout=60)
    finally:
        if stack is not None:
            stack.stop()
        graph.stop()
        llm.stop()
        devservices("stop")
    total = round(time.monotonic() - started)
    print()
    print(f"{'scenario':24} {'ok':>3} {'sent':>5} {'lost':>5} {'dup':>4} {'recovery s':>11}")
    for name, r in results.items():
        print(
            f"{name:24} {'yes' if r.get('ok') else 'NO':>3} {r.get('sent', '-'):>5} "
            f"{r.get('lost', '-'):>5} {r.get('duplicated', '-'):>4} "
            f"{r.get('recovery_seconds', '-')!s:>11}"
        )
    print(f"total {total} s")
    write_results(
        "chaos",
        {
            "messages_per_scenario": args.messages,
            "settings": {k: v for k, v in SUITE_ENV.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
            "total_seconds": total,
            "scenarios": results,
        },
    )
    return 0 if results and all(r.get("ok") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
