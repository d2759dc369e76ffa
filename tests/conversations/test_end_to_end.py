"""End to end: signed webhook → real Celery worker → fake OpenAI → fake Graph API.

These tests commit for real (the worker is another process), in a client created for the
test and dropped after it (`committed_client`).
"""

from __future__ import annotations

import time
import uuid

from conversations.models import Conversation, Message
from tests.conftest import inside
from tests.factories import post_webhook, wa_text_payload


def _settle(seconds=1.5):
    time.sleep(seconds)  # let any (wrong) extra reply show up before asserting there is none


def test_a_text_message_gets_exactly_one_grounded_reply(client, shop, fake_graph):
    shop.send(client, "What time do you open?")
    fake_graph.wait_for(1, timeout=15)
    _settle()
    assert fake_graph.sent_texts() == ["We are open every day from 8am to 10pm."]
    [typing] = fake_graph.typing_indicators()  # read and typing, once
    [inbound] = shop.messages(direction="in")
    assert typing.json["message_id"] == inbound.external_id
    shop.wait_until(lambda: shop.messages(direction="out", status="sent"))
    [reply] = shop.messages(direction="out")
    assert reply.citations and reply.trace_id


def test_redelivered_webhook_gives_one_reply(client, shop, fake_graph):
    body = wa_text_payload(
        message_id="wamid.REDELIVERED1", text="Do you deliver?", phone_id=shop.account.external_id
    )
    for _ in range(3):
        assert post_webhook(client, shop.url, body).status_code == 200
    fake_graph.wait_for(1, timeout=15)
    _settle()
    assert len(fake_graph.message_sends()) == 1


def test_a_rerun_task_still_gives_one_reply(client, shop, fake_graph):
    from conversations.tasks import handle_inbound_task

    shop.send(client, "How much is a cappuccino?")
    fake_graph.wait_for(1, timeout=15)
    [inbound] = shop.messages(direction="in")
    with inside(shop.client):
        handle_inbound_task.delay(inbound.pk)  # a redelivered task
    _settle()
    assert len(fake_graph.message_sends()) == 1


def test_a_burst_of_three_messages_gets_one_reply(client, shop, fake_graph, settings):
    settings.REPLY_QUIET_PERIOD_SECONDS = 1.0
    for text in ["Hello", "one question", "can I get a refund?"]:
        shop.send(client, text)
    fake_graph.wait_for(1, timeout=15)
    _settle(2.0)
    assert fake_graph.sent_texts() == ["Refunds are possible within 7 days with the receipt."]


def test_handoff_keyword_switches_mode_and_silences_the_bot(client, shop, fake_graph):
    shop.send(client, "Can I talk to a human?")
    fake_graph.wait_for(1, timeout=15)
    with inside(shop.client):
        conversation = Conversation.objects.get()
    assert conversation.mode == "handoff"
    shop.send(client, "hello? anyone?")
    _settle()
    assert len(fake_graph.message_sends()) == 1  # only the handoff acknowledgement


def test_agent_reply_is_sent_and_resume_gives_the_bot_back(client, shop, fake_graph, api):
    from django.contrib.auth import get_user_model

    from tenants.models import Membership

    shop.send(client, "I need a person")
    fake_graph.wait_for(1, timeout=15)
    user = get_user_model().objects.create_user(
        f"agent-{uuid.uuid4().hex[:8]}@shop.example", "", "pw-123456789"
    )
    user.email = user.username
    user.save()
    Membership.objects.create(user=user, client=shop.client, role="agent")
    api.force_authenticate(user=user)
    with inside(shop.client):
        conversation = Conversation.objects.get()
    base = f"/api/v1/clients/{shop.client.pk}/conversations/{conversation.pk}"
    response = api.post(
        f"{base}/messages", {"text": "Hi, this is Sara from the shop."}, format="json"
    )
    assert response.status_code == 201, response.content
    fake_graph.wait_for(2, timeout=15)
    assert fake_graph.sent_texts()[-1] == "Hi, this is Sara from the shop."
    assert api.post(f"{base}/resume").json()["mode"] == "bot"
    shop.send(client, "What are your opening hours?")
    fake_graph.wait_for(3, timeout=15)
    assert fake_graph.sent_texts()[-1] == "We are open every day from 8am to 10pm."
    with inside(shop.client):
        kinds = list(conversation.events.values_list("kind", "actor"))
    assert ("agent_reply", user.email) in kinds and ("resume", user.email) in kinds


def test_llm_down_gives_fallback_and_handoff(client, shop, fake_graph, fake_llm):
    fake_llm.fail_next(status=500, times=20)
    shop.send(client, "What are your opening hours?")
    fake_graph.wait_for(1, timeout=30)
    with inside(shop.client):
        conversation = Conversation.objects.get()
    assert conversation.mode == "handoff" and conversation.handoff_reason == "llm_unavailable"
    assert len(fake_llm.chat_calls) == 3  # the first try and LLM_MAX_RETRIES=2 retries


def test_agent_takeover_while_the_model_thinks_keeps_the_draft_unsent(
    client, shop, fake_graph, fake_llm, api
):
    from django.contrib.auth import get_user_model

    fake_llm.hang_next(1.5)
    shop.send(client, "Do you deliver?")
    shop.wait_until(lambda: fake_llm.chat_calls)
    staff = get_user_model().objects.create_user(
        f"staff-{uuid.uuid4().hex[:8]}@wafaa.example",
        "x@wafaa.example",
        "pw-123456789",
        is_staff=True,
    )
    api.force_authenticate(user=staff)
    with inside(shop.client):
        conversation = Conversation.objects.get()
    response = api.post(f"/api/v1/clients/{shop.client.pk}/conversations/{conversation.pk}/handoff")
    assert response.status_code == 200
    shop.wait_until(lambda: shop.messages(direction="out"))
    _settle()
    assert fake_graph.message_sends() == []
    [draft] = shop.messages(direction="out")
    assert draft.status == "not_sent"
    get_user_model().objects.filter(pk=staff.pk).delete()


def test_sweeper_reenqueues_a_message_whose_task_was_lost(shop, fake_graph, settings):
    from channels_app.providers import InboundMessage  # noqa: F401 - shape reference
    from conversations import services
    from conversations.tasks import inbound_sweep_task
    from tests.conversations.helpers import inbound

    # Stored but never enqueued: as if Redis lost the task.
    with inside(shop.client):
        message, _ = services.message_receive(
            account=shop.account,
            inbound=inbound("Can I get a refund?", phone_id=shop.account.external_id),
        )
        Message.objects.filter(pk=message.pk).update(
            updated_at=message.created_at - __import__("datetime").timedelta(minutes=10)
        )
        inbound_sweep_task.delay()
    fake_graph.wait_for(1, timeout=15)
    assert fake_graph.sent_texts() == ["Refunds are possible within 7 days with the receipt."]
