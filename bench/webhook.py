"""Webhook throughput: signed WhatsApp text webhooks vs a bare Django view, same server, same run.

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/webhook.py [--seconds 10] [--connections 32]

gunicorn with 2 workers on the real services; load from `wrk` (Debian package `wrk`) on the
same machine. Each webhook carries a unique message id, so each request stores a message,
its contact and conversation, and enqueues the reply task (to a separate Redis database that
is flushed afterwards: no worker runs and nothing is answered). Prints requests/s and
p50/p99 latency of both, and the ratio; writes bench/results/webhook.json.
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
local bodies, sigs, i, step = {}, {}, 0, 1
function setup(thread)
  thread:set("offset", __thread_index)
  __thread_index = __thread_index + 1
end
__thread_index = 0
function init(args)
  step = tonumber(args[2])
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bodies", type=int, default=60000)
    options = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 1
    setup_django()
    import secrets

    from django.conf import settings

    from bench.common import bench_client
    from channels_app.models import ChannelAccount
    from channels_app.providers import sign_body
    from conversations.management.commands.simulate_message import webhook_body

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
    run_id = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="wafaa-bench-"))
    lines = []
    for n in range(options.bodies):
        body = webhook_body(
            phone_number_id=account.external_id,
            wa_id=f"1555{n % 5000:07d}",
            name="Bench",
            message_id=f"wamid.BENCH{run_id}{n:08d}",
            text="What are your opening hours?",
        ).decode()
        lines.append(f"{sign_body(body.encode(), account.app_secret)}\t{body}")
    (tmp / "bodies.txt").write_text("\n".join(lines) + "\n")
    (tmp / "webhook.lua").write_text(LUA)
    (tmp / "noop.lua").write_text(LUA)

    broker = settings.REDIS_URL.rsplit("/", 1)[0] + "/3"  # enqueued tasks go here, then flushed
    port = free_port()
    env = child_env(
        DJANGO_SETTINGS_MODULE="bench.settings_bench",
        CELERY_BROKER_URL=broker,
        DEBUG="true",
        REPLY_QUIET_PERIOD_SECONDS="0",
    )
    server = start_gunicorn(env, port, workers=2)
    try:
        base = f"http://127.0.0.1:{port}"
        args = [str(tmp / "bodies.txt"), str(options.threads)]
        # Warm both paths (connections, caches) before measuring.
        run_wrk(
            f"{base}/bench/noop", tmp / "noop.lua", args, 2, options.connections, options.threads
        )
        bare = run_wrk(
            f"{base}/bench/noop",
            tmp / "noop.lua",
            args,
            options.seconds,
            options.connections,
            options.threads,
        )
        webhook = run_wrk(
            f"{base}/webhook/whatsapp/{client.slug}/",
            tmp / "webhook.lua",
            args,
            options.seconds,
            options.connections,
            options.threads,
        )
    finally:
        server.stop()
        import redis

        redis.Redis.from_url(broker).flushdb()
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = round(webhook["requests_per_second"] / bare["requests_per_second"], 3)
    print(
        f"bare view : {bare['requests_per_second']:.0f} req/s  p50 {bare['p50_ms']} ms  p99 {bare['p99_ms']} ms"
    )
    print(
        f"webhook   : {webhook['requests_per_second']:.0f} req/s  p50 {webhook['p50_ms']} ms  p99 {webhook['p99_ms']} ms"
        f"  (non-2xx: {webhook['non_2xx']})"
    )
    print(f"ratio     : {ratio} x the bare view (goal >= 0.6)")
    write_results(
        "webhook",
        {
            "setup": {
                "gunicorn_workers": 2,
                "connections": options.connections,
                "threads": options.threads,
                "seconds": options.seconds,
                "load_generator": "wrk",
            },
            "bare_view": bare,
            "webhook": webhook,
            "ratio": ratio,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
