"""Messages out: the outbound state machine (send, parts, retries, failures, read receipts,
media fetch). Transport (the Graph API client, pacing) comes from channels_app; the state of
each message (queued → sent / failed, its parts' Graph ids) is kept here, in the client's
schema, so a retry continues where the last attempt stopped and never sends twice.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import connection
from django.utils import timezone

from channels_app import graph
from channels_app.models import ChannelAccount
from channels_app.pacing import pace
from channels_app.services import graph_client_for
from conversations import notifications
from conversations.models import Message
from wafaa import metrics, otel
from wafaa.errors import NotFoundError
from wafaa.redis import get_redis

logger = logging.getLogger(__name__)


class SendRetryableError(Exception):
    """A transient Graph API failure: Celery retries the send with backoff."""

    def __init__(self, message: str, countdown: float | None = None):
        super().__init__(message)
        self.countdown = countdown


def message_send(*, message_id) -> str:
    """Send one outbound message through its channel. Idempotent: a message already sent (or
    parts of it) is never sent again. Returns the resulting status."""
    message = Message.objects.select_related("conversation__contact").get(pk=message_id)
    if message.status != Message.Status.QUEUED:
        return message.status  # sent, delivered, failed, not_sent: nothing to do
    conversation = message.conversation
    account = (
        ChannelAccount.objects.select_related("client")
        .filter(pk=conversation.channel_account_id)
        .first()
    )
    if account is None or account.status in {
        ChannelAccount.Status.INACTIVE,
        ChannelAccount.Status.SUSPENDED,
    }:
        return message_send_fail(
            message, "account_unavailable", "The channel account is missing or inactive."
        )
    if account.status == ChannelAccount.Status.CREDENTIALS_INVALID:
        return message_send_fail(
            message,
            "credentials_invalid",
            "The channel's access token was rejected by Meta; update it.",
        )
    lock = get_redis().lock(
        f"wafaa:send:{connection.schema_name}:{message.pk}", timeout=60, blocking_timeout=0
    )
    if not lock.acquire():
        raise SendRetryableError("another worker is sending this message", countdown=2)
    try:
        with otel.stage("send", channel=account.kind):
            return _send_parts(message, account)
    finally:
        try:
            lock.release()
        except Exception:  # the lock expired: another send may have started; it checks parts
            logger.warning("send lock expired before release")


def _send_parts(message, account: ChannelAccount) -> str:
    contact = message.conversation.contact
    recipient = contact.wa_id or contact.user_id or contact.external_id
    if message.template or message.buttons or message.type in MEDIA_TYPES:
        return _send_rich(message, account, recipient)
    limit = graph.WHATSAPP_TEXT_LIMIT
    max_bytes = graph.INSTAGRAM_TEXT_MAX_BYTES if account.kind == "instagram" else None
    parts = graph.split_text(message.text, limit, max_bytes=max_bytes) or [message.text]
    part_ids: list[str] = list(message.raw.get("part_ids", []))
    client = graph_client_for(account)
    for index in range(len(part_ids), len(parts)):
        wait = pace(account=account, recipient=recipient)
        if wait > 1.0:
            raise SendRetryableError("paced", countdown=wait)
        if wait > 0:
            time.sleep(wait)
        try:
            if account.kind == "whatsapp":
                graph_id = client.send_whatsapp_text(
                    account.external_id,
                    recipient,
                    parts[index],
                    reply_to=message.reply_to_external_id or None if index == 0 else None,
                )
            else:
                graph_id = client.send_instagram_text(account.external_id, recipient, parts[index])
        except graph.GraphError as exc:
            return _send_error(message, account, exc)
        part_ids.append(graph_id)
        # Recorded after each part, so a retry continues where it stopped and never resends.
        message.raw = {**message.raw, "part_ids": part_ids}
        if index == 0:
            message.external_id = graph_id
        message.save(update_fields=["raw", "external_id", "updated_at"])
        metrics.GRAPH_SENDS.labels(channel=account.kind, result="sent", code="").inc()
    Message.objects.filter(pk=message.pk, status=Message.Status.QUEUED).update(
        status=Message.Status.SENT, sent_at=timezone.now(), updated_at=timezone.now()
    )
    metrics.MESSAGES.labels(channel=account.kind, direction="out", status="sent").inc()
    metrics.count_client_message(account.client.slug, "out")
    logger.info("message sent", extra={"message_id": str(message.pk), "parts": len(parts)})
    return Message.Status.SENT


def _send_error(message, account: ChannelAccount, exc: graph.GraphError) -> str:
    code = str(exc.code or exc.status_code or "")
    metrics.GRAPH_SENDS.labels(channel=account.kind, result=type(exc).__name__, code=code).inc()
    if exc.retryable:
        logger.warning("graph send failed, will retry", extra={"code": code, "error": str(exc)})
        raise SendRetryableError(str(exc), countdown=exc.retry_after)
    if isinstance(exc, graph.GraphAuthError):
        ChannelAccount.objects.filter(pk=account.pk).update(
            status=ChannelAccount.Status.CREDENTIALS_INVALID, updated_at=timezone.now()
        )
        logger.error(
            "Meta rejected the channel account's credentials; account marked credentials_invalid",
            extra={"account": account.pk, "code": code},
        )
        return message_send_fail(message, "credentials_invalid", str(exc))
    if isinstance(exc, graph.GraphWindowClosedError):
        return message_send_fail(
            message,
            "window_closed",
            "The customer's last message is older than 24 hours; only templates can be sent.",
        )
    return message_send_fail(message, f"graph_{code or 'error'}", str(exc))


def message_send_fail(message, reason: str, detail: str) -> str:
    Message.objects.filter(pk=message.pk).update(
        status=Message.Status.FAILED,
        failure_reason=reason[:64],
        failure_detail=detail[:2000],
        updated_at=timezone.now(),
    )
    logger.warning("message not sent", extra={"message_id": str(message.pk), "reason": reason})
    metrics.SENDS_FAILED.labels(channel=message.conversation.channel, reason=reason[:64]).inc()
    notifications.notify(
        conversation=message.conversation,
        event="delivery_failed",
        data={"message_id": message.pk, "reason": reason},
    )
    return Message.Status.FAILED


def message_mark_read(*, message_id) -> None:
    """Tell WhatsApp we read the customer's message (blue ticks); best effort."""
    message = Message.objects.select_related("conversation").get(pk=message_id)
    account = ChannelAccount.objects.filter(pk=message.conversation.channel_account_id).first()
    if account is None or account.kind != "whatsapp" or not message.external_id:
        return
    try:
        graph_client_for(account).mark_whatsapp_read(account.external_id, message.external_id)
    except graph.GraphError as exc:
        logger.info("mark as read failed", extra={"code": exc.code})


