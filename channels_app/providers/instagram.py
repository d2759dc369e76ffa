"""Instagram Messaging webhooks → `ParsedWebhook`.

Meta's payload is `{"object": "instagram", "entry": [{"id": <IG account id>, "time": <ms>,
"messaging": [...]}]}`. Events for a conversation another app controls (handover protocol)
arrive under `standby[]` instead of `messaging[]`; they are parsed the same way and flagged
`standby=True` so the caller can store them without answering. The dashboard's test button
and some subscriptions send the same event as `changes: [{"field": "messages", "value": ...}]`,
which is accepted too.

Each messaging item is one of: `message` (text, attachments, story reply or mention, deleted,
unsupported; `is_echo` marks copies of what the business itself sent; `referral` when it came
from an ad), `message_edit` (the customer edited a message: type 'edit'), `reaction`,
`postback` (a button tap, parsed as an 'interactive' message with its title), `referral` (an ad
or link opened the thread: type 'referral'), `read`, `delivery`. Echoes and read and delivery
receipts are acknowledged as `ignored`. In the `changes` shape, postbacks arrive under the
field `messaging_postbacks`, edits under `message_edit`, and so on; all are parsed alike.

`account_external_id` is the entry id (the business's Instagram account id), falling back to the
recipient id. Timestamps are unix milliseconds, except in test events and the `changes` shape,
which send seconds: the magnitude decides. Parsing never raises; see whatsapp.py for why.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from .base import (
    INSTAGRAM,
    IgnorePart,
    InboundMessage,
    ParsedWebhook,
    SkipPart,
    as_dict,
    as_list,
    as_str,
    collect,
    iter_entries,
    parse_unix_timestamp,
    utc_now,
)

OBJECT = "instagram"

# Attachment type → our message type. Reels and posts shared into the chat are 'share'.
ATTACHMENT_TYPES = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "file": "document",
    "story_mention": "story_mention",
    "share": "share",
    "ig_reel": "share",
    "reel": "share",
    "ig_post": "share",
    "animated_image": "image",
    "ig_story": "share",  # a story the customer shared into the chat
}

# Messaging events that carry nothing for us to answer or record.
IGNORED_EVENTS = ("read", "delivery", "optin", "standby_receipt")

# `changes[].field` values that carry one messaging item as their `value`.
CHANGE_FIELDS = frozenset(
    {
        "messages",
        "messaging_postbacks",
        "message_reactions",
        "message_edit",
        "messaging_referral",
        "messaging_seen",
        "messaging_optins",
        "messaging_handover",
    }
)


def parse(payload: Any) -> ParsedWebhook:
    """Parse one webhook body (already JSON-decoded). Never raises."""
    result = ParsedWebhook()
    for where, entry in iter_entries(payload, OBJECT, result):
        account_id = as_str(entry.get("id"))
        for key, standby in (("messaging", False), ("standby", True)):
            for index, item in enumerate(as_list(entry.get(key))):
                build = partial(_parse_item, item, account_id, standby)
                collect(build, f"{where}.{key}[{index}]", result.messages, result)
        for index, change in enumerate(as_list(entry.get("changes"))):
            change_where = f"{where}.changes[{index}]"
            if not isinstance(change, dict):
                result.errors.append(f"{change_where}: not an object")
            elif change.get("field") not in CHANGE_FIELDS:
                result.ignored.append(f"unknown_field:{change.get('field')}")
            else:
                build = partial(_parse_item, change.get("value"), account_id, False)
                collect(build, change_where, result.messages, result)
    return result


def _parse_item(item: Any, entry_account_id: str | None, standby: bool) -> InboundMessage:
    if not isinstance(item, dict):
        raise SkipPart("not an object")
    sender_id = as_str(as_dict(item.get("sender")).get("id"))
    recipient_id = as_str(as_dict(item.get("recipient")).get("id"))
    account_id = entry_account_id or recipient_id
    message = item.get("message")

    # Copies of messages the business sent (from us, or from a human in the Instagram app).
    if isinstance(message, dict) and message.get("is_echo"):
        raise IgnorePart("echo")
    if account_id and sender_id == account_id:
        raise IgnorePart("echo")

    for event in IGNORED_EVENTS:
        if event in item and "message" not in item:
            raise IgnorePart(event)

    if not account_id:
        raise SkipPart("no account id (entry.id or recipient.id)")
    if not sender_id:
        raise SkipPart("missing sender.id")

    # Instagram sends timestamps as unix milliseconds, but seconds (sometimes as a string) in
    # test events and the `changes` shape: read as milliseconds, they would date the message
    # 1970 and close the 24-hour reply window.
    timestamp = parse_unix_timestamp(item.get("timestamp"), milliseconds=None) or utc_now()
    common = {
        "channel": INSTAGRAM,
        "account_external_id": account_id,
        "contact_key": sender_id,
        "user_id": sender_id,
        "timestamp": timestamp,
        "standby": standby,
        "raw": item,
    }

    if isinstance(message, dict):
        return _message(message, common, _referral(as_dict(message.get("referral"))))
    if isinstance(item.get("message_edit"), dict):
        return _edit(item["message_edit"], common)
    if isinstance(item.get("referral"), dict):
        millis = int(timestamp.timestamp() * 1000)
        return InboundMessage(
            external_id=f"referral:{sender_id}:{millis}",
            type="referral",
            referral=_referral(item["referral"]),
            **common,
        )
    if isinstance(item.get("reaction"), dict):
        return _reaction(item["reaction"], sender_id, timestamp, common)
    if isinstance(item.get("postback"), dict):
        return _postback(item["postback"], sender_id, timestamp, common)
    raise IgnorePart("unknown_event:" + ",".join(sorted(k for k in item if k not in _ENVELOPE)))


_ENVELOPE = ("sender", "recipient", "timestamp")


def _referral(referral: dict[str, Any]) -> dict[str, Any] | None:
    """Instagram's `referral` ({ref, ad_id, source, type, ads_context_data}) in the keys
    WhatsApp's referral uses, so attribution is stored and counted alike for both."""
    if not referral:
        return None
    ads = as_dict(referral.get("ads_context_data"))
    result = {
        "source_type": "ad" if referral.get("ad_id") or ads else as_str(referral.get("source")),
        "source_id": as_str(referral.get("ad_id")),
        "source_url": as_str(referral.get("source_url")),
        "headline": as_str(ads.get("ad_title")),
        "media_url": as_str(ads.get("photo_url")) or as_str(ads.get("video_url")),
        "post_id": as_str(ads.get("post_id")),
        "product_retailer_id": as_str(ads.get("product_id")),
        "ref": as_str(referral.get("ref")),
    }
    return {k: (v.lower() if k == "source_type" else v) for k, v in result.items() if v} or None


