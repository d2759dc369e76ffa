"""The webhook routing table: which client and secret stand behind a slug or a Meta account id.

Read on every webhook POST, so it is held per process for WEBHOOK_ROUTING_CACHE_SECONDS
(never in Redis: a webhook must not wait on the broker). A save or delete of a channel
account or client in this process forgets it at once; other processes see the change within
the TTL. That window only ever lets an event *into* the inbox: the drain checks the account
and the client again before anything reaches a client's schema.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from channels_app.models import ChannelAccount
from tenants.models import Client


@dataclass(frozen=True, slots=True)
class Route:
    account_id: int
    client_id: int
    kind: str
    external_id: str
    app_secret: str
    receiving: bool  # the account can receive and its client is active

    def __repr__(self) -> str:  # never show the secret
        return f"Route(account={self.account_id}, client={self.client_id}, {self.external_id})"


_cache: dict[tuple, tuple[float, object]] = {}
_lock = threading.Lock()


def _route(account: ChannelAccount) -> Route:
    return Route(
        account_id=account.pk,
        client_id=account.client_id,
        kind=account.kind,
        external_id=account.external_id,
        app_secret=account.app_secret or "",
        receiving=account.can_receive and account.client.is_active,
    )


def _cached(key: tuple, load):
    ttl = settings.WEBHOOK_ROUTING_CACHE_SECONDS
    now = time.monotonic()
    if ttl > 0:
        hit = _cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
    value = load()
    if ttl > 0:
        with _lock:
            if len(_cache) > 10_000:  # bounded: unknown slugs and ids are cached too
                _cache.clear()
            _cache[key] = (now + ttl, value)
    return value


def routes_for_slug(*, kind: str, slug: str) -> list[Route]:
    """The accounts of one client (by its webhook slug) of one channel kind."""

    def load():
        accounts = ChannelAccount.objects.select_related("client").filter(
            kind=kind, client__slug=slug
        )
        return [_route(a) for a in accounts]

    return _cached(("slug", kind, slug), load)


def routes_for_ids_all_tenants(*, kind: str, external_ids: list[str]) -> list[Route]:
    """Accounts of ANY client by their Meta ids: only for the app-level webhook, whose body
    the platform's own secret signed."""
    found: list[Route] = []
    missing = []
    for external_id in external_ids:
        hit = (
            _cache.get(("id", kind, external_id))
            if settings.WEBHOOK_ROUTING_CACHE_SECONDS
            else None
        )
        if hit is not None and hit[0] > time.monotonic():
            if hit[1] is not None:
                found.append(hit[1])
        else:
            missing.append(external_id)
    if missing:
        loaded = {
            a.external_id: _route(a)
            for a in ChannelAccount.objects.select_related("client").filter(
                kind=kind, external_id__in=missing
            )
        }
        for external_id in missing:
            route = _cached(("id", kind, external_id), lambda e=external_id: loaded.get(e))
            if route is not None:
                found.append(route)
    return found


def forget() -> None:
    """Drop the whole table (a channel account or client changed in this process)."""
    with _lock:
        _cache.clear()


def _forget_on_change(sender, **kwargs) -> None:
    forget()


for _model in (ChannelAccount, Client):
    post_save.connect(_forget_on_change, sender=_model, dispatch_uid=f"routing-{_model.__name__}")
    post_delete.connect(
        _forget_on_change, sender=_model, dispatch_uid=f"routing-del-{_model.__name__}"
    )
