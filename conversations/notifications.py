"""Signed event callbacks to a client's own systems (helpdesk, contact centre).

On handoff, on every customer message while in handoff, and on a failed delivery, Wafaa
POSTs JSON to the client's `callback_url`, signed with HMAC-SHA256 over "<timestamp>.<body>"
under the client's callback secret:

    X-Wafaa-Timestamp: 1732350000
    X-Wafaa-Signature: sha256=<hex>

Delivery runs in a Celery task with exponential backoff, so a slow or down endpoint never
delays a reply.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import requests
from django.db import connection, transaction

logger = logging.getLogger(__name__)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def notify(*, conversation, event: str, data: dict) -> None:
    client = getattr(connection, "tenant", None)
    if client is None or not getattr(client, "callback_url", ""):
        return
    from conversations.tasks import notification_deliver_task

    payload = {
        "event": event,
        "client": client.slug,
        "conversation_id": conversation.pk,
        "contact": {"id": conversation.contact_id, "channel": conversation.channel},
        "mode": conversation.mode,
        "data": data,
        "sent_at": int(time.time()),
    }
    transaction.on_commit(lambda: notification_deliver_task.delay(payload))


def deliver(*, client, payload: dict, timeout: float = 5.0) -> int:
    """POST one event; raises requests.RequestException (or HTTPError on 5xx/429) to retry."""
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    timestamp = int(time.time())
    response = requests.post(
        client.callback_url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Wafaa-Event": payload["event"],
            "X-Wafaa-Timestamp": str(timestamp),
            "X-Wafaa-Signature": sign(client.callback_secret, timestamp, body),
        },
        timeout=(3.05, timeout),
    )
    if response.status_code >= 500 or response.status_code == 429:
        response.raise_for_status()
    if response.status_code >= 400:
        logger.warning(
            "callback refused by the client's endpoint; not retried",
            extra={"status": response.status_code, "event": payload["event"]},
        )
    return response.status_code
