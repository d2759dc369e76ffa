"""Signed event callbacks to a client's own systems (helpdesk, contact centre).

On handoff, on every customer message while in handoff, and on a failed delivery, Wafaa
POSTs JSON to the client's `callback_url`, signed the Standard Webhooks way
(https://www.standardwebhooks.com) under the client's callback secret (`whsec_...`):

    webhook-id: msg_<hex>          the same on every retry of one event: deduplicate on it
    webhook-timestamp: 1732350000  unix seconds; receivers refuse it when older than 5 minutes
    webhook-signature: v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">

A client verifies with the published `standardwebhooks` library (docs/api.md).

Task arguments carry ids and codes only, never the customer's text (they end up in broker
keys, worker log lines and monitoring tools): `notify` enqueues the event with the ids, and
the payload, text included, is built from the database when it is delivered. The request goes
through wafaa.netguard (public addresses only, no redirects), in a Celery task with
exponential backoff, so a slow or down endpoint never delays a reply.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime

import requests
from django.db import connection, transaction
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from wafaa import netguard

logger = logging.getLogger(__name__)

# What `data` may hold when an event is enqueued: ids and short codes, nothing a person wrote.
DATA_KEYS = {"message_id", "type", "reason"}
# Events whose payload shows the text of `data["message_id"]`, under this key, read at delivery.
TEXT_FIELDS = {"customer_message": "text", "handoff": "last_customer_message"}
TEXT_LIMITS = {"text": 4096, "last_customer_message": 500}


def notify(*, conversation, event: str, data: dict) -> None:
    """Enqueue one event for the current client's callback URL (after the transaction commits).

    `data` holds ids and codes only (DATA_KEYS); the customer's text is added at delivery.
    """
    client = getattr(connection, "tenant", None)
    if client is None or not getattr(client, "callback_url", ""):
        return
    unknown = set(data) - DATA_KEYS
    if unknown:
        raise ValueError(
            f"notification data carries ids and codes only, not {sorted(unknown)}: "
            "texts are read from the database when the event is delivered"
        )
    from conversations.tasks import notification_deliver_task

    args = (
        f"msg_{uuid.uuid4().hex}",
        event,
        conversation.pk,
        conversation.mode,
        {key: value for key, value in data.items() if value is not None},
        int(time.time()),
    )
    transaction.on_commit(lambda: notification_deliver_task.delay(*args))


def payload_build(
    *, client, event: str, conversation_id: int, mode: str, data: dict, sent_at: int
) -> dict | None:
    """The JSON body of one event, read from the database; None when the conversation is gone."""
    from conversations.models import Conversation, Message

    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        return None
    data = dict(data)
    text_field = TEXT_FIELDS.get(event)
    if text_field and data.get("message_id"):
        message = Message.objects.filter(pk=data["message_id"]).only("text").first()
        data[text_field] = (message.text if message else "")[: TEXT_LIMITS[text_field]]
    if event == "order_received" and data.get("message_id"):
        # The order (with the customer's note) and its summary, read now like any text.
        message = Message.objects.filter(pk=data["message_id"]).only("text", "order").first()
        data["order"] = message.order if message else None
        data["summary"] = message.text if message else ""
    return {
        "event": event,
        "client": client.slug,
        "conversation_id": conversation.pk,
        "contact": {"id": conversation.contact_id, "channel": conversation.channel},
        "mode": mode,
        "data": data,
        "sent_at": sent_at,
    }


def sign(*, secret: str, webhook_id: str, timestamp: datetime, body: bytes) -> str:
    """The webhook-signature header value for `body` (standardwebhooks' own signing).

    Raises EmptyWebhookSecretError for an empty secret, ValueError for one that is not base64.
    """
    if not secret.startswith("whsec_"):
        raise ValueError("a callback secret is whsec_ and base64")
    return Webhook(secret).sign(webhook_id, timestamp, body.decode())


def deliver(*, client, webhook_id: str, payload: dict, timeout: float = 5.0) -> int | None:
    """POST one event to the client's callback URL.

    Returns the endpoint's status, or None when nothing was sent (no secret, or the URL is
    refused by the outbound guard: not retried). Raises requests.RequestException (HTTPError
    on 5xx/429, ConnectionError when the name does not resolve now) so the task retries.
    """
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    now = datetime.now(UTC)
    secret = client.callback_secret or ""
    try:
        # Never sign with an empty key: a secret is made when the client is created.
        signature = sign(secret=secret, webhook_id=webhook_id, timestamp=now, body=body)
    except (EmptyWebhookSecretError, ValueError):  # empty, or not a whsec_ base64 secret
        logger.error("callback not sent: the client has no valid callback secret")
        return None
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Wafaa-Webhooks/1",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "X-Wafaa-Event": payload["event"],
    }
    try:
        # stream: the endpoint's answer is never read (a huge body must not fill the worker).
        response = netguard.outbound_request(
            "POST",
            client.callback_url,
            data=body,
            headers=headers,
            timeout=(3.05, timeout),
            stream=True,
        )
    except netguard.OutboundURLRefusedError as exc:
        logger.warning(
            "callback not sent: the URL is refused by the outbound guard",
            extra={"reason": exc.message, "event": payload["event"]},
        )
        return None
    status = response.status_code
    response.close()
    if status >= 500 or status == 429:
        raise requests.HTTPError(f"callback endpoint answered {status}", response=response)
    if status >= 400:
        logger.warning(
            "callback refused by the client's endpoint; not retried",
            extra={"status": status, "event": payload["event"]},
        )
    return status


def notification_deliver(
    *, webhook_id: str, event: str, conversation_id: int, mode: str, data: dict, sent_at: int
) -> int | None:
    """Build the event's payload from the database and deliver it (the task's one call)."""
    client = connection.tenant
    if not client.callback_url:
        return None
    payload = payload_build(
        client=client,
        event=event,
        conversation_id=conversation_id,
        mode=mode,
        data=data,
        sent_at=sent_at,
    )
    if payload is None:
        return None
    return deliver(client=client, webhook_id=webhook_id, payload=payload)
