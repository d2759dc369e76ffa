"""The one guard for outbound HTTP calls that a client or a webhook can influence.

A client's `callback_url`, a media URL named in a webhook, any URL that did not come from the
operator's own configuration goes through here, never through `requests` directly:

    target = outbound_url_check(url)        # at save time: refuse early, with a reason
    response = outbound_request("POST", url, data=body, headers=..., timeout=(3.05, 5))

The rules (docs/security.md, "Outbound calls and logs"):
- https only, on the ports of OUTBOUND_ALLOWED_PORTS (443 and 8443 by default); no user:pass@;
- the host name is resolved and EVERY address it resolves to must be globally routable: no
  private, loopback, link-local (169.254.169.254, the cloud metadata service), multicast,
  reserved, unspecified (0.0.0.0, which Linux connects to the local host), shared/CGNAT,
  benchmarking, documentation, IPv6 unique-local or site-local address, and no IPv4 address
  hidden in an IPv6 form (mapped, NAT64, 6to4, Teredo); names that only ever mean "this
  machine" or "the cloud's metadata service" (localhost, metadata.google.internal, *.internal,
  *.local, ...) are refused by name before any lookup;
- the connection goes to the address that was checked (the name is not looked up a second
  time, so DNS rebinding gets nothing), while TLS still verifies the certificate for the name
  (SNI and the Host header carry the name);
- redirects are not followed (callbacks); a caller that needs a few (media on a CDN) asks for
  them, and each hop is checked and pinned like the first; proxies from the environment are
  not used (a proxy would make its own lookup).

OUTBOUND_ALLOWED_NETWORKS lets an operator name address ranges that pass although they are
not public (a relay inside their network; the test suite's fake servers on 127.0.0.1). An
address in them may also be reached over plain http and on any port: the operator trusts
that range as a whole. Everything else stays refused.

No library did this when it was written: `advocate` (the known one) is unmaintained since 2020
and pins old requests/urllib3; the newer ones wrap httpx or are one-person projects. This is
`ipaddress` plus one requests adapter on urllib3's documented pool options.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from wafaa.errors import ApplicationError

DEFAULT_PORTS = {"http": 80, "https": 443}

# Names that only ever mean this machine, the local network or a cloud's metadata service.
BLOCKED_NAMES = {
    "localhost",
    "metadata",
    "metadata.goog",
    "metadata.google.internal",
    "instance-data",
    "instance-data.ec2.internal",
}
BLOCKED_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".home.arpa")

# Ranges refused on top of what `ipaddress` calls not global (its tables differ between Python
# releases, and it calls multicast and some IPv6 forms global).
_BLOCKED_NETWORKS = [
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (CGNAT); Alibaba's metadata is 100.100.100.200
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local: AWS/GCP/Azure metadata at 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments; Oracle's metadata is 192.0.0.192
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible form
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo (2001::/32)
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4: carries an IPv4 address of any kind
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated, still routed by some stacks)
        "ff00::/8",  # multicast
    )
]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Resolver = Callable[[str, int], list[str]]


class OutboundURLRefusedError(ApplicationError):
    """The URL may not be called: its scheme, port, name or an address of it is not allowed."""

    code = "outbound_url_refused"
    status_code = 400


class OutboundHostUnresolvedError(OutboundURLRefusedError):
    """The name does not resolve (at save time a refusal; at connect time retried)."""


class OutboundRedirectRefusedError(OutboundURLRefusedError):
    """The server answered with a redirect; redirects are never followed."""


class OutboundHostNotAllowedError(OutboundURLRefusedError):
    """The caller's own host rule (e.g. Meta's media hosts only) refused a hop's host."""


@dataclass(frozen=True)
class Target:
    """A URL that passed the guard, with the addresses that were checked for it."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def resolve_host(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (IPv4 and IPv6), in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def address_is_public(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True only for a globally routable unicast address, looking into IPv6 forms of IPv4."""
    try:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return address_is_public(ip.ipv4_mapped)
        if ip in _NAT64:  # 64:ff9b::a.b.c.d is a.b.c.d through a NAT64 gateway
            return address_is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if any(ip in network for network in _BLOCKED_NETWORKS if network.version == ip.version):
        return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _policy() -> tuple[set[int], list]:
    # Read at call time (tests change the settings), and so this module imports without Django.
    from django.conf import settings

    ports = {int(port) for port in getattr(settings, "OUTBOUND_ALLOWED_PORTS", [443, 8443])}
    networks = [
        ipaddress.ip_network(net, strict=False)
        for net in getattr(settings, "OUTBOUND_ALLOWED_NETWORKS", [])
    ]
    return ports, networks


def _in_networks(address: str, networks: Iterable) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return any(ip.version == net.version and ip in net for net in networks)


