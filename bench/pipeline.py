"""End-to-end throughput: signed webhooks in, replies counted at a fake Graph API.

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/pipeline.py [--messages 400]
        [--llm-latency 1.5] [--pool prefork|threads|gevent] [--concurrency N]
        [--reply-workers N] [--rate 40 --duration 20] [--name pipeline]

gunicorn (2 workers) and Celery workers on the real PostgreSQL and Redis, the fake OpenAI
server (answering after --llm-latency seconds, 0 by default) and the fake Graph API (after
--graph-latency seconds: 0.1 by default when the LLM is slow, else 0), burst quiet period 0.
Each message comes from its own customer (no burst batching).

Worker layout: `--pool prefork` without `--reply-workers` is the first release's single worker
(all queues, prefork, concurrency 2). Otherwise the Procfile's layout: `--reply-workers` processes
on the `replies` queue with `--pool`/`--concurrency`, and one prefork worker for `default` and
`ingest`.

Reports messages/s end to end for a burst, p50/p95 from webhook POST to the reply reaching the
fake Graph API (light load, burst, and with `--rate` a steady arrival rate), the peak RSS of
the reply workers (all processes), the machine's load average, and, in the same run on the same
broker and workers, the throughput of a no-op Celery task as the baseline ratio.
Writes bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    bench_client,
    child_env,
    free_port,
    load_average,
    process_tree_rss_mb,
    setup_reply_bench,
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
    parser.add_argument("--llm-latency", type=float, default=0.0)
    parser.add_argument("--graph-latency", type=float, default=None)
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads", "gevent"])
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--reply-workers", type=int, default=0)
    parser.add_argument("--db-pool", type=int, default=10, help="DB_POOL_MAX_SIZE per reply worker")
    parser.add_argument("--rate", type=float, default=0.0, help="steady messages/s (0: skip)")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--name", default="pipeline")
    options = parser.parse_args()
    if options.graph_latency is None:
        options.graph_latency = 0.1 if options.llm_latency else 0.0
    legacy = options.pool == "prefork" and not options.reply_workers
    concurrency = options.concurrency or (2 if options.pool == "prefork" else 100)

    broker = setup_reply_bench()

    import requests
    from django_tenants.utils import tenant_context

    from channels_app.models import ChannelAccount
    from channels_app.providers import sign_body
    from config.celery import app
    from conversations.management.commands.simulate_message import webhook_body
    from knowledge.models import Document
    from tests.conversations.helpers import add_faq_knowledge
    from tests.fakes.graph_api import FakeGraphApi
    from tests.fakes.openai_server import FakeOpenAI
    from wafaa.redis import get_redis

    client = bench_client("bench-pipeline")
    # One client sends everything here: its plan allows all of the worker (fairness between
    # clients is bench/fairness.py's subject).
    client.llm_concurrency = 1000
    client.messages_per_day = 10**9  # past the plan's limit, replies are fallbacks (no LLM)
    client.save(update_fields=["llm_concurrency", "messages_per_day"])
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

    graph = FakeGraphApi(latency=options.graph_latency).start()
    llm = FakeOpenAI(latency=options.llm_latency).start()
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
    workers, reply_workers = [], []
    if legacy:
        workers.append(start_worker(env, concurrency=2))
        reply_workers = list(workers)
    else:
        for n in range(options.reply_workers or 1):
            reply_workers.append(
                start_worker(
                    {**env, "DB_POOL_MAX_SIZE": str(options.db_pool)},
                    concurrency=concurrency,
                    queues="replies",
                    pool=options.pool,
                    name=f"bench-replies{n}-{os.getpid()}",
                )
            )
        workers = [
            *reply_workers,
            start_worker(
                env, concurrency=1, queues="default,ingest", name=f"bench-dflt-{os.getpid()}"
            ),
        ]
    peak_rss = [0.0]
    rss_timeline: list[tuple[float, float]] = []
    sampling = threading.Event()
    begun = time.monotonic()

    def sample_rss() -> None:
        while not sampling.wait(0.5):
            rss = sum(process_tree_rss_mb(w.proc.pid) for w in reply_workers)
            peak_rss[0] = max(peak_rss[0], rss)
            if not rss_timeline or time.monotonic() - begun - rss_timeline[-1][0] >= 10:
                rss_timeline.append((round(time.monotonic() - begun, 1), rss))

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    load_before = load_average()
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

        # Reply capacity: messages stored and their reply tasks enqueued at once (as the
        # webhook does), without the web in front: replies/s of the reply workers alone.
        from conversations import services as conversation_services
        from conversations.tasks import handle_inbound_task
        from tests.conversations.helpers import inbound

        graph.reset()
        with tenant_context(client):
            stored = []
            for n in range(options.messages):
                wa_id = f"3{run[:3].encode().hex()[:4]}{n:07d}"[:15]
                message, _ = conversation_services.message_receive(
                    account=account,
                    inbound=inbound(
                        "What are your opening hours?", wa_id=wa_id, phone_id=account.external_id
                    ),
                )
                stored.append((message.pk, wa_id))
            capacity_started = time.monotonic()
            for pk, wa_id in stored:
                sent_at[wa_id] = time.monotonic()
                handle_inbound_task.delay(pk)
        graph.wait_for(options.messages, timeout=600)
        capacity_sends = [r for r in graph.message_sends() if r.json.get("to") in sent_at]
        capacity_elapsed = max(r.received_at for r in capacity_sends) - capacity_started
        capacity_rate = options.messages / capacity_elapsed
        capacity_latency = summary_ms(
            [r.received_at - sent_at[r.json["to"]] for r in capacity_sends]
        )

        steady: dict = {}
        if options.rate:
            # A steady arrival rate: the p95 a customer sees when the load is sustained.
            graph.reset()
            total = int(options.rate * options.duration)
            begin = time.monotonic()
            with ThreadPoolExecutor(options.senders * 4) as pool:
                for n in range(total):
                    delay = begin + n / options.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    pool.submit(post, 2_000_000 + n)
            graph.wait_for(total, timeout=300)
            steady = summary_ms(
                [
                    r.received_at - sent_at[r.json["to"]]
                    for r in graph.message_sends()
                    if r.json.get("to") in sent_at
                ]
            )
            steady["rate_per_second"] = options.rate
            steady["duration_s"] = options.duration

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
            "replies_per_second": round(capacity_rate, 1),
            "enqueue_to_reply_capacity_run": capacity_latency,
            "replies_ratio_to_noop": round(capacity_rate / noop_rate, 3),
            "end_to_end_messages_per_second": round(rate, 1),
            "webhook_to_reply_light_load": summary_ms(light),
            "webhook_to_reply_under_burst": summary_ms(latencies),
            "webhook_to_reply_steady": steady,
            "reply_workers_peak_rss_mb": peak_rss[0],
            "reply_workers_rss_timeline_s_mb": rss_timeline,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "noop_task_per_second": round(noop_rate, 1),
            "ratio_to_noop": round(rate / noop_rate, 3),
            "setup": {
                "gunicorn_workers": 2,
                "layout": "one worker, all queues" if legacy else "replies apart",
                "pool": options.pool,
                "reply_workers": len(reply_workers),
                "celery_concurrency": 2 if legacy else concurrency,
                "db_pool_per_reply_worker": None if legacy else options.db_pool,
                "senders": options.senders,
                "llm_latency_s": options.llm_latency,
                "graph_latency_s": options.graph_latency,
                "quiet_period_s": 0,
                "embedder": "hashing",
            },
        }
    finally:
        sampling.set()
        for worker in workers:
            worker.stop()
        web.stop()
        graph.stop()
        llm.stop()
        import redis as redis_lib

        redis_lib.Redis.from_url(broker).flushdb()
    light, burst = results["webhook_to_reply_light_load"], results["webhook_to_reply_under_burst"]
    capacity = results["enqueue_to_reply_capacity_run"]
    print(
        f"capacity   : {results['replies_per_second']} replies/s ({options.messages} enqueued "
        f"at once), p50 {capacity['p50_ms']} ms, p95 {capacity['p95_ms']} ms"
    )
    print(f"light load : webhook to reply p50 {light['p50_ms']} ms, p95 {light['p95_ms']} ms")
    print(
        f"burst      : {results['end_to_end_messages_per_second']} messages/s, p50 "
        f"{burst['p50_ms']} ms, p95 {burst['p95_ms']} ms (includes queueing)"
    )
    print(
        f"no-op task : {results['noop_task_per_second']} tasks/s; "
        f"ratio {results['ratio_to_noop']} (goal >= 0.3)"
    )
    if results["webhook_to_reply_steady"]:
        steady = results["webhook_to_reply_steady"]
        print(
            f"steady     : {options.rate}/s, p50 {steady['p50_ms']} ms, p95 {steady['p95_ms']} ms"
        )
    print(
        f"reply workers: peak RSS {results['reply_workers_peak_rss_mb']} MB; load average "
        f"{results['load_average_before']} -> {results['load_average_after']}"
    )
    write_results(options.name, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
