"""The durable webhook inbox: stored in one INSERT by the view, drained by a worker.

Events are posted through the real view and drained as the worker does (inbox_drain), or
by the task through the sweep; poison events, retention, replay and bulk statuses.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from prometheus_client import REGISTRY

from channels_app.models import InboxEvent
from channels_app.providers import sign_body
from conversations import inbound
from conversations.models import Contact, Conversation, Message
from tests.conftest import ROOT, inside
from tests.factories import APP_SECRET, ChannelAccountFactory, wa_text_payload

URL = "/webhook/whatsapp/test-a/"


@pytest.fixture
def account(tenant_a):
    return ChannelAccountFactory(client=tenant_a)


def post(http, body: bytes):
    """POST through the real view, leaving the event in the inbox (no drain)."""
    signature = sign_body(body, APP_SECRET)
    return http.post(
        URL, data=body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signature
    )


def text(message_id: str, body: str = "hi", wa_id: str = "15551234567") -> bytes:
    return wa_text_payload(message_id=message_id, text=body, wa_id=wa_id)


def with_poison(message_id: str) -> bytes:
    """A good message and, beside it, one the database refuses every time (an id longer
    than the column holds), in one POST."""
    payload = json.loads(text(message_id))
    messages = payload["entry"][0]["changes"][0]["value"]["messages"]
    messages.append({**messages[0], "id": "wamid." + "X" * 300})
    return json.dumps(payload).encode()


def inbound_ids(tenant) -> list[str]:
    with inside(tenant):
        return list(
            Message.objects.filter(direction="in")
            .order_by("created_at", "pk")
            .values_list("external_id", flat=True)
        )


def test_the_view_stores_the_raw_verified_body_and_the_drain_stores_the_message(
    client, account, tenant_a
):
    body = text("wamid.INBOX1")
    response = post(client, body)

    assert response.status_code == 200
    [event] = InboxEvent.objects.all()
    assert bytes(event.body) == body  # exactly the bytes Meta signed
    assert event.client_id == tenant_a.pk and event.account_ids == [account.external_id]
    assert event.state == "pending" and event.attempts == 0
    assert event.trace_id == response["X-Trace-ID"]
    assert inbound_ids(tenant_a) == []  # nothing in the client's schema before the drain

    result = inbound.inbox_drain(client_id=tenant_a.pk)

    assert (result.events, result.accepted, result.done) == (1, 1, 1)
    assert inbound_ids(tenant_a) == ["wamid.INBOX1"]
    event.refresh_from_db()
    assert event.state == "done" and event.processed_at is not None
    with inside(tenant_a):
        assert Message.objects.get().trace_id == event.trace_id
    account.refresh_from_db()
    assert account.last_seen_at is not None


def test_the_view_writes_one_statement(client, account, tenant_a):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.post(URL, b"{}", content_type="application/json")  # warm the routing table
    with CaptureQueriesContext(connection) as queries:
        assert post(client, text("wamid.ONEINSERT")).status_code == 200
    statements = [q["sql"] for q in queries if not q["sql"].startswith("SET search_path")]
    assert len(statements) == 1 and statements[0].startswith("INSERT INTO channels_app_inboxevent")


def test_a_poison_message_is_parked_after_n_attempts_and_blocks_nothing(
    client, account, tenant_a, settings
):
    settings.INBOX_MAX_ATTEMPTS = 3
    settings.INBOX_RETRY_SECONDS = 0  # no pause between attempts in this test
    parked_before = REGISTRY.get_sample_value("wafaa_inbox_events_total", {"result": "parked"})
    post(client, with_poison("wamid.SIBLING"))
    post(client, text("wamid.BEHIND", wa_id="15559990000"))

    first = inbound.inbox_drain(client_id=tenant_a.pk)

    # The sibling of the poison and the event behind it are stored at once.
    assert sorted(inbound_ids(tenant_a)) == ["wamid.BEHIND", "wamid.SIBLING"]
    assert first.failed == 1
    poison = InboxEvent.objects.get(state="pending")
    assert "message 1" in poison.last_error and poison.attempts == 1

    for _ in range(5):
        inbound.inbox_drain(client_id=tenant_a.pk)

    poison.refresh_from_db()
    assert poison.state == "parked"
    assert poison.last_error.startswith("parked after 3 attempts: message 1")
    assert sorted(inbound_ids(tenant_a)) == ["wamid.BEHIND", "wamid.SIBLING"]  # no duplicate
    parked_after = REGISTRY.get_sample_value("wafaa_inbox_events_total", {"result": "parked"})
    assert parked_after == (parked_before or 0) + 1


def test_an_event_that_never_decodes_is_parked_with_its_reason(client, account, tenant_a, settings):
    settings.INBOX_MAX_ATTEMPTS = 1
    settings.INBOX_RETRY_SECONDS = 0
    InboxEvent.objects.create(
        client=tenant_a, kind="whatsapp", account_ids=[account.external_id], body=b"{not json"
    )
    post(client, text("wamid.AFTER"))

    inbound.inbox_drain(client_id=tenant_a.pk)
    inbound.inbox_drain(client_id=tenant_a.pk)

    broken = InboxEvent.objects.get(body=b"{not json")
    assert broken.state == "parked" and "does not decode" in broken.last_error
    assert inbound_ids(tenant_a) == ["wamid.AFTER"]


def test_parked_events_are_listed_in_the_admin_and_can_be_retried(client, account, tenant_a):
    from tests.tenants.factories import StaffUserFactory

    event = InboxEvent.objects.create(
        client=tenant_a,
        kind="whatsapp",
        account_ids=[account.external_id],
        body=text("wamid.RETRIED"),
        state="parked",
        attempts=6,
        last_error="parked after 5 attempts: something broke",
    )
    client.force_login(StaffUserFactory(is_superuser=True))

    page = client.get("/admin/channels_app/inboxevent/?state__exact=parked").content.decode()
    assert "parked after 5 attempts: something broke" in page
    client.post(
        "/admin/channels_app/inboxevent/", {"action": "retry", "_selected_action": [event.pk]}
    )

    event.refresh_from_db()
    assert event.state == "pending" and event.attempts == 0
    inbound.inbox_drain(client_id=tenant_a.pk)
    assert inbound_ids(tenant_a) == ["wamid.RETRIED"]


def test_the_sweep_drains_events_no_nudge_reached(client, account, tenant_a, settings, eager_tasks):
    from conversations.tasks import inbox_sweep_task
    from wafaa import metrics

    settings.INBOX_SWEEP_AFTER_SECONDS = 0
    post(client, text("wamid.SWEPT"))  # its nudge never runs: the test's transaction stays open
    InboxEvent.objects.update(received_at=timezone.now() - timedelta(minutes=3))

    result = inbox_sweep_task.delay().get()

    # The sweep saw a 3-minute-old event first (alert WafaaInboxBacklog reads the gauge).
    assert 170 < metrics.INBOX_OLDEST_PENDING._value.get() < 240
    assert result["drained"] == 1
    assert inbound_ids(tenant_a) == ["wamid.SWEPT"]
    assert InboxEvent.objects.get().state == "done"


def test_events_of_a_drain_cut_off_mid_batch_come_back_soon_after_its_time_limit(
    client, account, tenant_a, settings, eager_tasks
):
    """A drain that claimed events and died before its batch committed (PostgreSQL restarted,
    worker killed) holds them only until its lease ends: a task's time limit and a little."""
    from conversations.tasks import inbox_sweep_task

    settings.INBOX_SWEEP_AFTER_SECONDS = 0
    post(client, text("wamid.CUT"))
    claimed = inbound._claim(tenant_a, retried=False)  # ... and the drain dies here
    assert [event.attempts for event in claimed] == [1]

    lease = (InboxEvent.objects.get().leased_until - timezone.now()).total_seconds()
    assert settings.CELERY_TASK_TIME_LIMIT < lease <= settings.CELERY_TASK_TIME_LIMIT + 10
    assert inbox_sweep_task.delay().get()["drained"] == 0  # leased: nobody takes it meanwhile
    assert inbound_ids(tenant_a) == []

    InboxEvent.objects.update(leased_until=timezone.now() - timedelta(seconds=1))
    assert inbox_sweep_task.delay().get()["drained"] == 1
    assert inbound_ids(tenant_a) == ["wamid.CUT"]
    event = InboxEvent.objects.get()
    assert (event.state, event.attempts) == ("done", 2)