def _edit(edit: dict[str, Any], common: dict[str, Any]) -> InboundMessage:
    mid = as_str(edit.get("mid"))
    if not mid:
        raise SkipPart("missing message_edit.mid")
    count = as_str(edit.get("num_edit")) or "1"
    return InboundMessage(
        external_id=f"edit:{mid}:{count}",
        type="edit",
        text=edit.get("text") if isinstance(edit.get("text"), str) else "",
        target_external_id=mid,
        **common,
    )


def _attachment(attachment: dict[str, Any]) -> dict[str, Any]:
    payload = as_dict(attachment.get("payload"))
    kind = str(attachment.get("type"))
    found = {
        "type": ATTACHMENT_TYPES.get(kind, "unsupported"),
        "kind": kind,
        "url": as_str(payload.get("url")) or as_str(payload.get("story_media_url")),
        "media_id": as_str(payload.get("story_media_id"))
        or as_str(payload.get("ig_post_media_id"))
        or as_str(payload.get("reel_video_id"))
        or as_str(payload.get("id")),
        "title": payload.get("title") if isinstance(payload.get("title"), str) else "",
    }
    return {k: v for k, v in found.items() if v}


def _message(
    message: dict[str, Any], common: dict[str, Any], referral: dict[str, Any] | None = None
) -> InboundMessage:
    mid = as_str(message.get("mid"))
    if not mid:
        raise SkipPart("missing message.mid")
    text = message.get("text") if isinstance(message.get("text"), str) else ""
    reply_to = as_dict(message.get("reply_to"))
    story = as_dict(reply_to.get("story"))
    quick_reply = as_dict(message.get("quick_reply"))
    fields: dict[str, Any] = {
        "text": text,
        "reply_to_external_id": as_str(reply_to.get("mid")),
        "payload": as_str(quick_reply.get("payload")),
        "referral": referral,
    }

    if message.get("is_deleted"):
        # `mid` is the id of the message the customer unsent: the caller marks that message
        # deleted rather than storing a new one under the same id.
        fields.update(type="deleted", text="", target_external_id=mid)
        mid = f"deleted:{mid}"
    elif message.get("is_unsupported"):
        fields["type"] = "unsupported"
    elif story:
        # A reply to the business's story: the text is the customer's, the media is the story.
        fields.update(type="story_reply", media_url=as_str(story.get("url")))
    elif attachments := [a for a in as_list(message.get("attachments")) if isinstance(a, dict)]:
        # Several attachments may come in one message (a post share carries two): all are
        # kept, and the first also describes the message.
        described = [_attachment(a) for a in attachments]
        first = described[0]
        fields.update(
            type=first["type"],
            media_url=first.get("url"),
            media_id=first.get("media_id"),
            attachments=described,
        )
        if not text:
            fields["text"] = next((a["title"] for a in described if a.get("title")), "")
    elif text:
        fields["type"] = "text"
    else:
        fields["type"] = "unsupported"

    return InboundMessage(external_id=mid, **fields, **common)


def _reaction(
    reaction: dict[str, Any], sender_id: str, timestamp: Any, common: dict[str, Any]
) -> InboundMessage:
    reacted_mid = as_str(reaction.get("mid"))
    if not reacted_mid:
        raise SkipPart("missing reaction.mid")
    # Instagram reactions have no id of their own (`mid` is the message reacted to), so one is
    # derived from what Meta sends identically on every redelivery.
    millis = int(timestamp.timestamp() * 1000)
    action = as_str(reaction.get("action")) or "react"
    return InboundMessage(
        external_id=f"reaction:{reacted_mid}:{sender_id}:{action}:{millis}",
        type="reaction",
        text=(reaction.get("emoji") or "") if action == "react" else "",
        reply_to_external_id=reacted_mid,
        payload=as_str(reaction.get("reaction")),
        **common,
    )


def _postback(
    postback: dict[str, Any], sender_id: str, timestamp: Any, common: dict[str, Any]
) -> InboundMessage:
    millis = int(timestamp.timestamp() * 1000)
    mid = as_str(postback.get("mid")) or f"postback:{sender_id}:{millis}"
    return InboundMessage(
        external_id=mid,
        type="interactive",
        text=postback.get("title") or "",
        payload=as_str(postback.get("payload")),
        **common,
    )
