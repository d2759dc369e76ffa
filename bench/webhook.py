"""Webhook ingress: signed webhooks vs a bare Django view, same server, same run; the inbox drain.

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/webhook.py [--seconds 10] [--connections 32]

gunicorn with 2 workers on the real services; load from `wrk` (Debian package `wrk`) on the
same machine. A webhook is verified and recorded in the durable inbox (one INSERT); no worker
runs during the HTTP runs (nudges go to a separate Redis database, flushed afterwards). Runs:

1. the bare view and signed WhatsApp text webhooks (each a unique message id), at full load;
2. the same webhooks at half the webhook's full-load rate (wrk with a per-request delay), for
   the p99 at that rate;
3. status webhooks: one message sent -> three statuses (sent, delivered, read), each its own
   POST, for outbound messages created beforehand;
4. the inbox drain in this process (one worker's worth): events/s and messages or statuses
   stored per second in the client's schema, for the text events of run 1 and the statuses
   of run 3.

Prints the figures and writes bench/results/webhook.json.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    child_env,
    free_port,
    setup_django,
    start_gunicorn,
    write_results,
)

LUA = r"""
local bodies, sigs, i, step, pause = {}, {}, 0, 1, 0
function setup(thread)
  thread:set("offset", __thread_index)
  __thread_index = __thread_index + 1
end
__thread_index = 0
function init(args)
  step = tonumber(args[2])
  pause = tonumber(args[3] or "0")
  local n = 0
  for line in io.lines(args[1]) do
    if n % step == offset then
      local tab = line:find("\t")
      sigs[#sigs + 1] = line:sub(1, tab - 1)
      bodies[#bodies + 1] = line:sub(tab + 1)
    end
    n = n + 1
  end
end
function delay()
  return pause
end
function request()
  i = i % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
                                  ["X-Hub-Signature-256"] = sigs[i]}, bodies[i])
end
"""


def parse_wrk(output: str) -> dict:
    def latency(label):
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not match:
            return None
        value, unit = float(match.group(1)), match.group(2)
        return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 3)

    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    total = re.search(r"(\d+) requests in", output)
    return {
        "requests_per_second": float(rps.group(1)) if rps else None,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "requests": int(total.group(1)) if total else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def run_wrk(
    url: str, script: Path, args: list[str], seconds: int, connections: int, threads: int
) -> dict:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        *args,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def combine(runs: list[dict]) -> dict:
    """Several wrk runs of one path as one: mean rate and latencies, every round kept."""
    keys = ("requests_per_second", "p50_ms", "p99_ms")
    merged = {k: round(sum(r[k] for r in runs) / len(runs), 2) for k in keys}
    merged["requests"] = sum(r["requests"] or 0 for r in runs)
    merged["non_2xx"] = sum(r["non_2xx"] for r in runs)
    merged["rounds"] = runs
    return merged


def write_bodies(path: Path, bodies: list[tuple[bytes, str]]) -> None:
    path.write_text("\n".join(f"{sig}\t{body.decode()}" for body, sig in bodies) + "\n")


def outbound_messages(client, account, count: int, run_id: str) -> list[str]:
    """`count` sent replies in the client's schema, as the sender leaves them."""
    from django_tenants.utils import tenant_context

    from conversations.models import Contact, Conversation, Message

    with tenant_context(client):
        contact, _ = Contact.objects.get_or_create(
            channel="whatsapp", external_id="15559990001", defaults={"wa_id": "15559990001"}
        )
        conversation = Conversation.objects.create(
            contact=contact, channel_account_id=account.pk, channel="whatsapp"
        )
        ids = [f"wamid.BENCHOUT{run_id}{n:08d}" for n in range(count)]
        Message.objects.bulk_create(
            [
                Message(
                    conversation=conversation,
                    direction="out",
                    author="bot",
                    text="Reply",
                    status="queued",
                    external_id=wamid,
                )
                for wamid in ids
            ],
            batch_size=2000,
        )
    return ids


