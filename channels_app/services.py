"""Webhooks in (verify, parse, store once, enqueue on commit), channel accounts, and the Graph
API client of an account. Sending (the outbound state machine) lives in conversations.outbound.

Webhook handling never calls Meta, an LLM or an embedder: it records what Meta sent in the
right client's schema and hands work to Celery after commit, so Meta gets its 200 in
milliseconds and nothing accepted is lost (the database is the record; see the sweeper).
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import tenant_context

from channels_app import graph, providers, selectors
from channels_app.models import ChannelAccount
from wafaa import context, metrics
from wafaa.errors import ApplicationError, ConflictError, NotFoundError, PayloadTooLargeError

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


def _verified_accounts(
    raw_body: bytes, signature: str | None, accounts: list[ChannelAccount]
) -> list[ChannelAccount]:
    """The accounts among `accounts` whose own app secret signed `raw_body`.

    A client's secret proves only that client's accounts: on its per-slug URL a body signed
    with it is processed only for entries of the accounts that secret belongs to. The platform's
    META_APP_SECRET (held by Meta and us only) proves every account of the slug."""
    if settings.META_APP_SECRET and providers.verify_signature(
        raw_body, signature, settings.META_APP_SECRET
    ):
        return list(accounts)
    verdicts: dict[str, bool] = {}
    for account in accounts:  # each distinct secret is checked once, in constant time
        secret = account.app_secret
        if secret and secret not in verdicts:
            verdicts[secret] = providers.verify_signature(raw_body, signature, secret)
    return [a for a in accounts if a.app_secret and verdicts.get(a.app_secret)]


def _decode(kind: str, raw_body: bytes) -> dict:
    """The JSON object of a verified body; 400 for anything else (never a 500: a body nested
    thousands deep raises RecursionError in the decoder)."""
    try:
        payload = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        metrics.WEBHOOK_EVENTS.labels(channel=kind, result="malformed").inc()
        raise WebhookMalformedError("The webhook body is not a JSON object.")
    return payload


@dataclass
class VerifiedWebhook:
    """A POST whose signature checked out: its decoded body and the accounts it may act for."""

    kind: str
    payload: dict
    accounts: list[ChannelAccount]


def webhook_authenticate(
    *, kind: str, slug: str | None, raw_body: bytes, signature: str | None
) -> VerifiedWebhook:
    """Check a webhook POST before anything is parsed or stored.

    - per-slug URL (`/webhook/<kind>/<slug>`): the slug's accounts; the body must be signed by
      one of their own secrets (or the platform's), and only the accounts whose secret signed
      it are verified;
    - app-level URL (`/webhook/<kind>/`): one Meta app for many clients, so only the platform's
      META_APP_SECRET is accepted, and the URL is refused outright when it is unset. A client's
      secret never proves anything here: with it, client B could deliver into A's schema.

    The signature is checked on the raw bytes before the body is decoded.
    """
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
        verified = _verified_accounts(raw_body, signature, accounts)
        signed = bool(verified)
    else:
        # verify_signature refuses an empty secret: no platform secret, no app-level URL.
        signed = providers.verify_signature(raw_body, signature, settings.META_APP_SECRET)
    if not signed:
        metrics.WEBHOOK_EVENTS.labels(channel=kind, result="bad_signature").inc()
        logger.warning(
            "webhook signature missing or wrong",
            extra={"channel": kind, "slug": slug, "has_signature": bool(signature)},
        )
        if slug is None and not settings.META_APP_SECRET:
            raise WebhookSignatureError(
                "The app-level webhook URL is not configured (no platform app secret); "
                "use the per-client URL."
            )
        raise WebhookSignatureError("X-Hub-Signature-256 is missing or does not match.")
    payload = _decode(kind, raw_body)
    if slug is None:
        ids = _payload_account_ids(kind, payload)
        verified = selectors.channel_account_route_all_tenants(kind=kind, external_ids=ids)
    return VerifiedWebhook(kind=kind, payload=payload, accounts=verified)


def webhook_receive(
    *, kind: str, slug: str | None, raw_body: bytes, signature: str | None
) -> WebhookResult:
    """Handle one webhook POST: verify, parse every entry, store per client, enqueue on commit.

    Entries of accounts that did not verify are never processed: not stored, not answered,
    no status applied."""
    verified = webhook_authenticate(kind=kind, slug=slug, raw_body=raw_body, signature=signature)
    accounts = verified.accounts
    parsed = providers.parse(kind, verified.payload)
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
            logger.warning(
                "webhook entry for an account this signature does not prove: not processed",
                extra={"account": external_id},
            )
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
    entries = payload.get("entry")
    return [
        str(e.get("id"))
        for e in (entries if isinstance(entries, list) else [])
        if isinstance(e, dict) and e.get("id")
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
            try:
                # Each message in a savepoint of its own: one that cannot be stored never
                # takes its siblings in the same POST down with it.
                with context.bound(trace_id=trace_id), transaction.atomic():
                    message, created = conversation_kinds.inbound_receive(
                        account=account, inbound=inbound
                    )
            except (OperationalError, InterfaceError):
                raise  # the database itself failed: 5xx, Meta sends the POST again
            except Exception as exc:
                result.errors.append(f"message not stored: {type(exc).__name__}")
                metrics.WEBHOOK_EVENTS.labels(channel=account.kind, result="store_failed").inc()
                logger.exception(
                    "an inbound message could not be stored; its siblings were",
                    extra={"account": account.pk, "message": inbound.external_id},
                )
                continue
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


# --- Graph API client for an account --------------------------------------------------------


def graph_client_for(account: ChannelAccount) -> graph.GraphClient:
    return graph.GraphClient(
        base_url=settings.GRAPH_API_BASE_URL,
        api_version=account.graph_api_version or settings.GRAPH_API_VERSION,
        access_token=account.access_token,
        connect_timeout=settings.GRAPH_API_CONNECT_TIMEOUT,
        read_timeout=settings.GRAPH_API_READ_TIMEOUT,
    )


# --- accounts --------------------------------------------------------------------------------


class ChannelAccessDeniedError(ApplicationError):
    code = "channel_access_denied"
    status_code = 400


class ChannelVerificationUnavailableError(ApplicationError):
    code = "graph_unavailable"
    status_code = 503


# The fields asked for are ones any token allowed to act for the node can read.
_ACCESS_FIELDS = {"whatsapp": "id,display_phone_number", "instagram": "id,username"}


def channel_account_verify_access(
    *, kind: str, external_id: str, access_token: str, graph_api_version: str = ""
) -> dict:
    """Ask Meta whether `access_token` may act for `external_id` (a phone number id or an
    Instagram account id); return what Meta answered, or raise.

    This is what stops a client from squatting another business's number: only a token
    issued for that number passes. Whether the id exists, belongs to someone else or is simply
    not this token's, the answer is the same, so the check is not an oracle either.
    """
    client = graph.GraphClient(
        base_url=settings.GRAPH_API_BASE_URL,
        api_version=graph_api_version or settings.GRAPH_API_VERSION,
        access_token=access_token,
        connect_timeout=settings.GRAPH_API_CONNECT_TIMEOUT,
        read_timeout=settings.GRAPH_API_READ_TIMEOUT,
    )
    try:
        node = client.node_get(external_id, _ACCESS_FIELDS[kind])
    except graph.GraphError as exc:
        if exc.retryable:
            raise ChannelVerificationUnavailableError(
                "Meta could not be asked whether this token may use this account; try again."
            ) from None
        logger.info("channel access refused by Meta", extra={"kind": kind, "code": exc.code})
        node = {}
    if str(node.get("id", "")) != external_id:
        raise ChannelAccessDeniedError(
            f"Meta does not let this access token act for {kind} account {external_id}; "
            "use a token issued for it."
        )
    return node


def channel_account_create(*, client, **fields) -> ChannelAccount:
    """Connect a channel account: the token is proved first (Meta), uniqueness only after,
    so a caller without a token for the id learns nothing about who has connected it."""
    channel_account_verify_access(
        kind=fields["kind"],
        external_id=fields["external_id"],
        access_token=fields["access_token"],
        graph_api_version=fields.get("graph_api_version", ""),
    )
    taken = ConflictError("This account is already connected.")
    if ChannelAccount.objects.filter(
        kind=fields["kind"], external_id=fields["external_id"]
    ).exists():
        raise taken
    try:
        with transaction.atomic():
            account = ChannelAccount.objects.create(client=client, **fields)
    except IntegrityError:  # connected at the same moment by another request
        raise taken from None
    logger.info("channel account connected", extra={"account": account.pk, "kind": account.kind})
    return account


def channel_account_update(*, account: ChannelAccount, data: dict) -> ChannelAccount:
    if "access_token" in data:  # a new token must be good for this very account
        channel_account_verify_access(
            kind=account.kind,
            external_id=account.external_id,
            access_token=data.get("access_token", account.access_token),
            graph_api_version=data.get("graph_api_version", account.graph_api_version),
        )
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
