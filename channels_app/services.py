"""Webhooks in (verify, parse, store once, enqueue on commit) and messages out (Graph API).

Webhook handling never calls Meta, an LLM or an embedder: it records what Meta sent in the
right client's schema and hands work to Celery after commit, so Meta gets its 200 in
milliseconds and nothing accepted is lost (the database is the record; see the sweeper).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import tenant_context

from channels_app import graph, providers, selectors
from channels_app.models import ChannelAccount
from wafaa import context, metrics
from wafaa.errors import ApplicationError, NotFoundError, PayloadTooLargeError
from wafaa.redis import get_redis

logger = logging.getLogger(__name__)


class WebhookSignatureError(ApplicationError):
    code = "bad_signature"
    status_code = 401


class WebhookMalformedError(ApplicationError):
    code = "malformed"
    status_code = 400


@dataclass
class WebhookResult:
    accepted: int = 0
    duplicates: int = 0
    statuses: int = 0
    skipped_accounts: list[str] = field(default_factory=list)
    unknown_accounts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# --- verify handshake ------------------------------------------------------------------------


def webhook_verify(*, kind: str, slug: str | None, mode: str, token: str, challenge: str) -> str:
    """Meta's GET handshake: the challenge back when the verify token matches, else error."""
    if mode != "subscribe" or not token:
        raise WebhookSignatureError("hub.mode must be 'subscribe' with a hub.verify_token.")
    if slug is None:
        candidates = [settings.META_APP_VERIFY_TOKEN] if settings.META_APP_VERIFY_TOKEN else []
    else:
        candidates = [
            a.verify_token for a in selectors.channel_account_route_for_slug(kind=kind, slug=slug)
        ]
    matched = False
    for candidate in candidates:  # compare every candidate, in constant time each
        matched |= hmac.compare_digest(candidate.encode(), token.encode())
    if not matched:
        metrics.WEBHOOK_EVENTS.labels(channel=kind, result="bad_verify_token").inc()
        raise WebhookSignatureError("The verify token does not match this channel account.")
    return challenge


# --- POST ------------------------------------------------------------------------------------


def _check_signature(
    raw_body: bytes, signature: str | None, accounts: list[ChannelAccount]
) -> bool:
    secrets = {a.app_secret for a in accounts if a.app_secret}
    if settings.META_APP_SECRET:
        secrets.add(settings.META_APP_SECRET)
    ok = False
    for secret in secrets:
        ok |= providers.verify_signature(raw_body, signature, secret)
    return ok


def webhook_receive(
    *, kind: str, slug: str | None, raw_body: bytes, signature: str | None
) -> WebhookResult:
    """Handle one webhook POST: verify, parse every entry, store per client, enqueue on commit."""
    if len(raw_body) > settings.WEBHOOK_MAX_BODY_BYTES:
        metrics.WEBHOOK_EVENTS.labels(channel=kind, result="too_large").inc()
        raise PayloadTooLargeError(
            f"Webhook bodies are limited to {settings.WEBHOOK_MAX_BODY_BYTES} bytes."
        )
    if slug is not None:
        accounts = selectors.channel_account_route_for_slug(kind=kind, slug=slug)
        if not accounts:
            metrics.WEBHOOK_EVENTS.labels(channel=kind, result="unknown_account").inc()
            raise NotFoundError(f"No {kind} channel account for '{slug}'.")
    try:
        payload = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        payload = None
    if slug is None:
        ids = _payload_account_ids(kind, payload)
        accounts = selectors.channel_account_route_all_tenants(kind=kind, external_ids=ids)
        if not accounts and not settings.META_APP_SECRET:
            # Nothing we know: we cannot check the signature, store nothing, answer 200.
            metrics.WEBHOOK_EVENTS.labels(channel=kind, result="unknown_account").inc()
            logger.warning("webhook for unknown accounts", extra={"accounts": ids})
            return WebhookResult(unknown_accounts=ids)
    if not _check_signature(raw_body, signature, accounts):
        metrics.WEBHOOK_EVENTS.labels(channel=kind, result="bad_signature").inc()
        logger.warning(
            "webhook signature missing or wrong",
            extra={"channel": kind, "slug": slug, "has_signature": bool(signature)},
        )
        raise WebhookSignatureError("X-Hub-Signature-256 is missing or does not match.")
    if not isinstance(payload, dict):
        metrics.WEBHOOK_EVENTS.labels(channel=kind, result="malformed").inc()
        raise WebhookMalformedError("The webhook body is not a JSON object.")

    parsed = providers.parse(kind, payload)
    result = WebhookResult(errors=list(parsed.errors))
    if parsed.errors:
        metrics.WEBHOOK_EVENTS.labels(channel=kind, result="malformed").inc(len(parsed.errors))
        logger.warning("webhook parts skipped", extra={"errors": parsed.errors[:10]})
    by_id = {a.external_id: a for a in accounts}
    for external_id in parsed.account_external_ids():
        account = by_id.get(external_id)
        if account is None:
            result.unknown_accounts.append(external_id)
            metrics.WEBHOOK_EVENTS.labels(channel=kind, result="unknown_account").inc()
            logger.warning("webhook entry for an unknown account", extra={"account": external_id})
            continue
        _account_seen(account)
        if not account.can_receive or not account.client.is_active:
            result.skipped_accounts.append(external_id)
            metrics.WEBHOOK_EVENTS.labels(channel=kind, result="inactive").inc()
            logger.info(
                "webhook for an inactive account or client: not processed",
                extra={"account": account.pk},
            )
            continue
        _store_for_account(account, parsed.for_account(external_id), result)
    return result