def media_host_allowed(host: str) -> bool:
    """Only Meta's media hosts (MEDIA_ALLOWED_HOSTS; a leading dot allows subdomains): a media
    URL comes from a webhook, and must never make us fetch an arbitrary address."""
    host = host.lower().rstrip(".")
    for allowed in settings.MEDIA_ALLOWED_HOSTS:
        allowed = allowed.lower()
        if host == allowed.lstrip(".") or (allowed.startswith(".") and host.endswith(allowed)):
            return True
    return False


def media_fetch(*, message_id) -> bytes:
    """Download an inbound message's media (WhatsApp media id or Instagram URL), size-limited."""
    message = Message.objects.select_related("conversation").get(pk=message_id)
    account = ChannelAccount.objects.get(pk=message.conversation.channel_account_id)
    client = graph_client_for(account)
    if message.media_id and account.kind == "whatsapp":
        info = client.get_media_url(message.media_id)
        data = client.download_media(
            info["url"], settings.MEDIA_MAX_BYTES, allowed_host=media_host_allowed
        )
        if info.get("mime_type") and not message.media_mime_type:
            message.media_mime_type = info["mime_type"]
    elif message.media_url:
        data = client.download_media(
            message.media_url,
            settings.MEDIA_MAX_BYTES,
            authenticated=False,
            allowed_host=media_host_allowed,
        )
    else:
        raise NotFoundError("This message has no media.")
    message.raw = {**message.raw, "media_size": len(data)}
    message.save(update_fields=["raw", "media_mime_type", "updated_at"])
    return data


# --- templates, reply buttons and media: one request each ----------------------------------------

MEDIA_TYPES = ("image", "video", "audio", "document")


def _send_rich(message, account: ChannelAccount, recipient: str) -> str:
    """Send a template, a text with reply buttons, or a media message: one Graph request, its
    id recorded like a text part's, so a retry never sends it twice."""
    if not message.raw.get("part_ids"):
        wait = pace(account=account, recipient=recipient)
        if wait > 1.0:
            raise SendRetryableError("paced", countdown=wait)
        if wait > 0:
            time.sleep(wait)
        client = graph_client_for(account)
        try:
            graph_id = _rich_request(client, message, account, recipient)
        except graph.GraphError as exc:
            return _send_error(message, account, exc)
        message.raw = {**message.raw, "part_ids": [graph_id]}
        message.external_id = graph_id
        message.save(update_fields=["raw", "external_id", "updated_at"])
        metrics.GRAPH_SENDS.labels(channel=account.kind, result="sent", code="").inc()
    Message.objects.filter(pk=message.pk, status=Message.Status.QUEUED).update(
        status=Message.Status.SENT, sent_at=timezone.now(), updated_at=timezone.now()
    )
    metrics.MESSAGES.labels(channel=account.kind, direction="out", status="sent").inc()
    metrics.count_client_message(account.client.slug, "out")
    logger.info("message sent", extra={"message_id": str(message.pk), "kind": message.type})
    return Message.Status.SENT


def _rich_request(client: graph.GraphClient, message, account: ChannelAccount, recipient: str):
    whatsapp = account.kind == "whatsapp"
    if message.template:
        return client.send_whatsapp_template(
            account.external_id,
            recipient,
            message.template["name"],
            message.template["language"],
            message.template.get("parameters") or [],
        )
    if message.buttons:
        if whatsapp:
            return client.send_whatsapp_buttons(
                account.external_id,
                recipient,
                message.text,
                message.buttons,
                reply_to=message.reply_to_external_id or None,
            )
        return client.send_instagram_quick_replies(
            account.external_id, recipient, message.text, message.buttons
        )
    if whatsapp:
        return client.send_whatsapp_media(
            account.external_id,
            recipient,
            message.type,
            media_id=message.media_id or None,
            link=message.media_url or None,
            caption=message.text,
            filename=message.raw.get("filename", ""),
        )
    return client.send_instagram_media(
        account.external_id, recipient, message.type, message.media_url
    )
