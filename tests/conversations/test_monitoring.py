"""What customers feel, sampled for alerts (conversations.monitoring)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from conversations.models import Contact, Conversation, Message
from conversations.monitoring import client_waits, customer_waits_sample
from wafaa import metrics


def _conversation(n: int, **fields) -> Conversation:
    contact = Contact.objects.create(
        channel="whatsapp", external_id=f"1555000{n:04d}", wa_id=f"1555000{n:04d}"
    )
    return Conversation.objects.create(
        contact=contact, channel_account_id=1, channel="whatsapp", **fields
    )


def _inbound(conversation: Conversation, status: str, age: timedelta) -> Message:
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.IN,
        author=Message.Author.CUSTOMER,
        type="text",
        text="hello?",
        external_id=f"wamid.mon{conversation.pk}-{status}",
        status=status,
    )
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - age)
    return message


def test_each_wait_is_counted_and_what_was_answered_is_not(in_tenant_a, settings):
    settings.HANDOFF_WAITING_ALERT_MINUTES = 30
    now = timezone.now()
    # A message stuck for 10 minutes, one answered long ago (ignored).
    stuck = _conversation(1, last_inbound_at=now - timedelta(minutes=10))
    _inbound(stuck, Message.Status.RECEIVED, timedelta(minutes=10))
    _inbound(_conversation(2), Message.Status.ANSWERED, timedelta(hours=5))
    # Windows: one closes within the hour unanswered; one answered; one already closed;
    # one with hours left.
    _conversation(3, last_inbound_at=now - timedelta(hours=23, minutes=30))
    _conversation(
        4,
        last_inbound_at=now - timedelta(hours=23, minutes=30),
        last_outbound_at=now - timedelta(hours=23),
    )
    _conversation(5, last_inbound_at=now - timedelta(hours=25))
    _conversation(6, last_inbound_at=now - timedelta(hours=3))
    # Handoffs: waiting 45 min with no reply; answered after the handoff; too recent.
    _conversation(7, mode=Conversation.Mode.HANDOFF, handoff_at=now - timedelta(minutes=45))
    _conversation(
        8,
        mode=Conversation.Mode.HANDOFF,
        handoff_at=now - timedelta(minutes=45),
        last_outbound_at=now - timedelta(minutes=40),
    )
    _conversation(9, mode=Conversation.Mode.HANDOFF, handoff_at=now - timedelta(minutes=10))

    figures = client_waits(now=now)
    assert 595 < figures["oldest_unanswered_seconds"] < 660
    assert figures["window_closing"] == 1
    assert figures["handoffs_waiting"] == 1

    totals = customer_waits_sample()  # over every client: at least this one's
    assert totals["oldest_unanswered_seconds"] >= figures["oldest_unanswered_seconds"]
    assert totals["window_closing"] >= 1 and totals["handoffs_waiting"] >= 1
    assert metrics.CONVERSATIONS_WINDOW_CLOSING._value.get() == totals["window_closing"]
    assert metrics.HANDOFFS_WAITING._value.get() == totals["handoffs_waiting"]


def test_a_quiet_client_has_nothing_waiting(in_tenant_b):
    assert client_waits() == {
        "oldest_unanswered_seconds": 0.0,
        "window_closing": 0,
        "handoffs_waiting": 0,
    }


def test_final_send_failures_and_failed_deliveries_are_counted(in_tenant_a):
    from channels_app.providers import StatusUpdate
    from conversations.inbound import message_statuses_apply
    from conversations.outbound import message_send_fail

    conversation = _conversation(20)
    reply = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUT,
        author=Message.Author.BOT,
        text="hi",
        external_id="wamid.out-mon-1",
        status=Message.Status.SENT,
    )
    failed = metrics.SENDS_FAILED.labels(channel="whatsapp", reason="window_closed")
    before = failed._value.get()
    message_send_fail(reply, "window_closed", "too late")
    assert failed._value.get() == before + 1

    other = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUT,
        author=Message.Author.BOT,
        text="hi again",
        external_id="wamid.out-mon-2",
        status=Message.Status.SENT,
    )
    statuses = metrics.DELIVERY_STATUSES.labels(channel="whatsapp", status="failed")
    before = statuses._value.get()
    message_statuses_apply(
        updates=[
            StatusUpdate(
                channel="whatsapp",
                account_external_id="1",
                external_id=other.external_id,
                status="failed",
                recipient=None,
                timestamp=timezone.now(),
                errors=[{"code": 131026}],
            )
        ]
    )
    assert statuses._value.get() == before + 1