def _name_refused(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name in BLOCKED_NAMES or name.endswith(BLOCKED_SUFFIXES)


def outbound_url_check(url: str, *, resolve: Resolver = resolve_host) -> Target:
    """Check `url` against the rules above and return it with its checked addresses.

    Raises OutboundURLRefusedError (OutboundHostUnresolvedError when the name does not
    resolve). `resolve` is the DNS lookup; tests pass a fake resolver for names they own.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundURLRefusedError("The URL is not valid.") from exc
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in DEFAULT_PORTS or not host:
        raise OutboundURLRefusedError("The URL must be an https:// URL with a host name.")
    if parts.username is not None or parts.password is not None:
        raise OutboundURLRefusedError("The URL must not carry a user name or password.")
    if _name_refused(host):
        raise OutboundURLRefusedError("The URL's host is a local or internal name.")
    port = port or DEFAULT_PORTS[scheme]
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise OutboundURLRefusedError("The URL's host name is not valid.") from exc

    allowed_ports, allowed_networks = _policy()
    try:
        addresses = resolve(ascii_host, port)
    except (OSError, UnicodeError):
        addresses = []
    if not addresses:
        if scheme != "https":  # http is only for allow-listed addresses, which this is not
            raise OutboundURLRefusedError("The URL must use https://.")
        raise OutboundHostUnresolvedError("The URL's host name does not resolve.")

    operator_allowed = all(_in_networks(a, allowed_networks) for a in addresses)
    for address in addresses:
        if not (address_is_public(address) or _in_networks(address, allowed_networks)):
            # Deliberately vague: the caller learns that the target is refused, not what
            # our resolver sees inside our network.
            raise OutboundURLRefusedError(
                "The URL's host resolves to an address that is not public."
            )
    if not operator_allowed:
        if scheme != "https":
            raise OutboundURLRefusedError("The URL must use https://.")
        if port not in allowed_ports:
            ports = ", ".join(str(p) for p in sorted(allowed_ports))
            raise OutboundURLRefusedError(f"The URL's port must be one of: {ports}.")
    return Target(url=url, scheme=scheme, host=ascii_host, port=port, addresses=tuple(addresses))


class PinnedAdapter(HTTPAdapter):
    """Connects to one checked address while speaking to the host name.

    The pool is keyed on the address (so the socket goes there and nowhere else); TLS gets the
    name as SNI and as the name the certificate must match (urllib3's `server_hostname` and
    `assert_hostname` pool options); the Host header carries the name.
    """

    def __init__(self, target: Target, address: str):
        self.target = target
        self.address = address
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        # This adapter serves one request on a session of its own, redirects off: the URL
        # it sees is the one that was checked.
        host_params["host"] = self.address
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = self.target.host
            pool_kwargs["assert_hostname"] = self.target.host
        return host_params, pool_kwargs

    def send(self, request, **kwargs):
        default = DEFAULT_PORTS[self.target.scheme]
        request.headers["Host"] = (
            self.target.host
            if self.target.port == default
            else f"{_bracketed(self.target.host)}:{self.target.port}"
        )
        return super().send(request, **kwargs)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _preferred(addresses: tuple[str, ...]) -> str:
    # IPv4 first: many hosts resolve AAAA records but have no IPv6 route.
    return next((a for a in addresses if ":" not in a), addresses[0])


def outbound_request(
    method: str,
    url: str,
    *,
    resolve: Resolver = resolve_host,
    max_redirects: int = 0,
    host_allowed: Callable[[str], bool] | None = None,
    **kwargs,
) -> requests.Response:
    """One HTTP request to a URL a client or a webhook chose, under the rules above.

    `kwargs` go to requests (data, json, headers, timeout, stream, verify). Redirects are not
    followed (`max_redirects=0`, callbacks); a caller that must follow some (media on a CDN)
    passes a small `max_redirects`, and every hop is checked and pinned like the first, with
    the Authorization header dropped when the host changes. `host_allowed`, when given, must
    approve the host name of the URL and of every redirect as well (media: Meta's hosts only).

    Raises OutboundURLRefusedError when a URL is refused (not worth retrying),
    OutboundRedirectRefusedError on a redirect past `max_redirects`, and
    requests.ConnectionError when a name does not resolve now (worth retrying) or the
    connection fails.
    """
    kwargs.setdefault("timeout", (3.05, 10))
    for hop in range(max_redirects + 1):
        host = urlsplit(url).hostname or ""
        if host_allowed is not None and not host_allowed(host):
            raise OutboundHostNotAllowedError(f"The host {host} is not allowed here.")
        response = _pinned_request(method, url, resolve=resolve, **kwargs)
        if not (response.is_redirect or 300 <= response.status_code < 400):
            return response
        response.close()
        location = response.headers.get("Location")
        if hop == max_redirects or not location:
            raise OutboundRedirectRefusedError(
                f"The server answered {response.status_code} (a redirect); "
                + ("redirects are not followed." if not max_redirects else "too many redirects.")
            )
        next_url = urljoin(url, location)
        if urlsplit(next_url).hostname != urlsplit(url).hostname:
            headers = {
                k: v
                for k, v in (kwargs.get("headers") or {}).items()
                if k.lower() != "authorization"
            }
            kwargs["headers"] = headers
        if response.status_code in (301, 302, 303) and method.upper() not in ("GET", "HEAD"):
            method = "GET"
            kwargs.pop("data", None)
            kwargs.pop("json", None)
        url = next_url
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _pinned_request(method: str, url: str, *, resolve: Resolver, **kwargs) -> requests.Response:
    try:
        target = outbound_url_check(url, resolve=resolve)
    except OutboundHostUnresolvedError as exc:
        raise requests.ConnectionError(str(exc)) from exc
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: it would resolve anew
    adapter = PinnedAdapter(target, _preferred(target.addresses))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    try:
        return session.request(method, url, allow_redirects=False, **kwargs)
    finally:
        # A streamed body stays readable: its connection is checked out of the pool, and
        # is closed (not pooled) when the caller closes the response.
        session.close()
