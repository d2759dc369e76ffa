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
# Coexistence: what the business sent from the WhatsApp Business app on the same number.
ECHOES_FIELD = "smb_message_echoes"
ACCOUNT_FIELDS = (MESSAGES_FIELD, ECHOES_FIELD)

# Media-carrying message types; each has an object of the same name with `id` and `mime_type`.
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")

# Every type we understand; anything else Meta sends (request_welcome, new types Meta adds
# later) becomes 'unsupported' with the original kept in `raw`. WhatsApp's 'revoke' becomes
# 'deleted', the type Instagram's unsent messages have too.
KNOWN_TYPES = (
    "text",
    *MEDIA_TYPES,
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "order",
    "system",
    "edit",
    "revoke",
    "unsupported",
)
TYPE_NAMES = {"revoke": "deleted"}


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
    `messages` and `smb_message_echoes` changes (entries without any are dropped), so it can be handed to the tenant that
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
            if not isinstance(change, dict) or change.get("field") not in ACCOUNT_FIELDS:
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
            if isinstance(change, dict) and change.get("field") in ACCOUNT_FIELDS:
                yield change


def _parse_change(change: Any, where: str, result: ParsedWebhook) -> None:
    if not isinstance(change, dict):
        result.errors.append(f"{where}: not an object")
        return
    field_name = change.get("field")
    if field_name not in ACCOUNT_FIELDS:
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
    for index, echo in enumerate(as_list(value.get("message_echoes"))):
        collect(
            lambda m=echo: _parse_message(m, phone_number_id, contacts, echo=True),
            f"{where}.message_echoes[{index}]",
            result.messages,
            result,
        )
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
    message: Any, phone_number_id: str, contacts: list[dict[str, Any]], *, echo: bool = False
) -> InboundMessage:
    if not isinstance(message, dict):
        raise SkipPart("not an object")
    message_id = as_str(message.get("id"))
    if not message_id:
        raise SkipPart("missing id")

    if echo:
        # The business wrote: the customer is the recipient, and `contacts[]` is not sent.
        contact: dict[str, Any] = {}
        wa_id = as_str(message.get("to"))
        user_id = as_str(message.get("to_user_id"))
    else:
        contact = _match_contact(message, contacts)
        wa_id = as_str(message.get("from")) or as_str(contact.get("wa_id"))
        user_id = as_str(message.get("from_user_id")) or as_str(contact.get("user_id"))
    contact_key = user_id or wa_id
    if not contact_key:
        raise SkipPart(
            "no recipient (to)" if echo else "no sender (from, from_user_id or contacts)"
        )
    profile = as_dict(contact.get("profile"))

    original_type = as_str(message.get("type")) or "unsupported"
    message_type = original_type if original_type in KNOWN_TYPES else "unsupported"
    content = _content(message, message_type)
    message_type = TYPE_NAMES.get(message_type, message_type)
    if message_type == "interactive" and content.get("call_permission"):
        message_type = "call_permission_reply"

    context = as_dict(message.get("context"))
    reply_to = content.pop("reply_to", None) or as_str(context.get("id"))
    referral = _referral(as_dict(message.get("referral")), as_dict(context.get("referred_product")))

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
        referral=referral,
        echo=echo,
        raw=message,
        **content,
    )


# Meta's referral keys → ours (the rest of Meta's names are kept as they are).
_REFERRAL_KEYS = {
    "source_type": "source_type",
    "source_id": "source_id",
    "source_url": "source_url",
    "headline": "headline",
    "body": "body",
    "ctwa_clid": "ctwa_clid",
    "media_type": "media_type",
    "image_url": "media_url",
    "video_url": "media_url",
    "thumbnail_url": "thumbnail_url",
}