def test_processed_events_are_pruned_after_the_retention(account, tenant_a, settings):
    settings.INBOX_RETENTION_HOURS = 24
    old = timezone.now() - timedelta(hours=25)

    def event(state, received_at):
        return InboxEvent.objects.create(
            client=tenant_a,
            kind="whatsapp",
            account_ids=[account.external_id],
            body=b"{}",
            state=state,
            received_at=received_at,
        )

    gone = event("done", old)
    kept = [event("done", timezone.now()), event("parked", old), event("pending", old)]

    assert inbound.inbox_prune() == 1
    assert not InboxEvent.objects.filter(pk=gone.pk).exists()
    assert InboxEvent.objects.filter(pk__in=[e.pk for e in kept]).count() == 3


def test_replay_inbox_restores_what_was_lost_and_never_duplicates(client, account, tenant_a):
    since = timezone.now() - timedelta(minutes=1)
    post(client, text("wamid.R1"))
    post(client, text("wamid.R2", wa_id="15550000002"))
    inbound.inbox_drain(client_id=tenant_a.pk)
    with inside(tenant_a):
        Message.objects.filter(external_id="wamid.R2").delete()  # lost, say, to a bad restore

    call_command("replay_inbox", "--client", "test-a", "--since", since.isoformat())
    call_command("replay_inbox", "--client", "test-a", "--since", since.isoformat())

    assert sorted(inbound_ids(tenant_a)) == ["wamid.R1", "wamid.R2"]
    assert set(InboxEvent.objects.values_list("state", flat=True)) == {"done"}


