"""What each kind of inbound event does besides being stored (see docs/channels.md).

`inbound_receive()` is the one entry for a parsed inbound event. Most kinds are stored as a new
message by `services.message_receive`; some change what is already there instead:

- an edit (WhatsApp `edit`, Instagram `message_edit`) rewrites the original message, keeping
  the earlier text in `raw["edits"]`; an original the bot has not answered yet is then answered
  in its new form (its reply task reads the text when it runs), an answered one is not again;
- a deletion (WhatsApp `revoke`, Instagram `is_deleted`) empties the original and marks it;
- an echo of what the business wrote in the WhatsApp Business app (coexistence) is stored as
  the business's outbound message, and the bot steps back: a person is talking;
- a number change re-keys the contact to the new `wa_id`, keeping its history;
- a referral (an ad click or a product) is put on the conversation and counted per ad;
- an order notifies the client's systems (`order_received`).
"""

from __future__ import annotations

import dataclasses
import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from channels_app.providers import InboundMessage
from conversations import handoff, notifications, services
from conversations.models import Contact, Conversation, Message
from wafaa import context, metrics

logger = logging.getLogger(__name__)

BUSINESS_APP = "business_app"  # the actor of what the business did in the WhatsApp Business app


def inbound_receive(*, account, inbound: InboundMessage) -> tuple[Message | None, bool]:
    """Record one inbound event of any kind. Returns (message, created) like
    `services.message_receive`; the caller enqueues a reply only for a created message whose
    status is `received`."""
    if inbound.echo:
        return echo_receive(account=account, inbound=inbound)
    if inbound.type == "edit":
        return message_edit(account=account, inbound=inbound)
    message, created = services.message_receive(account=account, inbound=inbound)
    if created and message is not None:
        _after_receive(account=account, message=message, inbound=inbound)
    return message, created


def _after_receive(*, account, message: Message, inbound: InboundMessage) -> None:
    conversation = message.conversation
    if inbound.referral:
        conversation_attribute(
            conversation=conversation, referral=inbound.referral, at=inbound.timestamp
        )
        metrics.count_ad_referral(account.client.slug, account.kind, inbound.referral)
    if inbound.order:
        notifications.notify(
            conversation=conversation,
            event="order_received",
            data={"message_id": message.pk},  # the order itself is read at delivery
        )
    if inbound.system:
        contact_identity_change(
            contact=conversation.contact,
            conversation=conversation,
            system=inbound.system,
            at=inbound.timestamp or timezone.now(),
        )


# --- edits ------------------------------------------------------------------------------------


def message_edit(*, account, inbound: InboundMessage) -> tuple[Message | None, bool]:
    """Apply a customer's edit to the message it changes.

    An edit of a message we never received (it predates the account, or was lost) is stored as
    the text it now says, and answered like any new message.
    """
    with transaction.atomic():
        original = (
            Message.objects.select_for_update()
            .filter(external_id=inbound.target_external_id, direction=Message.Direction.IN)
            .first()
        )
        if original is None:
            as_new = dataclasses.replace(inbound, type="text", target_external_id=None)
            return services.message_receive(account=account, inbound=as_new)
        edits = list(original.raw.get("edits", []))
        if any(edit.get("id") == inbound.external_id for edit in edits):
            return original, False  # a redelivered edit
        edits.append(
            {
                "id": inbound.external_id,
                "previous_text": original.text,
                "at": (inbound.timestamp or timezone.now()).isoformat(),
            }
        )
        original.raw = {**original.raw, "edits": edits}
        original.text = inbound.text or ""
        original.edited_at = inbound.timestamp or timezone.now()
        original.save(update_fields=["raw", "text", "edited_at", "updated_at"])
    services._context_forget(original.conversation_id)
    logger.info(
        "customer edited a message",
        extra={"message_id": str(original.pk), "status": original.status},
    )
    return original, False


# --- coexistence echoes -----------------------------------------------------------------------