def _referral(referral: dict[str, Any], product: dict[str, Any]) -> dict[str, Any] | None:
    """Ad attribution (click-to-WhatsApp `referral`) and a product the customer asked about
    from a catalogue message (`context.referred_product`), merged into one dict."""
    result: dict[str, Any] = {}
    for meta_key, key in _REFERRAL_KEYS.items():
        value = referral.get(meta_key)
        if isinstance(value, str) and value and key not in result:
            result[key] = value
    if product:
        result.setdefault("source_type", "product")
        for key in ("catalog_id", "product_retailer_id"):
            if as_str(product.get(key)):
                result[key] = as_str(product.get(key))
    return result or None


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
        if kind == "call_permission_reply":
            permission = {
                "response": as_str(reply.get("response")) or "",
                "expires_at": _iso(parse_unix_timestamp(reply.get("expiration_timestamp"))),
                "is_permanent": bool(reply.get("is_permanent")),
                "source": as_str(reply.get("response_source")) or "",
            }
            return {"text": "", "call_permission": permission}
        title = reply.get("title") or ""
        description = reply.get("description") or ""
        text = f"{title}\n{description}" if title and description else title or description
        return {"text": text, "payload": as_str(reply.get("id"))}

    if message_type == "button":  # a quick-reply button on a template we sent
        return {"text": body.get("text") or "", "payload": as_str(body.get("payload"))}

    if message_type == "reaction":
        # An empty emoji means the reaction was removed.
        return {"text": body.get("emoji") or "", "reply_to": as_str(body.get("message_id"))}

    if message_type == "order":
        order = _order(body)
        return {"text": order_summary(order), "order": order}

    if message_type == "system":
        system = {
            "kind": as_str(body.get("type")) or "",
            "body": body.get("body") or "",
            "new_wa_id": as_str(body.get("new_wa_id") or body.get("wa_id")),
            "identity": as_str(body.get("identity")),
            "user_id": as_str(body.get("user_id") or body.get("user")),
        }
        return {"text": system["body"], "system": {k: v for k, v in system.items() if v}}

    if message_type == "edit":
        # {original_message_id, message: {type, <type>: {...}}}: the new content of a message
        # the customer edited, in the shape of an ordinary message.
        new = as_dict(body.get("message"))
        new_type = as_str(new.get("type")) or "text"
        new_content = _content(new, new_type) if new_type in KNOWN_TYPES else {"text": ""}
        new_content.pop("reply_to", None)
        return {
            "text": new_content.get("text") or "",
            "target_external_id": _original_id(message, body),
        }

    if message_type == "revoke":
        return {"text": "", "target_external_id": _original_id(message, body)}

    return {"text": ""}  # unsupported and unknown types


def _original_id(message: dict[str, Any], body: dict[str, Any]) -> str:
    original = as_str(body.get("original_message_id")) or as_str(
        as_dict(message.get("context")).get("id")
    )
    if not original:
        raise SkipPart(f"{message.get('type')} without original_message_id")
    return original


def _order(body: dict[str, Any]) -> dict[str, Any]:
    items = []
    for item in as_list(body.get("product_items")):
        if not isinstance(item, dict):
            continue
        items.append(
            {
                "retailer_id": as_str(item.get("product_retailer_id")) or "",
                "quantity": _number(item.get("quantity")) or 0,
                "price": _number(item.get("item_price")),
                "currency": as_str(item.get("currency")) or "",
            }
        )
    currencies = {i["currency"] for i in items if i["currency"]}
    priced = [i for i in items if i["price"] is not None]
    total = None
    if priced and len(priced) == len(items) and len(currencies) <= 1:
        total = round(sum(i["price"] * i["quantity"] for i in items), 2)
    return {
        "catalog_id": as_str(body.get("catalog_id")) or "",
        "note": body.get("text") if isinstance(body.get("text"), str) else "",
        "items": items,
        "total": total,
        "currency": currencies.pop() if len(currencies) == 1 else "",
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else number


def order_summary(order: dict[str, Any]) -> str:
    """A readable order for the transcript and the LLM, e.g.
    'Order (catalogue 123): 2 x SKU-1 at 12.5 USD; 1 x SKU-2 at 3 USD. Total 28 USD. Note: ...'"""
    lines = []
    for item in order["items"]:
        price = (
            f" at {item['price']} {item['currency']}".rstrip() if item["price"] is not None else ""
        )
        lines.append(f"{item['quantity']} x {item['retailer_id']}{price}")
    text = f"Order (catalogue {order['catalog_id']}): " + ("; ".join(lines) or "no items") + "."
    if order["total"] is not None:
        text += f" Total {order['total']} {order['currency']}".rstrip() + "."
    if order["note"]:
        text += f" Note: {order['note']}"
    return text


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