def _payload_account_ids(kind: str, payload) -> list[str]:
    if not isinstance(payload, dict):
        return []
    if kind == "whatsapp":
        return providers.whatsapp.account_ids(payload)
    return [
        str(e.get("id")) for e in payload.get("entry") or [] if isinstance(e, dict) and e.get("id")
    ]


def _account_seen(account: ChannelAccount) -> None:
    # At most one write a minute per account: a busy number must not write on every webhook.
    now = timezone.now()
    if account.last_seen_at and (now - account.last_seen_at).total_seconds() < 60:
        return
    ChannelAccount.objects.filter(pk=account.pk).filter(
        Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=now - timedelta(seconds=60))
    ).update(last_seen_at=now, silent_flagged_at=None)


def _store_for_account(account: ChannelAccount, parsed, result: WebhookResult) -> None:
    from conversations import kinds as conversation_kinds
    from conversations import services as conversation_services
    from conversations.tasks import handle_inbound_task

    request_trace = context.current_trace_id()
    single = len(parsed.messages) == 1
    with tenant_context(account.client), transaction.atomic():
        for inbound in parsed.messages:
            # A trace per inbound message: it follows the message into every task it causes.
            # A lone message keeps the request's trace id, so a caller's X-Trace-ID carries on.
            trace_id = request_trace if single and request_trace else context.new_id()
            with context.bound(trace_id=trace_id):
                message, created = conversation_kinds.inbound_receive(
                    account=account, inbound=inbound
                )
            if created:
                result.accepted += 1
                metrics.WEBHOOK_EVENTS.labels(channel=account.kind, result="accepted").inc()
                if message.status == message.Status.RECEIVED:
                    transaction.on_commit(
                        _enqueue_reply(account.client, handle_inbound_task, message.pk, trace_id)
                    )
            else:
                result.duplicates += 1
                metrics.WEBHOOK_EVENTS.labels(channel=account.kind, result="duplicate").inc()
        for update in parsed.statuses:
            conversation_services.message_status_apply(update=update)
            result.statuses += 1


def _enqueue_reply(client, task, message_id, trace_id):
    # Delayed by the quiet period: a burst of customer messages is answered once, by the
    # task of the newest message (see conversations.pipeline).
    def send():
        with tenant_context(client), context.bound(trace_id=trace_id):
            try:
                task.apply_async(
                    (message_id,), countdown=settings.REPLY_QUIET_PERIOD_SECONDS or None
                )
            except Exception:
                # The message is committed; the sweeper enqueues it again. Meta still gets
                # its 200, so it does not redeliver what we already hold.
                logger.exception(
                    "could not enqueue the reply task; the sweeper will retry it",
                    extra={"message_id": str(message_id)},
                )

    return send


# --- sending ---------------------------------------------------------------------------------


class SendRetryableError(Exception):
    """A transient Graph API failure: Celery retries the send with backoff."""

    def __init__(self, message: str, countdown: float | None = None):
        super().__init__(message)
        self.countdown = countdown


def graph_client_for(account: ChannelAccount) -> graph.GraphClient:
    return graph.GraphClient(
        base_url=settings.GRAPH_API_BASE_URL,
        api_version=account.graph_api_version or settings.GRAPH_API_VERSION,
        access_token=account.access_token,
        connect_timeout=settings.GRAPH_API_CONNECT_TIMEOUT,
        read_timeout=settings.GRAPH_API_READ_TIMEOUT,
    )


_BUCKET_LUA = """
local key, rate, now, cost = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 1
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1]) or rate
local ts = tonumber(state[2]) or now
tokens = math.min(rate, tokens + (now - ts) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = (cost - tokens) / rate end
redis.call('HSET', key, 'tokens', tokens, 'ts', now)
redis.call('EXPIRE', key, 60)
return tostring(wait)
"""


def pace(*, account: ChannelAccount, recipient: str) -> float:
    """Seconds to wait before sending: a token bucket per phone number id (Meta's throughput)
    and a minimum spacing between consecutive messages to the same customer."""
    client = get_redis()
    now = time.time()
    wait = float(
        client.eval(
            _BUCKET_LUA,
            1,
            f"wafaa:pace:account:{account.external_id}",
            settings.WHATSAPP_MESSAGES_PER_SECOND,
            now,
        )
    )
    spacing_ms = settings.SAME_CUSTOMER_SPACING_MS
    if spacing_ms > 0:
        key = f"wafaa:pace:recipient:{account.external_id}:{recipient}"
        if not client.set(key, "1", px=spacing_ms, nx=True):
            wait = max(wait, (client.pttl(key) or 0) / 1000)
            client.set(key, "1", px=spacing_ms + int(wait * 1000))
    return wait


