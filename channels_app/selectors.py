"""Reads of channel accounts (public schema), including the cross-client webhook routing."""

from __future__ import annotations

from django.db.models import QuerySet

from channels_app.models import ChannelAccount
from tenants.models import Client


def channel_account_list(*, client: Client) -> QuerySet[ChannelAccount]:
    return ChannelAccount.objects.filter(client=client).order_by("created_at")


def channel_account_get(*, client: Client, account_id: int) -> ChannelAccount | None:
    return ChannelAccount.objects.filter(client=client, pk=account_id).first()


def channel_account_route_for_slug(*, kind: str, slug: str) -> list[ChannelAccount]:
    """The accounts of one client (by its webhook slug) and channel kind."""
    return list(
        ChannelAccount.objects.select_related("client").filter(kind=kind, client__slug=slug)
    )


def channel_account_route_all_tenants(
    *, kind: str, external_ids: list[str]
) -> list[ChannelAccount]:
    """Accounts of ANY client by their Meta ids: only for the app-level webhook, which serves
    every client from one Meta app and routes each entry to its own client."""
    if not external_ids:
        return []
    return list(
        ChannelAccount.objects.select_related("client").filter(
            kind=kind, external_id__in=external_ids
        )
    )
