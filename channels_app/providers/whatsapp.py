"""WhatsApp Cloud API webhooks → `ParsedWebhook`.

Meta's payload is `{"object": "whatsapp_business_account", "entry": [...]}`; each entry (one
WhatsApp Business Account) has `changes[]`, and each change with `field == "messages"` has a
`value` with `metadata.phone_number_id`, `contacts[]`, `messages[]` and/or `statuses[]`. Meta
batches: one POST may hold several entries, changes, messages and statuses, for several phone
numbers, so every level is walked.

Routing: every parsed message and status carries `account_external_id` (the business phone
number id). An app-level webhook that serves many tenants parses once and groups the result
with `ParsedWebhook.for_account()`; `account_ids()` and `split_by_account()` exist for callers
that need to route *before* parsing (e.g. to look up each account's client first).

Parsing never raises: a malformed part is skipped with a reason in `ParsedWebhook.errors` and
the rest of the payload is still returned, because Meta retries the whole POST until it gets a
200 and a single bad event must not make us lose (or endlessly refuse) its valid siblings.
"""

from __future__ import annotations

import copy
from typing import Any

from .base import (
    META_STATUSES,
    WHATSAPP,
    IgnorePart,
    InboundMessage,
    ParsedWebhook,
    SkipPart,
    StatusUpdate,
    as_dict,
    as_list,
    as_str,
    collect,
    iter_entries,
    normalise_errors,
    parse_unix_timestamp,
    utc_now,
)

OBJECT = "whatsapp_business_account"
MESSAGES_FIELD = "messages"

# Media-carrying message types; each has an object of the same name with `id` and `mime_type`.
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")

# Every type we render to text; anything else Meta sends (order, system, request_welcome, new
# types Meta adds later) becomes 'unsupported' with the original kept in `raw`.
KNOWN_TYPES = (
    "text",
    *MEDIA_TYPES,
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "unsupported",
)


def parse(payload: Any) -> ParsedWebhook:
    """Parse one webhook body (already JSON-decoded). Never raises."""
    result = ParsedWebhook()
    for where, entry in iter_entries(payload, OBJECT, result):
        changes = entry.get("changes")
        if not isinstance(changes, list):
            result.errors.append(f"{where}: changes is not a list")
            continue
        for change_index, change in enumerate(changes):
            _parse_change(change, f"{where}.changes[{change_index}]", result)
    return result


def account_ids(payload: Any) -> list[str]:
    """Every business phone number id in the payload, in first-seen order, without parsing
    messages. Used to route an app-level webhook to its channel accounts."""
    seen: dict[str, None] = {}
    for change in _iter_message_changes(payload):
        phone_number_id = as_str(
            as_dict(as_dict(change.get("value")).get("metadata")).get("phone_number_id")
        )
        if phone_number_id:
            seen.setdefault(phone_number_id, None)
    return list(seen)


def split_by_account(payload: Any) -> dict[str, dict[str, Any]]:
    """Split a payload into one payload per phone number id.

    Each value is a complete webhook body of the same shape holding only that account's
    `messages` changes (entries without any are dropped), so it can be handed to the tenant that
    owns the account and parsed there. Changes of other fields, which have no phone number id,
    are not included in any part.
    """
    parts: dict[str, dict[str, Any]] = {}
    if not isinstance(payload, dict) or payload.get("object") != OBJECT:
        return parts
    for entry in as_list(payload.get("entry")):
        if not isinstance(entry, dict):
            continue
        per_account: dict[str, list[Any]] = {}
        for change in as_list(entry.get("changes")):
            if not isinstance(change, dict) or change.get("field") != MESSAGES_FIELD:
                continue
            metadata = as_dict(as_dict(change.get("value")).get("metadata"))
            phone_number_id = as_str(metadata.get("phone_number_id"))
            if phone_number_id:
                per_account.setdefault(phone_number_id, []).append(copy.deepcopy(change))
        for phone_number_id, changes in per_account.items():
            part = parts.setdefault(phone_number_id, {"object": OBJECT, "entry": []})
            new_entry = {k: copy.deepcopy(v) for k, v in entry.items() if k != "changes"}
            new_entry["changes"] = changes
            part["entry"].append(new_entry)
    return parts


