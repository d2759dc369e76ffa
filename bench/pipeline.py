"""End-to-end throughput: signed webhooks in, replies counted at a fake Graph API.

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/pipeline.py [--messages 400]

gunicorn (2 workers) and one Celery worker (concurrency 2) on the real PostgreSQL and Redis,
a zero-latency fake OpenAI server and a fake Graph API (the tests' fakes), burst quiet period 0.
Each message comes from its own customer (no burst batching). Reports messages/s end to end,
p50/p95 from webhook POST to the reply reaching the fake Graph API, and, in the same run on the
same broker and worker, the throughput of a no-op Celery task as the baseline ratio.
Writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    bench_client,
    child_env,
    free_port,
    setup_django,
    start_gunicorn,
    start_worker,
    summary_ms,
    write_results,
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--latency-messages", type=int, default=50)
    options = parser.parse_args()

    import os

    setup_django()
    from django.conf import settings

    broker = settings.REDIS_URL.rsplit("/", 1)[0] + "/4"
    os.environ["CELERY_BROKER_URL"] = broker
    from config.celery import app

    app.conf.broker_url = broker
    import requests
    from django_tenants.utils import tenant_context

    from channels_app.models import ChannelAccount
    from channels_app.providers import sign_body
    from conversations.management.commands.simulate_message import webhook_body
    from knowledge.models import Document
    from tests.conversations.helpers import add_faq_knowledge
    from tests.fakes.graph_api import FakeGraphApi
    from tests.fakes.openai_server import FakeOpenAI
    from wafaa.redis import get_redis

    os.environ["EMBEDDING_BACKEND"] = "hashing"
    settings.EMBEDDING_BACKEND = "hashing"
    client = bench_client("bench-pipeline")
    account = ChannelAccount.objects.filter(client=client).first() or ChannelAccount.objects.create(
        client=client,
        kind="whatsapp",
        external_id="199999999999002",
        access_token=secrets.token_urlsafe(24),
        app_secret=secrets.token_urlsafe(24),
    )
    with tenant_context(client):
        if not Document.objects.exists():
            add_faq_knowledge()

    graph, llm = FakeGraphApi().start(), FakeOpenAI().start()
    env = child_env(
        CELERY_BROKER_URL=broker,
        GRAPH_API_BASE_URL=graph.url,
        OPENAI_API_KEY="bench",
        OPENAI_BASE_URL=llm.url,
        REPLY_QUIET_PERIOD_SECONDS=0,
        SAME_CUSTOMER_SPACING_MS=0,
        EMBEDDING_BACKEND="hashing",
        DEBUG="true",
    )
    port = free_port()
    web = start_gunicorn(env, port, workers=2)
    worker = start_worker(env, concurrency=2)
    results: dict = {}
    try:
        # Baseline: no-op tasks through the same broker and worker.
        counter = f"bench:noop:{uuid.uuid4().hex}"
        redis = get_redis()
        started = time.monotonic()
        for _ in range(options.messages):
            app.send_task("wafaa.noop_task", args=[counter], queue="replies")
        while int(redis.get(counter) or 0) < options.messages:
            time.sleep(0.005)
        noop_rate = options.messages / (time.monotonic() - started)

        url = f"http://127.0.0.1:{port}/webhook/whatsapp/{client.slug}/"
        session = requests.Session()
        sent_at: dict[str, float] = {}
        run = uuid.uuid4().hex[:6]

        def post(n: int) -> None:
            wa_id = f"2{run[:3].encode().hex()[:4]}{n:07d}"[:15]
            body = webhook_body(
                phone_number_id=account.external_id,
                wa_id=wa_id,
                name="Bench",
                message_id=f"wamid.PIPE{run}{n:07d}",
                text="What are your opening hours?",
            )
            sent_at[wa_id] = time.monotonic()
            response = session.post(
                url,
                data=body,
                timeout=30,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": sign_body(body, account.app_secret),
                },
            )
            response.raise_for_status()

        # Latency at a light, steady load: one message at a time, no queue in front of it.
        graph.reset()
        for n in range(options.latency_messages):
            post(1_000_000 + n)
            graph.wait_for(n + 1, timeout=30)
        light = [
            r.received_at - sent_at[r.json["to"]]
            for r in graph.message_sends()
            if r.json.get("to") in sent_at
        ]

        # Throughput: everything at once from several senders; latency here includes queueing.
        graph.reset()
        started = time.monotonic()
        with ThreadPoolExecutor(options.senders) as pool:
            list(pool.map(post, range(options.messages)))
        graph.wait_for(options.messages, timeout=300)
        elapsed = time.monotonic() - started
        latencies = [
            r.received_at - sent_at[r.json["to"]]
            for r in graph.message_sends()
            if r.json.get("to") in sent_at
        ]
        rate = options.messages / elapsed
        results = {
            "messages": options.messages,
            "end_to_end_messages_per_second": round(rate, 1),
            "webhook_to_reply_light_load": summary_ms(light),
            "webhook_to_reply_under_burst": summary_ms(latencies),
            "noop_task_per_second": round(noop_rate, 1),
            "ratio_to_noop": round(rate / noop_rate, 3),
            "setup": {
                "gunicorn_workers": 2,
                "celery_concurrency": 2,
                "senders": options.senders,
                "llm": "fake, zero latency",
                "quiet_period_s": 0,
                "embedder": "hashing",
            },
        }
    finally:
        worker.stop()
        web.stop()
        graph.stop()
        llm.stop()
        import redis as redis_lib

        redis_lib.Redis.from_url(broker).flushdb()
    light, burst = results["webhook_to_reply_light_load"], results["webhook_to_reply_under_burst"]
    print(f"light load : webhook to reply p50 {light['p50_ms']} ms, p95 {light['p95_ms']} ms")
    print(
        f"burst      : {results['end_to_end_messages_per_second']} messages/s, p50 "
        f"{burst['p50_ms']} ms, p95 {burst['p95_ms']} ms (includes queueing)"
    )
    print(
        f"no-op task : {results['noop_task_per_second']} tasks/s; "
        f"ratio {results['ratio_to_noop']} (goal >= 0.3)"
    )
    write_results("pipeline", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
