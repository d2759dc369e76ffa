"""Human handoff: when the bot steps aside, agents' replies, and handing back to the bot."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from channels_app.models import ChannelAccount
from channels_app.templates import whatsapp_template_names
from conversations import notifications, services
from conversations.models import Conversation, Message
from wafaa import metrics
from wafaa.errors import ApplicationError
from wafaa.text import normalize

logger = logging.getLogger(__name__)


class ConversationClosedError(ApplicationError):
    code = "conversation_closed"
    status_code = 409


class WindowClosedError(ApplicationError):
    code = "window_closed"
    status_code = 422


def asks_for_person(text: str, keywords: list[str]) -> bool:
    """Does the customer ask for a person? Whole-word match of the client's keywords."""
    normalised = normalize(text)
    for keyword in keywords or []:
        pattern = r"(?<!\w)" + re.escape(normalize(keyword)) + r"(?!\w)"
        if re.search(pattern, normalised):
            return True
    return False


def conversation_handoff(
    *, conversation: Conversation, reason: str, actor: str, notify_data: dict | None = None
) -> Conversation:
    if conversation.mode == Conversation.Mode.HANDOFF:
        # Already with the people: a person taking over claims it (assigned to them).
        if "@" in actor:
            conversation_assign(conversation=conversation, agent_email=actor)
        return conversation
    conversation.mode = Conversation.Mode.HANDOFF
    conversation.handoff_reason = reason[:64]
    conversation.handoff_at = timezone.now()
    conversation.low_confidence_streak = 0
    if "@" in actor:
        conversation.assigned_agent_email = actor
    conversation.save(
        update_fields=[
            "mode",
            "handoff_reason",
            "handoff_at",
            "low_confidence_streak",
            "assigned_agent_email",
            "updated_at",
        ]
    )
    services.event_record(conversation=conversation, kind="handoff", actor=actor, reason=reason)
    from tenants.services import usage_add

    usage_add(client_id=connection.tenant.pk, handoffs=1)
    metrics.REPLIES.labels(outcome="handoff_started").inc()
    logger.info(
        "conversation handed to a person", extra={"conversation": conversation.pk, "reason": reason}
    )
    notifications.notify(
        conversation=conversation, event="handoff", data={"reason": reason, **(notify_data or {})}
    )
    return conversation


def conversation_assign(*, conversation: Conversation, agent_email: str) -> Conversation:
    """Assign a conversation that is with the people to `agent_email` (a take-over, or the
    first reply to an unassigned one); the previous assignee is kept in the event."""
    previous = conversation.assigned_agent_email
    if previous == agent_email:
        return conversation
    conversation.assigned_agent_email = agent_email
    conversation.save(update_fields=["assigned_agent_email", "updated_at"])
    services.event_record(
        conversation=conversation, kind="assigned", actor=agent_email, previous=previous
    )
    return conversation


def conversation_mark_read(*, conversation_id: int) -> bool:
    """A person has seen the customer's messages (opened the conversation): unread back to 0.
    One UPDATE, none of the row's other fields touched; True when something was unread."""
    return bool(
        Conversation.objects.filter(pk=conversation_id, unread_count__gt=0).update(unread_count=0)
    )


def conversation_resume(*, conversation: Conversation, actor: str) -> Conversation:
    if conversation.mode == Conversation.Mode.CLOSED:
        raise ConversationClosedError(
            "This conversation is closed; the customer's next message opens a new one."
        )
    conversation.mode = Conversation.Mode.BOT
    conversation.handoff_reason = ""
    conversation.handoff_at = None
    conversation.assigned_agent_email = ""  # with the bot, nobody's ("assigned to me" drops it)
    conversation.save(
        update_fields=[
            "mode",
            "handoff_reason",
            "handoff_at",
            "assigned_agent_email",
            "updated_at",
        ]
    )
    services.event_record(conversation=conversation, kind="resume", actor=actor)
    return conversation


def conversation_close(*, conversation: Conversation, actor: str) -> Conversation:
    conversation.mode = Conversation.Mode.CLOSED
    conversation.save(update_fields=["mode", "updated_at"])
    services.event_record(conversation=conversation, kind="close", actor=actor)
    return conversation


def agent_reply(*, conversation: Conversation, text: str, agent_email: str) -> Message:
    """A person's reply through the channel. Takes the conversation over from the bot."""
    if conversation.mode == Conversation.Mode.CLOSED:
        raise ConversationClosedError(
            "This conversation is closed. Replies go to open conversations only."
        )
    if conversation.channel == "whatsapp" and not services.within_customer_window(conversation):
        raise window_closed_error(conversation)
    return agent_message_store(conversation=conversation, agent_email=agent_email, text=text)


def window_closed_error(conversation: Conversation) -> WindowClosedError:
    """The refusal of a free-form message outside WhatsApp's 24-hour window, naming the
    approved templates that could be sent instead (none named when Meta cannot list them)."""
    account = ChannelAccount.objects.filter(pk=conversation.channel_account_id).first()
    names = whatsapp_template_names(account=account) if account else []
    hint = (
        "Send one of these templates instead: " + ", ".join(names) + "."
        if names
        else "Send an approved template, or wait for the customer to write again."
    )
    return WindowClosedError(
        "The customer's last message is more than 24 hours old: WhatsApp only allows "
        "template messages now. " + hint,
        details={"templates": names},
    )


def agent_message_store(
    *, conversation: Conversation, agent_email: str, text: str, **fields
) -> Message:
    """Store what an agent sends (text, template or media), take the conversation over from
    the bot, and send it after commit."""
    from conversations.tasks import message_send_task

    with transaction.atomic():
        if conversation.mode == Conversation.Mode.BOT:
            conversation_handoff(
                conversation=conversation, reason="agent_replied", actor=agent_email
            )
        elif not conversation.assigned_agent_email:
            # The first person to answer a waiting conversation has it ("assigned to me").
            conversation_assign(conversation=conversation, agent_email=agent_email)
        message = services.message_store_outbound(
            conversation=conversation,
            author=Message.Author.AGENT,
            text=text,
            author_email=agent_email,
            **fields,
        )
        Conversation.objects.filter(pk=conversation.pk).update(unread_count=0)
        services.event_record(
            conversation=conversation, kind="agent_reply", actor=agent_email, message_id=message.pk
        )
        transaction.on_commit(lambda: message_send_task.delay(message.pk))
    from tenants.services import usage_add

    usage_add(client_id=connection.tenant.pk, messages_out=1)
    return message


def handoffs_expire() -> int:
    """Hand idle handoff conversations back to the bot (beat, per client)."""
    threshold = timezone.now() - timedelta(minutes=settings.HANDOFF_IDLE_MINUTES)
    idle = Conversation.objects.filter(mode=Conversation.Mode.HANDOFF, updated_at__lt=threshold)
    count = 0
    for conversation in idle:
        conversation_resume(conversation=conversation, actor="system")
        count += 1
    return count
