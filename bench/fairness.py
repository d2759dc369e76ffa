"""Fair sharing: client A's burst must not make client B's customers wait.

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/fairness.py
        [--a-messages 2000] [--duration 30] [--llm-latency 1.5] [--cap-a 20]

The Procfile's layout (one `replies` worker: threads, pooled connections; one prefork worker
for `default`), the fake OpenAI server answering after --llm-latency seconds and the fake
Graph API after 0.1 s. First B alone sends one message a second (B's latency on an idle
system), then A's --a-messages are stored and their reply tasks enqueued at once (as a
webhook burst would) while B goes on sending one a second for --duration seconds. B's
messages come through signed webhooks (the web in front); A's are enqueued directly, so the
web is not the bottleneck. Reports B's p50/p95 from webhook to reply, idle and under A's
burst (goal: p95 under the burst <= 2x idle), and A's replies/s meanwhile. `--cap-a` sets
A's plan cap (Client.llm_concurrency); a large one shows what happens without the cap.
A's unanswered rest is dropped at the end. Writes bench/results/fairness.json.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    bench_client,
    child_env,
    free_port,
    load_average,
    setup_reply_bench,
    start_gunicorn,
    start_worker,
    summary_ms,
    write_results,
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--a-messages", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--llm-latency", type=float, default=1.5)
    parser.add_argument("--cap-a", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--name", default="fairness")
    options = parser.parse_args()

    broker = setup_reply_bench()

    import requests
    from django_tenants.utils import tenant_context

    from channels_app.models import ChannelAccount
    from channels_app.providers import sign_body
    from conversations import services as conversation_services
    from conversations.management.commands.simulate_message import webhook_body
    from conversations.tasks import handle_inbound_task
    from knowledge.models import Document
    from tests.conversations.helpers import add_faq_knowledge, inbound
    from tests.fakes.graph_api import FakeGraphApi
    from tests.fakes.openai_server import FakeOpenAI
    from wafaa.redis import get_redis

    clients, accounts = {}, {}
    for name, cap, phone in (("a", options.cap_a, "199999999999101"), ("b", 20, "199999999999102")):
        client = bench_client(f"bench-fair-{name}")
        client.llm_concurrency = cap
        client.messages_per_day = 10**9
        client.save(update_fields=["llm_concurrency", "messages_per_day"])
        accounts[name] = ChannelAccount.objects.filter(
            client=client
        ).first() or ChannelAccount.objects.create(
            client=client,
            kind="whatsapp",
            external_id=phone,
            access_token=secrets.token_urlsafe(24),
            app_secret=secrets.token_urlsafe(24),
        )
        with tenant_context(client):
            if not Document.objects.exists():
                add_faq_knowledge()
        clients[name] = client

    graph = FakeGraphApi(latency=0.1).start()
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
    workers = [
        start_worker(
            {**env, "DB_POOL_MAX_SIZE": "10"},
            concurrency=options.concurrency,
            queues="replies",
            pool="threads",
            name=f"bench-fair-replies-{os.getpid()}",
        ),
        start_worker(env, concurrency=1, queues="default", name=f"bench-fair-dflt-{os.getpid()}"),
    ]
    run = uuid.uuid4().hex[:6]
    session = requests.Session()
    sent_at: dict[str, float] = {}
    results: dict = {}
    load_before = load_average()

    def b_sends(seconds: float, tag: int) -> list[str]:
        """B's customers, one new message a second; returns their wa_ids."""
        sent = []
        begin = time.monotonic()
        n = 0
        while time.monotonic() - begin < seconds:
            wa_id = f"5{tag}{run[:3].encode().hex()[:4]}{n:06d}"[:15]
            body = webhook_body(
                phone_number_id=accounts["b"].external_id,
                wa_id=wa_id,
                name="B",
                message_id=f"wamid.FAIRB{run}{tag}{n:06d}",
                text="Do you deliver?",
            )
            sent_at[wa_id] = time.monotonic()
            response = session.post(
                f"http://127.0.0.1:{port}/webhook/whatsapp/{clients['b'].slug}/",
                data=body,
                timeout=30,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": sign_body(body, accounts["b"].app_secret),
                },
            )
            response.raise_for_status()
            sent.append(wa_id)
            n += 1
            time.sleep(max(0.0, begin + n - time.monotonic()))
        return sent

    def latencies(wa_ids: list[str]) -> list[float]:
        wanted = set(wa_ids)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            got = {r.json["to"]: r for r in graph.message_sends() if r.json.get("to") in wanted}
            if len(got) == len(wanted):
                return [r.received_at - sent_at[to] for to, r in got.items()]
            time.sleep(0.2)
        raise RuntimeError(f"B's replies missing: {len(wanted) - len(got)} of {len(wanted)}")

    try:
        idle = latencies(b_sends(options.idle_seconds, 1))

        # A's burst: stored first, then every reply task enqueued at once.
        with tenant_context(clients["a"]):
            stored = [
                conversation_services.message_receive(
                    account=accounts["a"],
                    inbound=inbound(
                        "What are your opening hours?",
                        wa_id=f"6{run[:3].encode().hex()[:4]}{n:06d}"[:15],
                        phone_id=accounts["a"].external_id,
                    ),
                )[0].pk
                for n in range(options.a_messages)
            ]
        a_path = f"/{accounts['a'].external_id}/messages"
        a_before = sum(1 for r in graph.message_sends() if r.path.endswith(a_path))
        burst_started = time.monotonic()

        def enqueue_a() -> None:
            with tenant_context(clients["a"]):
                for pk in stored:
                    handle_inbound_task.delay(pk)

        enqueuer = threading.Thread(target=enqueue_a)
        enqueuer.start()
        loaded = latencies(b_sends(options.duration, 2))
        a_window = time.monotonic() - burst_started
        a_done = sum(1 for r in graph.message_sends() if r.path.endswith(a_path)) - a_before
        enqueuer.join()
        idle_summary, loaded_summary = summary_ms(idle), summary_ms(loaded)
        results = {
            "b_idle": idle_summary,
            "b_during_a_burst": loaded_summary,
            "b_p95_ratio": round(loaded_summary["p95_ms"] / idle_summary["p95_ms"], 2),
            "a_messages": options.a_messages,
            "a_replies_during_window": a_done,
            "a_replies_per_second": round(a_done / a_window, 1),
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "setup": {
                "llm_latency_s": options.llm_latency,
                "graph_latency_s": 0.1,
                "a_llm_concurrency": options.cap_a,
                "b_llm_concurrency": 20,
                "reply_worker": f"threads x{options.concurrency}, DB_POOL_MAX_SIZE=10",
                "window_s": round(a_window, 1),
            },
        }
    finally:
        for worker in workers:
            worker.stop()
        web.stop()
        graph.stop()
        llm.stop()
        import redis as redis_lib

        redis_lib.Redis.from_url(broker).flushdb()
        for client in clients.values():  # A's rest waits in its line: drop it
            for key in get_redis().scan_iter(f"wafaa:replies:*:{client.schema_name}"):
                get_redis().delete(key)
    print(
        f"B idle        : p50 {results['b_idle']['p50_ms']} ms, p95 {results['b_idle']['p95_ms']} ms"
    )
    print(
        f"B during A    : p50 {results['b_during_a_burst']['p50_ms']} ms, p95 "
        f"{results['b_during_a_burst']['p95_ms']} ms (ratio {results['b_p95_ratio']}, goal <= 2)"
    )
    print(
        f"A meanwhile   : {results['a_replies_per_second']} replies/s "
        f"({results['a_replies_during_window']} of {options.a_messages} in "
        f"{results['setup']['window_s']} s, cap {options.cap_a})"
    )
    print(f"load average  : {results['load_average_before']} -> {results['load_average_after']}")
    write_results(options.name, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