def drain(client) -> dict:
    """Drain the client's inbox in this process; events/s and what was stored."""
    import time

    from django.conf import settings

    from channels_app.models import InboxEvent
    from conversations.inbound import DrainResult, inbox_drain

    pending = InboxEvent.objects.filter(client=client, state="pending").count()
    total = DrainResult()
    started = time.perf_counter()
    while InboxEvent.objects.filter(client=client, state="pending").exists():
        total.add(inbox_drain(client_id=client.pk, max_batches=1000))
    seconds = time.perf_counter() - started
    return {
        "events": pending,
        "seconds": round(seconds, 2),
        "events_per_second": round(total.events / seconds, 1) if seconds else None,
        "messages_stored": total.accepted,
        "messages_per_second": round(total.accepted / seconds, 1) if seconds else None,
        "duplicates": total.duplicates,
        # Messages whose status changed: a message's sent, delivered and read drained in one
        # batch are one change (one row written), so this is below the status events.
        "messages_status_changed": total.statuses,
        "failed": total.failed,
        "batch_size": settings.INBOX_BATCH_SIZE,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bodies", type=int, default=60000)
    parser.add_argument("--outbound", type=int, default=20000, help="messages for run 3")
    parser.add_argument("--rounds", type=int, default=2, help="alternated bare/webhook runs")
    options = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 1
    setup_django()
    import secrets

    from django.conf import settings

    from bench.common import bench_client, load_average
    from channels_app.models import ChannelAccount, InboxEvent
    from channels_app.providers import sign_body
    from config.celery import app
    from conversations.management.commands.simulate_message import status_webhook_body, webhook_body

    broker = settings.REDIS_URL.rsplit("/", 1)[0] + "/3"  # tasks go here, then flushed
    app.conf.broker_url = broker  # the drain here enqueues replies there too
    client = bench_client("bench-webhook")
    phone_id = "199999999999001"
    account = ChannelAccount.objects.filter(client=client, kind="whatsapp").first()
    if account is None:
        account = ChannelAccount.objects.create(
            client=client,
            kind="whatsapp",
            external_id=phone_id,
            access_token=secrets.token_urlsafe(24),
            app_secret=secrets.token_urlsafe(24),
        )
    InboxEvent.objects.filter(client=client).delete()  # a clean inbox for this run
    run_id = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="wafaa-bench-"))
    texts = []
    for n in range(options.bodies * 2):  # the second half for the paced run
        body = webhook_body(
            phone_number_id=account.external_id,
            wa_id=f"1555{n % 5000:07d}",
            name="Bench",
            message_id=f"wamid.BENCH{run_id}{n:08d}",
            text="What are your opening hours?",
        )
        texts.append((body, sign_body(body, account.app_secret)))
    per_round = options.bodies // options.rounds
    for n in range(options.rounds):  # fresh message ids in every round
        write_bodies(tmp / f"bodies{n}.txt", texts[n * per_round : (n + 1) * per_round])
    write_bodies(tmp / "paced.txt", texts[options.bodies :])
    outbound = outbound_messages(client, account, options.outbound, run_id)
    statuses = [
        (body, sign_body(body, account.app_secret))
        for wamid in outbound
        for body in [
            status_webhook_body(
                phone_number_id=account.external_id,
                message_id=wamid,
                status=status,
                recipient="15559990001",
            )
            for status in ("sent", "delivered", "read")
        ]
    ]
    write_bodies(tmp / "statuses.txt", statuses)
    (tmp / "load.lua").write_text(LUA)

    port = free_port()
    env = child_env(
        DJANGO_SETTINGS_MODULE="bench.settings_bench",
        CELERY_BROKER_URL=broker,
        DEBUG="true",
        REPLY_QUIET_PERIOD_SECONDS="0",
    )
    server = start_gunicorn(env, port, workers=2)
    base = f"http://127.0.0.1:{port}"
    webhook_url = f"{base}/webhook/whatsapp/{client.slug}/"
    script = tmp / "load.lua"
    c, t, seconds = options.connections, options.threads, options.seconds
    load = {"before": load_average()}
    try:
        args = [str(tmp / "bodies0.txt"), str(t)]
        # Warm both paths (connections, caches) before measuring.
        run_wrk(f"{base}/bench/noop", script, args, 2, c, t)
        # Alternated, in rounds: on a shared machine the load of other processes drifts, and
        # a single run of each would measure the drift as much as the two paths.
        rounds = {"bare": [], "webhook": []}
        for n in range(options.rounds):
            rounds["bare"].append(run_wrk(f"{base}/bench/noop", script, args, seconds, c, t))
            offset_args = [str(tmp / f"bodies{n}.txt"), str(t)]
            rounds["webhook"].append(run_wrk(webhook_url, script, offset_args, seconds, c, t))
        bare, webhook = (combine(rounds["bare"]), combine(rounds["webhook"]))
        half_rate = webhook["requests_per_second"] / 2
        paced_connections = 8
        pause_ms = paced_connections * 1000 / half_rate
        paced_args = [str(tmp / "paced.txt"), str(t), f"{pause_ms:.2f}"]
        paced = run_wrk(webhook_url, script, paced_args, seconds, paced_connections, t)
        paced["target_requests_per_second"] = round(half_rate, 1)
        boundary = InboxEvent.objects.filter(client=client).order_by("-pk").first()
        boundary = boundary.pk if boundary else 0
        status_run = run_wrk(
            webhook_url, script, [str(tmp / "statuses.txt"), str(t)], seconds, c, t
        )
        load["after_http"] = load_average()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    # The inbox now holds the text events of runs 1-2 and the status events of run 3. Drain
    # the texts first (statuses are held back), then the statuses.
    status_events = InboxEvent.objects.filter(client=client, pk__gt=boundary)
    status_ids = list(status_events.values_list("pk", flat=True))
    InboxEvent.objects.filter(pk__in=status_ids).update(state="done")
    drained_texts = drain(client)
    InboxEvent.objects.filter(pk__in=status_ids).update(state="pending", attempts=0)
    drained_statuses = drain(client)
    import redis

    redis.Redis.from_url(broker).flushdb()
    load["after_drain"] = load_average()

    ratio = round(webhook["requests_per_second"] / bare["requests_per_second"], 3)

    def line(name, run):
        return (
            f"{name:<26}: {run['requests_per_second']:.0f} req/s  p50 {run['p50_ms']} ms  "
            f"p99 {run['p99_ms']} ms  (non-2xx: {run['non_2xx']})"
        )

    print(line("bare view", bare))
    print(line("webhook (text)", webhook))
    print(f"ratio                     : {ratio} x the bare view (goal >= 0.6)")
    print(line(f"webhook at ~{half_rate:.0f} req/s", paced) + "  (goal p99 <= 20 ms)")
    print(line("webhook (statuses)", status_run))
    for name, result in (("drain: texts", drained_texts), ("drain: statuses", drained_statuses)):
        print(
            f"{name:<26}: {result['events']} events in {result['seconds']} s = "
            f"{result['events_per_second']} events/s ({result['messages_per_second']} messages "
            f"stored/s, {result['messages_status_changed']} status changes, "
            f"duplicates {result['duplicates']}, failed {result['failed']})"
        )
    print(f"load average              : {load}")
    write_results(
        "webhook",
        {
            "setup": {
                "gunicorn_workers": 2,
                "connections": c,
                "threads": t,
                "seconds": seconds,
                "rounds": options.rounds,
                "load_generator": "wrk",
                "drain": "in the bench process (one worker's worth)",
            },
            "load_average": load,
            "bare_view": bare,
            "webhook": webhook,
            "ratio": ratio,
            "webhook_at_half_rate": paced,
            "status_webhooks": status_run,
            "drain_texts": drained_texts,
            "drain_statuses": drained_statuses,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
