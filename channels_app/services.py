"""Webhooks in (verify, record in the durable inbox), channel accounts, and the Graph API
client of an account. Draining the inbox into a client's schema is conversations.inbound;
sending (the outbound state machine) is conversations.outbound.

Webhook handling never calls Meta, an LLM, an embedder or the broker: it verifies the
signature, writes the raw verified body in one INSERT and answers 200, so Meta gets its answer
in about a millisecond and nothing accepted is lost (the database is the record).
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from channels_app import graph, inbox, providers, routing, selectors
from channels_app.models import ChannelAccount
from channels_app.routing import Route
from wafaa import metrics
from wafaa.errors import ApplicationError, ConflictError, NotFoundError, PayloadTooLargeError

logger = logging.getLogger(__name__)


class WebhookSignatureError(ApplicationError):
    code = "bad_signature"
    status_code = 401


class WebhookMalformedError(ApplicationError):
    code = "malformed"
    status_code = 400


class InboxUnavailableError(ApplicationError):
    code = "unavailable"
    status_code = 503


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


def _verified_routes(raw_body: bytes, signature: str | None, routes: list[Route]) -> list[Route]:
    """The routes among `routes` whose own app secret signed `raw_body`.

    A client's secret proves only that client's accounts: on its per-slug URL a body signed
    with it is processed only for entries of the accounts that secret belongs to. The platform's
    META_APP_SECRET (held by Meta and us only) proves every account of the slug."""
    if settings.META_APP_SECRET and providers.verify_signature(
        raw_body, signature, settings.META_APP_SECRET
    ):
        return list(routes)
    verdicts: dict[str, bool] = {}
    for route in routes:  # each distinct secret is checked once, in constant time
        secret = route.app_secret
        if secret and secret not in verdicts:
            verdicts[secret] = providers.verify_signature(raw_body, signature, secret)
    return [r for r in routes if r.app_secret and verdicts.get(r.app_secret)]


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


def webhook_authenticate(
    *, kind: str, slug: str | None, raw_body: bytes, signature: str | None
) -> list[Route]:
    """Check a webhook POST before anything is decoded or stored; return the routes (accounts)
    this body is proved for and names, active or not.

    - per-slug URL (`/webhook/<kind>/<slug>`): the slug's accounts; the body must be signed by
      one of their own secrets (or the platform's), and only the accounts whose secret signed
      it are verified;
    - app-level URL (`/webhook/<kind>/`): one Meta app for many clients, so only the platform's
      META_APP_SECRET is accepted, and the URL is refused outright when it is unset. A client's
      secret never proves anything here: with it, client B could deliver into A's schema.
    """
    if len(raw_body) > settings.WEBHOOK_MAX_BODY_BYTES:
        metrics.WEBHOOK_EVENTS.labels(channel=kind, result="too_large").inc()
        raise PayloadTooLargeError(
            f"Webhook bodies are limited to {settings.WEBHOOK_MAX_BODY_BYTES} bytes."
        )
    if slug is not None:
        routes = routing.routes_for_slug(kind=kind, slug=slug)
        if not routes:
            metrics.WEBHOOK_EVENTS.labels(channel=kind, result="unknown_account").inc()
            raise NotFoundError(f"No {kind} channel account for '{slug}'.")
        verified = _verified_routes(raw_body, signature, routes)
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
    named = set(payload_account_ids(kind, _decode(kind, raw_body)))
    if slug is None:
        verified = routing.routes_for_ids_all_tenants(kind=kind, external_ids=sorted(named))
    for external_id in named - {r.external_id for r in verified}:
        metrics.WEBHOOK_EVENTS.labels(channel=kind, result="unknown_account").inc()
        logger.warning(
            "webhook entry for an account this signature does not prove: not processed",
            extra={"account": external_id},
        )
    return [r for r in verified if r.external_id in named]


def webhook_accept(*, kind: str, slug: str | None, raw_body: bytes, signature: str | None) -> int:
    """Verify a webhook POST and record it in the durable inbox (one INSERT); returns how
    many clients' inboxes got it. Entries of accounts that did not verify are never
    processed; inactive accounts and suspended clients are acknowledged and not stored.

    The database unreachable (routing or the INSERT) is a fast 503, so Meta redelivers:
    never a 200 for something not stored."""
    try:
        routes = webhook_authenticate(kind=kind, slug=slug, raw_body=raw_body, signature=signature)
        receiving = [r for r in routes if r.receiving]
        if len(receiving) < len(routes):
            metrics.WEBHOOK_EVENTS.labels(channel=kind, result="inactive").inc(
                len(routes) - len(receiving)
            )
            logger.info("webhook for an inactive account or client: not processed")
        stored = inbox.inbox_store(kind=kind, raw_body=raw_body, routes=receiving)
    except DatabaseError:
        metrics.WEBHOOK_EVENTS.labels(channel=kind, result="unavailable").inc()
        logger.exception("webhook not stored: the database is unavailable")
        raise InboxUnavailableError("The webhook could not be stored; Meta will retry.") from None
    if stored:
        metrics.WEBHOOK_EVENTS.labels(channel=kind, result="stored").inc()
    return len(stored)


def payload_account_ids(kind: str, payload) -> list[str]:
    """The Meta account ids a decoded body names (WhatsApp phone number ids, Instagram entry
    ids), without parsing its events."""
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


def channel_accounts_seen(*, account_ids: list[int]) -> None:
    """Record that webhooks arrived for these accounts (the silence alarm reads it). At most
    one write a minute per account: a busy number must not write on every event."""
    now = timezone.now()
    ChannelAccount.objects.filter(pk__in=account_ids).filter(
        Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=now - timedelta(seconds=60))
    ).update(last_seen_at=now, silent_flagged_at=None)


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
