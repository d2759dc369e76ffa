"""Sending (conversations.outbound) through the Graph API (a fake Meta server on localhost):
each error class, parts, retries, media fetch."""

from __future__ import annotations

import pytest

from channels_app.models import ChannelAccount
from conversations import outbound
from conversations.models import Contact, Conversation, Message
from tests.factories import ChannelAccountFactory


@pytest.fixture
def queued(in_tenant_a, fake_graph, settings):
    settings.SAME_CUSTOMER_SPACING_MS = 0
    account = ChannelAccountFactory(client=in_tenant_a)
    contact = Contact.objects.create(
        channel="whatsapp", external_id="15551234567", wa_id="15551234567"
    )
    conversation = Conversation.objects.create(
        contact=contact, channel_account_id=account.pk, channel="whatsapp"
    )

    def make(text="Our shop opens at 8am.", **fields):
        return Message.objects.create(
            conversation=conversation,
            direction="out",
            author="bot",
            text=text,
            status="queued",
            **fields,
        )

    make.account = account
    return make


def test_send_records_the_graph_id_and_marks_sent(queued, fake_graph):
    message = queued()
    assert outbound.message_send(message_id=message.pk) == "sent"
    message.refresh_from_db()
    assert message.status == "sent" and message.external_id.startswith("wamid.")
    [request] = fake_graph.message_sends()
    assert request.json["to"] == "15551234567"
    assert request.json["text"]["body"] == "Our shop opens at 8am."
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["authorization"].startswith("Bearer EAAtesttoken")


def test_a_sent_message_is_never_sent_again(queued, fake_graph):
    message = queued()
    outbound.message_send(message_id=message.pk)
    outbound.message_send(message_id=message.pk)
    assert len(fake_graph.message_sends()) == 1


def test_long_text_is_split_and_a_retry_continues_where_it_stopped(queued, fake_graph):
    message = queued(text=("word " * 1000).strip() + "\n\n" + ("more " * 300).strip())
    fake_graph.fail_next(status=500, code=2, times=1)
    # First part goes out, then the fake fails once... order: the failure applies to the first request.
    with pytest.raises(outbound.SendRetryableError):
        outbound.message_send(message_id=message.pk)
    assert outbound.message_send(message_id=message.pk) == "sent"
    message.refresh_from_db()
    texts = fake_graph.sent_texts()
    assert len(message.raw["part_ids"]) == 2
    assert all(len(t) <= 4096 for t in texts)
    assert len([r for r in fake_graph.message_sends(successful_only=True)]) == 2


@pytest.mark.parametrize("status,code", [(429, 130429), (400, 130429), (400, 131056), (500, 2)])
def test_throttling_and_server_errors_are_retried(queued, fake_graph, status, code):
    message = queued()
    fake_graph.fail_next(status=status, code=code)
    with pytest.raises(outbound.SendRetryableError):
        outbound.message_send(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == "queued"
    assert outbound.message_send(message_id=message.pk) == "sent"


def test_a_timeout_is_retried(queued, fake_graph, settings):
    settings.GRAPH_API_READ_TIMEOUT = 0.3
    message = queued()
    fake_graph.hang_next(1.0)
    with pytest.raises(outbound.SendRetryableError):
        outbound.message_send(message_id=message.pk)


def test_invalid_token_marks_the_account_and_stops(queued, fake_graph):
    message = queued()
    fake_graph.fail_next(status=401, code=190)
    assert outbound.message_send(message_id=message.pk) == "failed"
    message.refresh_from_db()
    assert message.failure_reason == "credentials_invalid"
    queued.account.refresh_from_db()
    assert queued.account.status == ChannelAccount.Status.CREDENTIALS_INVALID
    # Later sends do not hammer Meta with a known-bad token.
    second = queued()
    assert outbound.message_send(message_id=second.pk) == "failed"
    assert len(fake_graph.message_sends()) == 1


def test_outside_the_24_hour_window_fails_without_retry(queued, fake_graph):
    message = queued()
    fake_graph.fail_next(status=400, code=131047)
    assert outbound.message_send(message_id=message.pk) == "failed"
    message.refresh_from_db()
    assert message.failure_reason == "window_closed"


def test_other_client_errors_fail_without_retry(queued, fake_graph):
    message = queued()
    fake_graph.fail_next(status=400, code=100)
    assert outbound.message_send(message_id=message.pk) == "failed"
    message.refresh_from_db()
    assert message.failure_reason == "graph_100"


def test_send_task_retries_then_delivers_once(queued, fake_graph, eager_tasks, settings):
    from config.celery import app
    from conversations.tasks import message_send_task

    app.conf.task_eager_propagates = False  # eager retries re-run in place instead of raising
    message = queued()
    fake_graph.fail_next(status=429, code=130429, times=2)
    message_send_task.apply(args=(message.pk,), throw=False)
    message.refresh_from_db()
    assert message.status == "sent"
    assert len(fake_graph.message_sends(successful_only=True)) == 1


def test_inbound_media_is_fetched_by_id_within_the_size_limit(queued, fake_graph, settings):
    from channels_app import graph

    settings.MEDIA_ALLOWED_HOSTS = ["127.0.0.1"]  # the fake stands for Meta's media host

    fake_graph.add_media("media-123", b"\xff\xd8\xff" + b"0" * 1000, "image/jpeg")
    conversation = queued().conversation
    message = Message.objects.create(
        conversation=conversation,
        direction="in",
        author="customer",
        type="image",
        media_id="media-123",
        status="stored",
        external_id="wamid.IMG1",
    )
    data = outbound.media_fetch(message_id=message.pk)
    assert data.startswith(b"\xff\xd8\xff") and len(data) == 1003
    message.refresh_from_db()
    assert message.media_mime_type == "image/jpeg" and message.raw["media_size"] == 1003
    settings.MEDIA_MAX_BYTES = 100
    with pytest.raises(graph.MediaTooLargeError):
        outbound.media_fetch(message_id=message.pk)


def test_instagram_replies_go_to_the_instagram_send_api(in_tenant_a, fake_graph, settings):
    settings.SAME_CUSTOMER_SPACING_MS = 0
    account = ChannelAccountFactory(
        client=in_tenant_a, kind="instagram", external_id="17841400000000099"
    )
    contact = Contact.objects.create(channel="instagram", external_id="6789012345")
    conversation = Conversation.objects.create(
        contact=contact, channel_account_id=account.pk, channel="instagram"
    )
    message = Message.objects.create(
        conversation=conversation,
        direction="out",
        author="bot",
        text="Hello from the shop",
        status="queued",
    )
    assert outbound.message_send(message_id=message.pk) == "sent"
    [request] = fake_graph.message_sends()
    assert request.path.endswith("/17841400000000099/messages")
    assert request.json == {
        "recipient": {"id": "6789012345"},
        "message": {"text": "Hello from the shop"},
    }
    message.refresh_from_db()
    assert message.external_id.startswith("mid.")
