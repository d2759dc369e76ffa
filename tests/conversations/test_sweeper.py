"""The sweepers: stored messages whose task was lost are handed on again, once."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from conversations import services, sweeper
from conversations.models import Message
from tests.conversations.helpers import add_faq_knowledge, inbound
from tests.factories import ChannelAccountFactory


def test_a_reply_stuck_in_queued_is_sent_once(in_tenant_a, fake_graph, eager_tasks, settings):
    settings.SAME_CUSTOMER_SPACING_MS = 0
    account = ChannelAccountFactory(client=in_tenant_a)
    message, _ = services.message_receive(account=account, inbound=inbound("hi"))
    reply = services.message_store_outbound(
        conversation=message.conversation, author="bot", text="Hello!"
    )
    assert sweeper.outbound_sweep() == 0  # fresh: its task may still be on the way
    Message.objects.filter(pk=reply.pk).update(updated_at=timezone.now() - timedelta(minutes=10))
    assert sweeper.outbound_sweep() == 1
    reply.refresh_from_db()
    assert reply.status == "sent"
    assert sweeper.outbound_sweep() == 0
    assert fake_graph.sent_texts() == ["Hello!"]


def test_an_inbound_message_whose_task_was_lost_is_answered(
    in_tenant_a, fake_graph, eager_tasks, settings, django_capture_on_commit_callbacks
):
    settings.SAME_CUSTOMER_SPACING_MS = 0
    settings.OPENAI_API_KEY = ""
    add_faq_knowledge()
    account = ChannelAccountFactory(client=in_tenant_a)
    message, _ = services.message_receive(account=account, inbound=inbound("Can I get a refund?"))
    Message.objects.filter(pk=message.pk).update(updated_at=timezone.now() - timedelta(minutes=10))
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeper.inbound_sweep() == 1
    message.refresh_from_db()
    assert message.status == "answered"
    assert fake_graph.sent_texts() == ["Refunds are possible within 7 days with the receipt."]


def test_idle_handoffs_go_back_to_the_bot(in_tenant_a, settings):
    from conversations import handoff
    from conversations.models import Conversation

    settings.HANDOFF_IDLE_MINUTES = 30
    account = ChannelAccountFactory(client=in_tenant_a)
    idle_msg, _ = services.message_receive(
        account=account, inbound=inbound("help", wa_id="15550000001")
    )
    busy_msg, _ = services.message_receive(
        account=account, inbound=inbound("help", wa_id="15550000002")
    )
    Conversation.objects.filter(pk__in=[idle_msg.conversation_id, busy_msg.conversation_id]).update(
        mode="handoff", handoff_at=timezone.now()
    )
    Conversation.objects.filter(pk=idle_msg.conversation_id).update(
        updated_at=timezone.now() - timedelta(minutes=45)
    )
    assert handoff.handoffs_expire() == 1
    assert Conversation.objects.get(pk=idle_msg.conversation_id).mode == "bot"
    assert Conversation.objects.get(pk=busy_msg.conversation_id).mode == "handoff"
    event = Conversation.objects.get(pk=idle_msg.conversation_id).events.get()
    assert (event.kind, event.actor) == ("resume", "system")
