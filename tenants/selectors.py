"""Reads of clients, memberships and API keys (all in `public`)."""

from __future__ import annotations

import threading
import time

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils import timezone

from tenants.models import APIKey, Client, Invitation, Membership

_CLIENT_CACHE_SECONDS = 5.0
_client_cache: dict[int, tuple[float, Client]] = {}
_client_cache_lock = threading.Lock()
# Slug -> client id, for pages addressed by slug (the agents' inbox polls every few seconds).
_slug_ids: dict[str, int] = {}


def client_get_cached(*, client_id: int) -> Client | None:
    """The client by id, from a per-process cache of a few seconds.

    Finding the client is on every API request; this keeps its cost flat whatever the number
    of clients. A change (suspension) is visible everywhere within _CLIENT_CACHE_SECONDS, and at
    once in the process that made it (client_cache_forget on save).
    """
    now = time.monotonic()
    hit = _client_cache.get(client_id)
    if hit and hit[0] > now:
        return hit[1]
    client = Client.objects.filter(pk=client_id).first()
    if client is not None:
        with _client_cache_lock:
            if len(_client_cache) > 10_000:
                _client_cache.clear()
            _client_cache[client_id] = (now + _CLIENT_CACHE_SECONDS, client)
    return client


def client_get_by_slug_cached(*, slug: str) -> Client | None:
    """The client by slug, through the same per-process cache as `client_get_cached`."""
    client_id = _slug_ids.get(slug)
    if client_id is not None:
        client = client_get_cached(client_id=client_id)
        if client is not None and client.slug == slug:
            return client
    client = Client.objects.filter(slug=slug).first()
    if client is not None:
        with _client_cache_lock:
            if len(_slug_ids) > 10_000 or len(_client_cache) > 10_000:
                _slug_ids.clear()
                _client_cache.clear()
            _slug_ids[slug] = client.pk
            _client_cache[client.pk] = (time.monotonic() + _CLIENT_CACHE_SECONDS, client)
    return client


def client_cache_forget(*, client_id: int) -> None:
    with _client_cache_lock:
        _client_cache.pop(client_id, None)


def client_cache_clear() -> None:
    """Forget every cached client (tests, and after bulk changes made outside the services)."""
    with _client_cache_lock:
        _client_cache.clear()
        _slug_ids.clear()


def client_list_for_user(*, user) -> QuerySet[Client]:
    if getattr(user, "api_key", None) is not None:
        return Client.objects.filter(pk=user.api_key.client_id)
    if user.is_staff:
        return Client.objects.all()
    return Client.objects.filter(memberships__user=user)


def membership_get(*, user, client: Client) -> Membership | None:
    return Membership.objects.filter(user=user, client=client).first()


def membership_list(*, client: Client) -> QuerySet[Membership]:
    return Membership.objects.filter(client=client).select_related("user").order_by("created_at")


def api_key_get_by_hash(*, hashed_key: str) -> APIKey | None:
    return APIKey.objects.select_related("client").filter(hashed_key=hashed_key).first()


def api_key_list(*, client: Client) -> QuerySet[APIKey]:
    return APIKey.objects.filter(client=client).select_related("created_by")


def user_get_by_email(*, email: str):
    return get_user_model().objects.filter(email__iexact=email).first()


def invitation_list(*, client: Client):
    """The client's pending invitations (expired ones included until purged)."""
    return Invitation.objects.filter(client=client, accepted_at__isnull=True).order_by(
        "-created_at", "-pk"
    )


def invitation_pending_for_user(*, user):
    """Invitations addressed to this account's email, not accepted, not expired."""
    return (
        Invitation.objects.filter(
            email__iexact=user.email, accepted_at__isnull=True, expires_at__gt=timezone.now()
        )
        .select_related("client")
        .order_by("-created_at", "-pk")
    )