# --- internals ----------------------------------------------------------------------------


def _iter_message_changes(payload: Any):
    if not isinstance(payload, dict) or payload.get("object") != OBJECT:
        return
    for entry in as_list(payload.get("entry")):
        if not isinstance(entry, dict):
            continue
        for change in as_list(entry.get("changes")):
            if isinstance(change, dict) and change.get("field") == MESSAGES_FIELD:
                yield change


def _parse_change(change: Any, where: str, result: ParsedWebhook) -> None:
    if not isinstance(change, dict):
        result.errors.append(f"{where}: not an object")
        return
    field_name = change.get("field")
    if field_name != MESSAGES_FIELD:
        # Template status, quality, account updates...: acknowledged, not ours to handle here.
        result.ignored.append(f"unknown_field:{field_name}")
        return
    value = change.get("value")
    if not isinstance(value, dict):
        result.errors.append(f"{where}: value is not an object")
        return
    phone_number_id = as_str(as_dict(value.get("metadata")).get("phone_number_id"))
    if not phone_number_id:
        # Without it we cannot tell which account (and so which client) the events are for.
        result.errors.append(f"{where}: missing metadata.phone_number_id")
        return

    # Errors Meta reports at the value level (outage notices and the like) are not messages.
    for error in normalise_errors(value.get("errors")):
        result.ignored.append(f"meta_error:{error['code']}")

    contacts = [c for c in as_list(value.get("contacts")) if isinstance(c, dict)]
    for index, message in enumerate(as_list(value.get("messages"))):
        collect(
            lambda m=message: _parse_message(m, phone_number_id, contacts),
            f"{where}.messages[{index}]",
            result.messages,
            result,
        )
    for index, status in enumerate(as_list(value.get("statuses"))):
        collect(
            lambda s=status: _parse_status(s, phone_number_id),
            f"{where}.statuses[{index}]",
            result.statuses,
            result,
        )


def _match_contact(message: dict[str, Any], contacts: list[dict[str, Any]]) -> dict[str, Any]:
    """The `contacts[]` entry describing the sender of `message`.

    Matched by business-scoped user id, then by phone number. Meta sends one contact per
    sender, and for some countries (Brazil, Mexico) `contacts[].wa_id` is written differently
    from the message's `from`, so a lone contact is used even when neither id matches.
    """
    user_id = as_str(message.get("from_user_id"))
    wa_id = as_str(message.get("from"))
    for contact in contacts:
        if user_id and as_str(contact.get("user_id")) == user_id:
            return contact
    for contact in contacts:
        if wa_id and as_str(contact.get("wa_id")) == wa_id:
            return contact
    if len(contacts) == 1:
        return contacts[0]
    return {}


def _parse_message(
    message: Any, phone_number_id: str, contacts: list[dict[str, Any]]
) -> InboundMessage:
    if not isinstance(message, dict):
        raise SkipPart("not an object")
    message_id = as_str(message.get("id"))
    if not message_id:
        raise SkipPart("missing id")

    contact = _match_contact(message, contacts)
    wa_id = as_str(message.get("from")) or as_str(contact.get("wa_id"))
    user_id = as_str(message.get("from_user_id")) or as_str(contact.get("user_id"))
    contact_key = user_id or wa_id
    if not contact_key:
        raise SkipPart("no sender (from, from_user_id or contacts)")
    profile = as_dict(contact.get("profile"))

    original_type = as_str(message.get("type")) or "unsupported"
    message_type = original_type if original_type in KNOWN_TYPES else "unsupported"
    content = _content(message, message_type)

    context = as_dict(message.get("context"))
    reply_to = content.pop("reply_to", None) or as_str(context.get("id"))

    return InboundMessage(
        channel=WHATSAPP,
        account_external_id=phone_number_id,
        external_id=message_id,
        contact_key=contact_key,
        type=message_type,
        # A message is never dropped for a bad clock value: receipt time is close enough.
        timestamp=parse_unix_timestamp(message.get("timestamp")) or utc_now(),
        wa_id=wa_id,
        user_id=user_id,
        contact_name=as_str(profile.get("name")),
        username=as_str(profile.get("username")),
        reply_to_external_id=reply_to,
        errors=normalise_errors(message.get("errors")),
        raw=message,
        **content,
    )