def echo_receive(*, account, inbound: InboundMessage) -> tuple[Message | None, bool]:
    """What the business wrote from the WhatsApp Business app: stored as its outbound message,
    and the conversation handed to a person (reason `business_replied`) so the bot stops."""
    existing = Message.objects.filter(external_id=inbound.external_id).first()
    if existing is not None:
        return existing, False
    # The customer did not write: an existing contact is not "seen" by the business's message.
    contact = Contact.objects.filter(
        channel=account.kind, external_id=inbound.contact_key
    ).first() or services.contact_upsert(channel=account.kind, inbound=inbound)
    conversation = services.conversation_for(
        contact=contact, account_id=account.pk, channel=account.kind
    )
    sent_at = inbound.timestamp or timezone.now()
    try:
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation,
                direction=Message.Direction.OUT,
                author=Message.Author.AGENT,
                type=inbound.type,
                text=inbound.text or "",
                media_id=inbound.media_id or "",
                media_mime_type=inbound.media_mime_type or "",
                external_id=inbound.external_id,
                reply_to_external_id=inbound.reply_to_external_id or "",
                status=Message.Status.SENT,
                sent_at=sent_at,
                author_email=BUSINESS_APP,
                trace_id=context.current_trace_id() or "",
                raw={**inbound.raw, "source": BUSINESS_APP},
            )
    except IntegrityError:
        return Message.objects.get(external_id=inbound.external_id), False
    Conversation.objects.filter(pk=conversation.pk).update(
        last_outbound_at=sent_at, updated_at=timezone.now()
    )
    services._context_forget(conversation.pk)
    if conversation.mode == Conversation.Mode.BOT:
        handoff.conversation_handoff(
            conversation=conversation,
            reason="business_replied",
            actor=BUSINESS_APP,
            notify_data={"message_id": message.pk},
        )
    return message, True


# --- ad attribution ---------------------------------------------------------------------------


def conversation_attribute(*, conversation: Conversation, referral: dict, at=None) -> None:
    """Put the latest ad (or product) that brought the customer on the conversation."""
    Conversation.objects.filter(pk=conversation.pk).update(
        ad_source_type=(referral.get("source_type") or "")[:32],
        ad_source_id=(referral.get("source_id") or referral.get("product_retailer_id") or "")[:128],
        ad_source_url=referral.get("source_url") or "",
        ad_headline=(referral.get("headline") or "")[:300],
        ad_ctwa_clid=(referral.get("ctwa_clid") or "")[:512],
        ad_referred_at=at or timezone.now(),
    )


# --- number and identity changes -------------------------------------------------------------


def contact_identity_change(
    *, contact: Contact, conversation: Conversation, system: dict, at
) -> Contact:
    """A WhatsApp system notice about the customer: a new phone number re-keys the contact
    (history kept; a contact already made for the new number is merged into this one), a new
    security identity is only recorded. Either way `customer_identity_changed` is recorded."""
    kind = system.get("kind") or ""
    new_wa_id = system.get("new_wa_id") or ""
    detail = {"change": kind}
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=contact.pk)
        fields = ["identity_changed_at", "updated_at"]
        contact.identity_changed_at = at
        if kind == "user_changed_number" and new_wa_id and new_wa_id != contact.wa_id:
            old_wa_id = contact.wa_id
            _merge_duplicate(contact=contact, wa_id=new_wa_id)
            if contact.external_id == old_wa_id:  # keyed by the phone number, not a user id
                contact.external_id = new_wa_id
                fields.append("external_id")
            if old_wa_id and old_wa_id not in contact.previous_wa_ids:
                contact.previous_wa_ids = [*contact.previous_wa_ids, old_wa_id]
            contact.wa_id = new_wa_id
            contact.phone = new_wa_id
            fields += ["wa_id", "phone", "previous_wa_ids"]
            detail.update(previous_wa_id=old_wa_id, new_wa_id=new_wa_id)
        contact.save(update_fields=fields)
        services.event_record(
            conversation=conversation, kind="customer_identity_changed", actor="customer", **detail
        )
    logger.info("customer identity changed", extra={"contact": contact.pk, "change": kind})
    return contact


def _merge_duplicate(*, contact: Contact, wa_id: str) -> None:
    """The customer may have written from the new number before Meta's notice arrived: that
    contact's conversations move to this one and the duplicate goes."""
    duplicates = Contact.objects.filter(channel=contact.channel, wa_id=wa_id).exclude(pk=contact.pk)
    duplicates = duplicates | Contact.objects.filter(
        channel=contact.channel, external_id=wa_id
    ).exclude(pk=contact.pk)
    for duplicate in duplicates.distinct():
        Conversation.objects.filter(contact=duplicate).update(contact=contact)
        if duplicate.first_seen_at and (
            contact.first_seen_at is None or duplicate.first_seen_at < contact.first_seen_at
        ):
            contact.first_seen_at = duplicate.first_seen_at
            contact.save(update_fields=["first_seen_at"])
        duplicate.delete()
