"""Channel providers: pure parsers from Meta's webhook formats to one inbound shape.

`parse(channel, payload)` picks the right provider; `verify_signature()` checks Meta's
`X-Hub-Signature-256` header. Nothing here imports Django, so it can be used and tested alone.
"""

from __future__ import annotations

from typing import Any

from . import instagram, whatsapp
from .base import (
    CHANNELS,
    INSTAGRAM,
    NO_REPLY_TYPES,
    SIGNATURE_HEADER,
    STATUS_ORDER,
    WHATSAPP,
    InboundMessage,
    ParsedWebhook,
    StatusUpdate,
    sign_body,
    status_transition_allowed,
    verify_signature,
)

PARSERS = {WHATSAPP: whatsapp.parse, INSTAGRAM: instagram.parse}


def parse(channel: str, payload: Any) -> ParsedWebhook:
    """Parse a decoded webhook body of `channel` ('whatsapp' or 'instagram'). Never raises;
    an unknown channel gives a ParsedWebhook with an error."""
    parser = PARSERS.get(channel)
    if parser is None:
        return ParsedWebhook(errors=[f"unknown channel: {channel!r}"])
    return parser(payload)


__all__ = [
    "CHANNELS",
    "INSTAGRAM",
    "NO_REPLY_TYPES",
    "PARSERS",
    "SIGNATURE_HEADER",
    "STATUS_ORDER",
    "WHATSAPP",
    "InboundMessage",
    "ParsedWebhook",
    "StatusUpdate",
    "instagram",
    "parse",
    "sign_body",
    "status_transition_allowed",
    "verify_signature",
    "whatsapp",
]