def message_send(*, message_id) -> str:
    """Send one outbound message through its channel. Idempotent: a message already sent (or
    parts of it) is never sent again. Returns the resulting status."""
    from conversations.models import Message

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
        return _send_parts(message, account)
    finally:
        try:
            lock.release()
        except Exception:  # the lock expired: another send may have started; it checks parts
            logger.warning("send lock expired before release")


def _send_parts(message, account: ChannelAccount) -> str:
    from conversations.models import Message

    contact = message.conversation.contact
    recipient = contact.wa_id or contact.user_id or contact.external_id
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
    from conversations import notifications
    from conversations.models import Message

    Message.objects.filter(pk=message.pk).update(
        status=Message.Status.FAILED,
        failure_reason=reason[:64],
        failure_detail=detail[:2000],
        updated_at=timezone.now(),
    )
    logger.warning("message not sent", extra={"message_id": str(message.pk), "reason": reason})
    notifications.notify(
        conversation=message.conversation,
        event="delivery_failed",
        data={"message_id": message.pk, "reason": reason},
    )
    return Message.Status.FAILED


def message_mark_read(*, message_id) -> None:
    """Tell WhatsApp we read the customer's message (blue ticks); best effort."""
    from conversations.models import Message

    message = Message.objects.select_related("conversation").get(pk=message_id)
    account = ChannelAccount.objects.filter(pk=message.conversation.channel_account_id).first()
    if account is None or account.kind != "whatsapp" or not message.external_id:
        return
    try:
        graph_client_for(account).mark_whatsapp_read(account.external_id, message.external_id)
    except graph.GraphError as exc:
        logger.info("mark as read failed", extra={"code": exc.code})


def media_fetch(*, message_id) -> bytes:
    """Download an inbound message's media (WhatsApp media id or Instagram URL), size-limited."""
    from conversations.models import Message

    message = Message.objects.select_related("conversation").get(pk=message_id)
    account = ChannelAccount.objects.get(pk=message.conversation.channel_account_id)
    client = graph_client_for(account)
    if message.media_id:
        info = client.get_media_url(message.media_id)
        data = client.download_media(info["url"], settings.MEDIA_MAX_BYTES)
        if info.get("mime_type") and not message.media_mime_type:
            message.media_mime_type = info["mime_type"]
    elif message.media_url:
        data = client.download_media(
            message.media_url, settings.MEDIA_MAX_BYTES, authenticated=False
        )
    else:
        raise NotFoundError("This message has no media.")
    message.raw = {**message.raw, "media_size": len(data)}
    message.save(update_fields=["raw", "media_mime_type", "updated_at"])
    return data


# --- accounts --------------------------------------------------------------------------------


def channel_account_create(*, client, **fields) -> ChannelAccount:
    if ChannelAccount.objects.filter(
        kind=fields["kind"], external_id=fields["external_id"]
    ).exists():
        from wafaa.errors import ConflictError

        raise ConflictError(
            f"A {fields['kind']} account with id {fields['external_id']} is already connected."
        )
    account = ChannelAccount.objects.create(client=client, **fields)
    logger.info("channel account connected", extra={"account": account.pk, "kind": account.kind})
    return account


def channel_account_update(*, account: ChannelAccount, data: dict) -> ChannelAccount:
    for name, value in data.items():
        setattr(account, name, value)
    if {"access_token", "app_secret"} & set(
        data
    ) and account.status == ChannelAccount.Status.CREDENTIALS_INVALID:
        account.status = ChannelAccount.Status.ACTIVE  # new credentials: try again
        data = {**data, "status": account.status}
    account.save(update_fields=[*data.keys(), "updated_at"])
    return account


def channel_accounts_flag_silent() -> int:
    """Flag active accounts that have received no webhook for too long (beat)."""
    threshold = timezone.now() - timedelta(minutes=settings.CHANNEL_SILENT_AFTER_MINUTES)
    silent = ChannelAccount.objects.filter(status=ChannelAccount.Status.ACTIVE).filter(
        Q(last_seen_at__lt=threshold) | Q(last_seen_at__isnull=True, created_at__lt=threshold)
    )
    count = silent.count()
    metrics.CHANNEL_SILENT.set(count)
    for account in silent.filter(silent_flagged_at__isnull=True).select_related("client"):
        logger.warning(
            "channel account silent: no webhook received recently",
            extra={
                "account": account.pk,
                "client": account.client.slug,
                "last_seen_at": str(account.last_seen_at),
            },
        )
    silent.filter(silent_flagged_at__isnull=True).update(silent_flagged_at=timezone.now())
    return count