def _outbound(tenant, count: int) -> list[Message]:
    with inside(tenant):
        contact = Contact.objects.create(channel="whatsapp", external_id="15557770000")
        conversation = Conversation.objects.create(
            contact=contact, channel_account_id=1, channel="whatsapp"
        )
        return [
            Message.objects.create(
                conversation=conversation,
                direction="out",
                author="bot",
                text=f"reply {n}",
                status="queued",
                external_id=f"wamid.OUT{n:03d}",
            )
            for n in range(count)
        ]


def _statuses(updates: list[tuple[str, str]]) -> bytes:
    payload = json.loads(text("wamid.unused"))
    value = payload["entry"][0]["changes"][0]["value"]
    del value["messages"], value["contacts"]
    value["statuses"] = [
        {"id": wamid, "status": status, "timestamp": "1760000000", "recipient_id": "15557770000"}
        for wamid, status in updates
    ]
    return json.dumps(payload).encode()


def test_statuses_are_applied_in_bulk_and_never_backwards(
    client, account, tenant_a, django_assert_max_num_queries
):
    messages = _outbound(tenant_a, 30)
    for wamid in [m.external_id for m in messages]:
        post(client, _statuses([(wamid, "sent"), (wamid, "delivered"), (wamid, "read")]))
    post(client, _statuses([(messages[0].external_id, "delivered")]))  # late: ignored
    post(client, _statuses([(messages[1].external_id, "failed")]))  # after read: ignored

    # 32 events, 92 status updates: about 20 statements (claims, savepoints, one locked
    # read, one UPDATE of all messages, the events marked done), not one per update.
    with django_assert_max_num_queries(20):
        result = inbound.inbox_drain(client_id=tenant_a.pk)

    assert result.events == 32 and result.done == 32
    with inside(tenant_a):
        rows = Message.objects.filter(direction="out")
        assert {m.status for m in rows} == {"read"}
        assert all(m.read_at and m.sent_at for m in rows)


def test_database_down_is_a_fast_503_never_a_200(worker_env):
    script = """
import time
import uuid
import django
django.setup()
from django.test import Client
started = time.monotonic()
response = Client().post(
    "/webhook/whatsapp/test-a/", data=b"{}", content_type="application/json",
    HTTP_X_HUB_SIGNATURE_256="sha256=" + "0" * 64,
)
print(response.status_code, round(time.monotonic() - started, 2), response.json()["error"]["code"])
"""
    env = {**worker_env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:9/wafaa"}
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    status, seconds, code = run.stdout.split()[-3:]
    assert (status, code) == ("503", "unavailable"), run.stdout + run.stderr
    assert float(seconds) < 2
    assert time.monotonic() - started < 30


def test_redis_down_the_webhook_is_still_recorded_at_once_and_drained_later(
    live, committed_client, worker_env
):
    """The web process never waits on the broker: with Redis unreachable the webhook is
    stored and answered 200 at once; the nudge is lost, the event is not (the sweep or any
    later drain stores it)."""
    phone_id = "1065403522" + uuid.uuid4().hex[:5].translate(str.maketrans("abcdef", "123456"))
    account = ChannelAccountFactory(client=committed_client, external_id=phone_id)
    body = wa_text_payload(message_id="wamid.NOREDIS", text="hi", phone_id=phone_id)
    script = f"""
import time
import uuid
import django
django.setup()
from django.test import Client
started = time.monotonic()
response = Client().post(
    "/webhook/whatsapp/{committed_client.slug}/", data={body!r}, content_type="application/json",
    HTTP_X_HUB_SIGNATURE_256={sign_body(body, account.app_secret)!r},
)
print(response.status_code, round(time.monotonic() - started, 2))
time.sleep(0.5)  # let the nudge thread fail against the dead broker
"""
    dead = "redis://127.0.0.1:9/0"
    env = {**worker_env, "REDIS_URL": dead, "CELERY_BROKER_URL": dead}
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    # The process logs JSON lines on stdout too: the answer is the line "<status> <seconds>".
    [answer] = [line for line in run.stdout.splitlines() if re.fullmatch(r"\d{3} [\d.]+", line)]
    status, seconds = answer.split()
    assert status == "200", run.stdout + run.stderr
    assert float(seconds) < 1
    [event] = InboxEvent.objects.filter(client=committed_client)
    assert event.state == "pending" and bytes(event.body) == body

    inbound.inbox_drain(client_id=committed_client.pk)

    assert inbound_ids(committed_client) == ["wamid.NOREDIS"]