def _content(message: dict[str, Any], message_type: str) -> dict[str, Any]:
    """The readable text and media/payload fields for one message type."""
    body = as_dict(message.get(message_type))

    if message_type == "text":
        return {"text": body.get("body") or ""}

    if message_type in MEDIA_TYPES:
        # A document with no caption is still best described by its file name.
        text = body.get("caption") or (body.get("filename") if message_type == "document" else "")
        return {
            "text": text or "",
            "media_id": as_str(body.get("id")),
            "media_url": as_str(body.get("url")),
            "media_mime_type": as_str(body.get("mime_type")),
        }

    if message_type == "location":
        return {"text": _location_text(body)}

    if message_type == "contacts":
        return {"text": _contacts_text(as_list(message.get("contacts")))}

    if message_type == "interactive":
        kind = as_str(body.get("type")) or ""
        reply = as_dict(body.get(kind))
        if kind == "nfm_reply":  # WhatsApp Flows: the answer is a JSON string
            return {"text": reply.get("body") or "", "payload": reply.get("response_json")}
        title = reply.get("title") or ""
        description = reply.get("description") or ""
        text = f"{title}\n{description}" if title and description else title or description
        return {"text": text, "payload": as_str(reply.get("id"))}

    if message_type == "button":  # a quick-reply button on a template we sent
        return {"text": body.get("text") or "", "payload": as_str(body.get("payload"))}

    if message_type == "reaction":
        # An empty emoji means the reaction was removed.
        return {"text": body.get("emoji") or "", "reply_to": as_str(body.get("message_id"))}

    return {"text": ""}  # unsupported and unknown types


def _location_text(location: dict[str, Any]) -> str:
    parts = [str(location[k]) for k in ("name", "address") if location.get(k)]
    if parts:
        return ", ".join(parts)
    latitude, longitude = location.get("latitude"), location.get("longitude")
    if latitude is not None and longitude is not None:
        return f"{latitude},{longitude}"
    return ""


def _contacts_text(cards: list[Any]) -> str:
    """Shared contact cards as one readable line each: `Name: +phone, +phone`."""
    lines = []
    for card in cards:
        if not isinstance(card, dict):
            continue
        name_obj = as_dict(card.get("name"))
        name = name_obj.get("formatted_name") or " ".join(
            str(name_obj[k]) for k in ("first_name", "last_name") if name_obj.get(k)
        )
        phones = [
            str(p.get("phone") or p.get("wa_id"))
            for p in as_list(card.get("phones"))
            if isinstance(p, dict) and (p.get("phone") or p.get("wa_id"))
        ]
        if name and phones:
            lines.append(f"{name}: {', '.join(phones)}")
        elif name or phones:
            lines.append(name or ", ".join(phones))
    return "\n".join(lines)


def _parse_status(status: Any, phone_number_id: str) -> StatusUpdate:
    if not isinstance(status, dict):
        raise SkipPart("not an object")
    message_id = as_str(status.get("id"))
    if not message_id:
        raise SkipPart("missing id")
    value = as_str(status.get("status"))
    if not value:
        raise SkipPart("missing status")
    if value not in META_STATUSES:
        raise IgnorePart(f"unknown_status:{value}")
    return StatusUpdate(
        channel=WHATSAPP,
        account_external_id=phone_number_id,
        external_id=message_id,
        status=value,
        recipient=as_str(status.get("recipient_id")) or as_str(status.get("recipient_user_id")),
        timestamp=parse_unix_timestamp(status.get("timestamp")) or utc_now(),
        errors=normalise_errors(status.get("errors")),
        raw=status,
    )
