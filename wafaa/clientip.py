"""The caller's IP address, as far as the deployment lets us trust it.

Throttles keyed by address (logins, sign-ups) must not take a header the caller wrote at face
value, nor lump every caller together behind a proxy. With TRUSTED_PROXY_HOPS = N, the N-th
address from the right of X-Forwarded-For is the one our outermost proxy saw; anything to its
left was written by the caller. With 0 (the default) only the socket address counts.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_ip(request) -> str:
    remote = request.META.get("REMOTE_ADDR") or "unknown"
    hops = settings.TRUSTED_PROXY_HOPS
    if hops <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if not forwarded:
        return remote
    candidate = forwarded[-hops] if len(forwarded) >= hops else forwarded[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote
