"""Writes on contacts, conversations and messages (inside the current client's schema).

The reply pipeline itself lives in conversations.pipeline; handoff and agent actions in
conversations.handoff. This module records what comes in and what goes out.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.core.cache import cache
from django.db.models import F
from django.utils import timezone

from channels_app.providers import NO_REPLY_TYPES, InboundMessage
from conversations.models import Contact, Conversation, ConversationEvent, Message
from wafaa import context, metrics
from wafaa.db import insert_or_nothing
from wafaa.tenancy import assert_client_schema

logger = logging.getLogger(__name__)

# Inbound types that carry something a reply can be based on.
TEXT_TYPES = {"text", "interactive", "button", "story_reply"}


def context_cache_key(conversation_id: int) -> str:
    return f"conversation:{conversation_id}:context"


def contact_upsert(*, channel: str, inbound: InboundMessage) -> Contact:
    now = inbound.timestamp or timezone.now()
    contact = Contact.objects.filter(channel=channel, external_id=inbound.contact_key).first()
    if contact is None and inbound.wa_id and inbound.user_id:
        # Meta started sending user_id (2026): an existing contact keyed by wa_id moves over.
        contact = Contact.objects.filter(channel=channel, external_id=inbound.wa_id).first()
    if contact is None:
        contact = Contact(
            channel=channel,
            external_id=inbound.contact_key,
            wa_id=inbound.wa_id or "",
            user_id=inbound.user_id or "",
            name=inbound.contact_name or inbound.username or "",
            phone=inbound.wa_id or "",
            first_seen_at=now,
            last_seen_at=now,
        )
        # ON CONFLICT DO NOTHING: a concurrent webhook may create it first, and a failed
        # INSERT would put the customer's number and name in PostgreSQL's log.
        if insert_or_nothing(contact, conflict_fields=["channel", "external_id"]):
            return contact
        contact = Contact.objects.get(channel=channel, external_id=inbound.contact_key)
    changes = {
        "external_id": inbound.contact_key,
        "wa_id": inbound.wa_id or contact.wa_id,
        "user_id": inbound.user_id or contact.user_id,
        "phone": inbound.wa_id or contact.phone,
        "name": inbound.contact_name or contact.name,
    }
    changed = [name for name, value in changes.items() if value != getattr(contact, name)]
    # last_seen_at is written at most once a minute: a chatty customer must not cost a write
    # per message on the webhook's hot path.
    stale = contact.last_seen_at is None or (now - contact.last_seen_at).total_seconds() > 60
    if changed or stale:
        for name, value in changes.items():
            setattr(contact, name, value)
        contact.last_seen_at = max(filter(None, [contact.last_seen_at, now]))
        contact.save(update_fields=[*changed, "last_seen_at", "updated_at"])
    return contact


def conversation_for(*, contact: Contact, account_id: int, channel: str) -> Conversation:
    """The contact's open conversation on this account, or a new one (a closed one stays closed)."""
    conversation = (
        Conversation.objects.filter(contact=contact, channel_account_id=account_id)
        .exclude(mode=Conversation.Mode.CLOSED)
        .order_by("-created_at")
        .first()
    )
    if conversation is None:
        conversation = Conversation.objects.create(
            contact=contact, channel_account_id=account_id, channel=channel
        )
    return conversation


def message_receive(*, account, inbound: InboundMessage) -> tuple[Message | None, bool]:
    """Store one inbound message once (unique external id). Returns (message, created).

    A redelivered message returns (existing, False) and nothing else happens. The reply task
    is enqueued by the caller on commit, only for created messages.
    """
    assert_client_schema()
    if inbound.type == "deleted":
        return _message_mark_deleted(inbound), False
    existing = Message.objects.filter(external_id=inbound.external_id).first()
    if existing is not None:
        return existing, False
    contact = contact_upsert(channel=account.kind, inbound=inbound)
    conversation = conversation_for(contact=contact, account_id=account.pk, channel=account.kind)
    if inbound.standby:
        status = Message.Status.STORED  # another app controls this thread: record, never reply
    elif inbound.type in NO_REPLY_TYPES:
        status = Message.Status.STORED  # reactions, notices, ad clicks: nothing to answer
    elif conversation.mode == Conversation.Mode.BOT:
        status = Message.Status.RECEIVED
    else:
        status = Message.Status.STORED
    message = Message(
        conversation=conversation,
        direction=Message.Direction.IN,
        author=Message.Author.CUSTOMER,
        type=inbound.type,
        text=inbound.text or "",
        media_id=inbound.media_id or "",
        media_url=inbound.media_url or "",
        media_mime_type=inbound.media_mime_type or "",
        external_id=inbound.external_id,
        reply_to_external_id=inbound.reply_to_external_id or "",
        payload=(inbound.payload or "")[:1000],
        status=status,
        trace_id=context.current_trace_id() or "",
        raw=inbound.raw,
        order=inbound.order,
        referral=inbound.referral,
        errors=inbound.errors,
        call_permission=inbound.call_permission,
        attachments=inbound.attachments,
    )
    # The same message arriving twice at once: not inserted, no error (and so no statement
    # with the customer's text in PostgreSQL's log).
    if not insert_or_nothing(message, conflict_fields=["external_id"]):
        return Message.objects.get(external_id=inbound.external_id), False
    Conversation.objects.filter(pk=conversation.pk).update(
        last_inbound_at=inbound.timestamp or timezone.now(),
        unread_count=F("unread_count") + 1,
        updated_at=timezone.now(),
    )
    _context_forget(conversation.pk)
    from tenants.services import usage_add

    usage_add(client_id=account.client_id, messages_in=1)
    metrics.MESSAGES.labels(channel=account.kind, direction="in", status="received").inc()
    metrics.count_client_message(account.client.slug, "in")
    if conversation.mode == Conversation.Mode.HANDOFF:
        from conversations import notifications

        notifications.notify(
            conversation=conversation,
            event="customer_message",
            data={"message_id": message.pk, "type": message.type},  # text: read at delivery
        )
    return message, True


def _message_mark_deleted(inbound: InboundMessage) -> Message | None:
    target = inbound.target_external_id or inbound.external_id
    message = Message.objects.filter(external_id=target).first()
    if message is not None and message.deleted_at is None:
        # The customer unsent it: keep the record, drop the content. An unanswered one stays
        # open, so its burst is still answered by the newest message's task; the pipeline
        # leaves deleted messages out of the question.
        message.text = ""
        message.transcript = ""
        message.deleted_at = inbound.timestamp or timezone.now()
        message.raw = {**message.raw, "deleted": True}
        message.save(update_fields=["text", "transcript", "deleted_at", "raw", "updated_at"])
        _context_forget(message.conversation_id)
    return message


def message_store_outbound(
    *,
    conversation: Conversation,
    author: str,
    text: str,
    status: str = Message.Status.QUEUED,
    in_reply_to: list[Message] | None = None,
    author_email: str = "",
    **fields,
) -> Message:
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUT,
        author=author,
        type=fields.pop("type", "text"),
        text=text,
        status=status,
        author_email=author_email,
        trace_id=context.current_trace_id() or "",
        **fields,
    )
    if in_reply_to:
        message.in_reply_to.set(in_reply_to)
    Conversation.objects.filter(pk=conversation.pk).update(
        last_outbound_at=timezone.now(), updated_at=timezone.now()
    )
    _context_forget(conversation.pk)
    return message


def event_record(*, conversation: Conversation, kind: str, actor: str, **detail) -> None:
    ConversationEvent.objects.create(
        conversation=conversation, kind=kind, actor=actor, detail=detail
    )


def _context_forget(conversation_id: int) -> None:
    try:
        cache.delete(context_cache_key(conversation_id))
    except Exception:  # a cache outage must not lose a message; the TTL bounds staleness
        logger.warning("could not invalidate conversation context cache")


def within_customer_window(conversation: Conversation, now: datetime | None = None) -> bool:
    """WhatsApp allows free-form replies for 24 h after the customer's last message."""
    if conversation.last_inbound_at is None:
        return False
    now = now or timezone.now()
    return (now - conversation.last_inbound_at).total_seconds() < 24 * 3600
