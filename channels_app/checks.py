"""Checks on demand: does a channel account's token work, for this account, with the
permissions Wafaa needs? Asked of the Graph API by `manage.py check_channel` and the API's
`POST …/channels/{id}/check`, and (the access part) whenever an account is connected or its
token changes (channels_app.services.channel_account_verify_access).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from django.utils import timezone

from channels_app import graph
from channels_app.models import ChannelAccount
from channels_app.services import (
    ChannelAccessDeniedError,
    ChannelVerificationUnavailableError,
    channel_account_verify_access,
    graph_client_for,
)

logger = logging.getLogger(__name__)

# What each channel's token must have been granted to receive and answer messages.
REQUIRED_PERMISSIONS = {
    "whatsapp": ("whatsapp_business_messaging", "whatsapp_business_management"),
    "instagram": ("instagram_basic", "instagram_manage_messages"),
}


@dataclass
class ChannelCheck:
    account_id: int
    kind: str
    external_id: str
    ok: bool = False
    access: str = "unknown"  # ok | denied | unavailable
    permissions_missing: list[str] = field(default_factory=list)
    permissions_unknown: bool = False
    detail: str = ""
    checked_at: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def channel_account_check(*, account: ChannelAccount) -> ChannelCheck:
    """Ask Meta about this account's token; mark the account when Meta rejects the token."""
    result = ChannelCheck(
        account_id=account.pk,
        kind=account.kind,
        external_id=account.external_id,
        checked_at=timezone.now().isoformat(),
    )
    try:
        channel_account_verify_access(
            kind=account.kind,
            external_id=account.external_id,
            access_token=account.access_token,
            graph_api_version=account.graph_api_version,
        )
        result.access = "ok"
    except ChannelAccessDeniedError as exc:
        result.access, result.detail = "denied", exc.message
    except ChannelVerificationUnavailableError as exc:
        result.access, result.detail = "unavailable", exc.message
    if result.access == "ok":
        try:
            granted = graph_client_for(account).permissions_get()
        except graph.GraphError as exc:
            # Some tokens (page tokens) cannot list their permissions: not a failure by itself.
            result.permissions_unknown = True
            result.detail = f"Meta did not list the token's permissions (code {exc.code})."
        else:
            result.permissions_missing = [
                name
                for name in REQUIRED_PERMISSIONS.get(account.kind, ())
                if granted.get(name) != "granted"
            ]
            if result.permissions_missing:
                result.detail = "The token lacks: " + ", ".join(result.permissions_missing) + "."
    result.ok = result.access == "ok" and not result.permissions_missing
    if result.access == "denied" and account.status == ChannelAccount.Status.ACTIVE:
        ChannelAccount.objects.filter(pk=account.pk).update(
            status=ChannelAccount.Status.CREDENTIALS_INVALID, updated_at=timezone.now()
        )
    logger.info(
        "channel account checked",
        extra={"account": account.pk, "access": result.access, "ok": result.ok},
    )
    return result
