"""What the agents' inbox costs: one live poll when nothing changed, and the pages it redraws.

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/inbox.py [--conversations 2000]

Runs in-process (Django's test Client through the whole middleware stack, session and CSRF
included) on the development services, in a client of its own (`bench-inbox-...`, removed at
the end) holding `--conversations` conversations of `--messages` messages each, a tenth of
them waiting for a person. Measures, p50/p95 and SQL statements per request:

1. the list's poll (`/inbox/<slug>/list/?since=<stamp>`) answered 204 (nothing changed);
2. the open conversation's poll (`/inbox/<slug>/c/<id>/live/?since=<stamp>`) answered 204;
3. the same polls after a change (the fragment drawn anew, 200);
4. the full list page and a conversation page.

From the 204 poll's cost it derives how many agents, each polling every 2 s, one sync
gunicorn worker carries at half load. Prints the figures, writes bench/results/inbox.json.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import setup_django, summary_ms, write_results

PREFIX = "bench-inbox-"
PASSWORD = "bench-password-not-secret-1"
POLL = re.compile(r'hx-get="([^"]+)" hx-trigger="every 2s"')
POLL_INTERVAL_SECONDS = 2.0


def populate(client, conversations: int, messages: int) -> int:
    """Contacts, conversations and messages in bulk; returns the id of one conversation."""
    from datetime import timedelta

    from django.utils import timezone
    from django_tenants.utils import tenant_context

    from conversations.models import Contact, Conversation, Message

    now = timezone.now()
    with tenant_context(client):
        contacts = Contact.objects.bulk_create(
            Contact(
                channel="whatsapp",
                external_id=f"2126{n:08d}",
                wa_id=f"2126{n:08d}",
                phone=f"2126{n:08d}",
                name=f"Customer {n}",
                first_seen_at=now - timedelta(days=3),
            )
            for n in range(conversations)
        )
        rows = Conversation.objects.bulk_create(
            Conversation(
                contact=contact,
                channel_account_id=1,
                channel="whatsapp",
                mode="handoff" if n % 10 == 0 else "bot",
                handoff_at=now - timedelta(minutes=n % 60) if n % 10 == 0 else None,
                last_inbound_at=now - timedelta(hours=n % 30),
                unread_count=n % 3,
            )
            for n, contact in enumerate(contacts)
        )
        batch = []
        for conversation in rows:
            for m in range(messages):
                inbound = m % 2 == 0
                batch.append(
                    Message(
                        conversation=conversation,
                        direction="in" if inbound else "out",
                        author="customer" if inbound else "bot",
                        text=f"Message {m} of a conversation about coffee and delivery times.",
                        status="answered" if inbound else "read",
                        citations=[] if inbound else [{"document": "FAQ", "score": 0.8}],
                    )
                )
            if len(batch) >= 5000:
                Message.objects.bulk_create(batch)
                batch = []
        Message.objects.bulk_create(batch)
        return rows[0].pk


def measure(http, url: str, repeat: int, expect: int) -> tuple[dict, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = http.get(url)
    assert response.status_code == expect, (url, response.status_code)
    statements = len(queries)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = http.get(url)
        times.append(time.perf_counter() - started)
        assert response.status_code == expect, (url, response.status_code)
    return {**summary_ms(times), "sql_statements": statements}, len(response.content)


def poll_url(page) -> str:
    return html.unescape(POLL.search(page.content.decode())[1])


def settled(http, page_url: str) -> str:
    url = poll_url(http.get(page_url))
    for _ in range(3):
        response = http.get(url)
        if response.status_code == 204:
            return url
        url = poll_url(response)
    raise RuntimeError("the poll did not settle")


def run(conversations: int, messages: int, repeat: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client as HttpClient
    from django.test.utils import override_settings

    from tenants.models import Membership
    from tenants.services import client_create

    suffix = uuid.uuid4().hex[:8]
    client = client_create(name="Bench inbox", slug=f"{PREFIX}{suffix}")
    user = get_user_model().objects.create_user(
        f"{PREFIX}{suffix}@bench.example", f"{PREFIX}{suffix}@bench.example", PASSWORD
    )
    Membership.objects.create(user=user, client=client, role="agent")
    started = time.perf_counter()
    conversation_id = populate(client, conversations, messages)
    print(f"populated in {time.perf_counter() - started:.1f} s")

    # DEBUG off as in production (no query log kept; CaptureQueriesContext counts anyway).
    with override_settings(DEBUG=False):
        http = HttpClient(REMOTE_ADDR="10.90.0.1")
        response = http.post("/inbox/login/", {"username": user.email, "password": PASSWORD})
        assert response.status_code == 302, response.content
        base = f"/inbox/{client.slug}"
        figures = {}
        list_poll = settled(http, f"{base}/")
        figures["list_poll_unchanged_204"], _ = measure(http, list_poll, repeat, 204)
        conversation_poll = settled(http, f"{base}/c/{conversation_id}/")
        figures["conversation_poll_unchanged_204"], _ = measure(
            http, conversation_poll, repeat, 204
        )
        # Changed: the poll with a stamp that no longer matches draws the fragment.
        stale_list = re.sub(r"since=[^&]+", "since=stale", list_poll)
        figures["list_poll_changed_200"], size = measure(http, stale_list, repeat // 5, 200)
        figures["list_poll_changed_200"]["bytes"] = size
        stale_conversation = re.sub(r"since=[^&]+", "since=stale", conversation_poll)
        figures["conversation_poll_changed_200"], size = measure(
            http, stale_conversation, repeat // 5, 200
        )
        figures["conversation_poll_changed_200"]["bytes"] = size
        figures["list_page"], size = measure(http, f"{base}/", repeat // 5, 200)
        figures["list_page"]["bytes"] = size
        figures["conversation_page"], size = measure(
            http, f"{base}/c/{conversation_id}/", repeat // 5, 200
        )
        figures["conversation_page"]["bytes"] = size
    poll_ms = figures["list_poll_unchanged_204"]["p50_ms"]
    # One sync worker serves one request at a time; at half load it answers 0.5 s of polls
    # per second, each agent sending 1 / POLL_INTERVAL_SECONDS of them.
    agents = 0.5 / (poll_ms / 1000) * POLL_INTERVAL_SECONDS
    return {
        "conversations": conversations,
        "messages_per_conversation": messages,
        "poll_interval_seconds": POLL_INTERVAL_SECONDS,
        "agents_per_sync_worker_at_half_load": int(agents),
        **figures,
    }


def cleanup() -> None:
    from django.contrib.auth import get_user_model

    from tenants.models import Client

    for client in Client.objects.filter(slug__startswith=PREFIX):
        client.delete(force_drop=True)
    get_user_model().objects.filter(email__startswith=PREFIX).delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=500)
    args = parser.parse_args()
    setup_django()
    cleanup()
    try:
        figures = run(args.conversations, args.messages, args.repeat)
    finally:
        cleanup()
    for name, value in figures.items():
        if isinstance(value, dict):
            print(
                f"{name:34s} p50 {value['p50_ms']:7.2f} ms  p95 {value['p95_ms']:7.2f} ms  "
                f"{value['sql_statements']} SQL"
            )
        else:
            print(f"{name:34s} {value}")
    write_results("inbox", figures)


if __name__ == "__main__":
    main()
