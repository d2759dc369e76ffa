"""Finding 4 — SSRF through `callback_url`: a client aims our worker at our own network.

The attacker is a client's owner with a valid account. Each attack URL points at a loopback
server that is NOT allowed (127.0.0.1 itself with the allow-list emptied, 127.0.0.2, [::1]),
counting the TCP connections it accepts: refusal is asserted together with `connections == 0`.
Addresses we cannot run a server on (10.0.0.1, 169.254.169.254) are refused before any
connection is tried, so no packet leaves this machine either way.

Checked at save time (API and admin) and again at connect time, on the resolved address, with
the connection pinned to it and redirects refused (wafaa/netguard.py).
"""

from __future__ import annotations

import datetime
import logging
import uuid

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conversations import notifications
from tenants.models import Client, Membership
from tests.fakes.callback_receiver import CallbackReceiver
from tests.tenants.factories import MembershipFactory, api_as_user
from wafaa import netguard

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_api(tenant_a):
    user = MembershipFactory(client=tenant_a, role=Membership.Role.OWNER).user
    return api_as_user(user, tenant_a)


@pytest.fixture
def servers():
    started = []

    def start(host: str, port: int = 0, tls_pem: str | None = None) -> CallbackReceiver:
        receiver = CallbackReceiver(host=host, port=port)
        if tls_pem:
            receiver.use_tls(tls_pem, tls_pem)
        started.append(receiver.start())
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


# id -> (server host or None, URL template, allow-list in force, what the refusal says)
# {netloc} is the server's host:port, {port} its port. "default" keeps the test settings'
# allow-list (127.0.0.1/32): the attack must fail even though that server is allowed.
ATTACKS = {
    "127.0.0.1": ("127.0.0.1", "https://127.0.0.1:{port}/hook", [], "not public"),
    "localhost": ("127.0.0.1", "https://localhost:{port}/hook", "default", "local or internal"),
    "[::1]": ("::1", "https://[::1]:{port}/hook", [], "not public"),
    "10.0.0.1": (None, "https://10.0.0.1/hook", [], "not public"),
    "169.254.169.254": (None, "https://169.254.169.254/latest/meta-data/", [], "not public"),
    "0.0.0.0": ("127.0.0.1", "https://0.0.0.0:{port}/hook", "default", "not public"),
    "metadata.google.internal": (
        None,
        "https://metadata.google.internal/computeMetadata/v1/",
        [],
        "local or internal",
    ),
    "decimal-127.0.0.1": ("127.0.0.1", "https://2130706433:{port}/hook", [], "not public"),
    "ipv4-mapped-ipv6": ("127.0.0.1", "https://[::ffff:127.0.0.1]:{port}/hook", [], "not public"),
    "loopback-127.0.0.2": ("127.0.0.2", "https://127.0.0.2:{port}/hook", "default", "not public"),
}


@pytest.fixture(params=list(ATTACKS), ids=list(ATTACKS))
def attack(request, servers, settings):
    host, template, allowed, says = ATTACKS[request.param]
    if allowed != "default":
        settings.OUTBOUND_ALLOWED_NETWORKS = allowed
    server = servers(host) if host else None
    # (A name whose addresses are private is refused the same way: see
    # test_a_name_with_any_non_public_address_is_refused, with a resolver of the test's own.)
    url = template.format(port=server.port if server else 443)
    return url, server, says


def test_an_attack_url_is_refused_when_saved_through_the_api(attack, owner_api, tenant_a):
    url, server, says = attack
    before = Client.objects.get(pk=tenant_a.pk).callback_url

    response = owner_api.patch(f"/api/v1/clients/{tenant_a.pk}", {"callback_url": url}, "json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert says in error["details"]["callback_url"][0]
    assert Client.objects.get(pk=tenant_a.pk).callback_url == before
    assert server is None or server.connections == 0


def test_an_attack_url_stored_anyway_is_refused_when_the_worker_connects(attack, tenant_a, caplog):
    # Stored before the guard existed, or its DNS answer changed since it was saved.
    url, server, _ = attack
    Client.objects.filter(pk=tenant_a.pk).update(callback_url=url)
    client = Client.objects.get(pk=tenant_a.pk)

    with caplog.at_level(logging.WARNING, logger="conversations.notifications"):
        status = notifications.deliver(
            client=client,
            webhook_id=f"msg_{uuid.uuid4().hex}",
            payload={"event": "handoff", "data": {"reason": "customer_asked"}},
        )

    assert status is None
    assert "refused by the outbound guard" in caplog.text
    assert server is None or (server.connections, server.requests) == (0, [])


def test_an_attack_url_is_refused_in_the_admin(attack, tenant_a, client):
    from django.contrib.auth import get_user_model

    url, server, says = attack
    staff = get_user_model().objects.create_user(
        f"staff-{uuid.uuid4().hex[:6]}", "s@wafaa.example", "pw-123456789", is_staff=True
    )
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    form = {
        "name": tenant_a.name,
        "status": tenant_a.status,
        "api_requests_per_minute": tenant_a.api_requests_per_minute,
        "messages_per_day": tenant_a.messages_per_day,
        "max_documents": tenant_a.max_documents,
        "max_upload_bytes": tenant_a.max_upload_bytes,
        "bot_name": tenant_a.bot_name,
        "persona": tenant_a.persona,
        "languages": '["en"]',
        "llm_model": "",
        "handoff_keywords": '["human"]',
        "confidence_threshold": 0.3,
        "fallback_message": "",
        "unsupported_media": "reply",
        "callback_url": url,
        "domains-TOTAL_FORMS": 0,
        "domains-INITIAL_FORMS": 0,
        "memberships-TOTAL_FORMS": 0,
        "memberships-INITIAL_FORMS": 0,
        "usage-TOTAL_FORMS": 0,
        "usage-INITIAL_FORMS": 0,
    }

    response = client.post(f"/admin/tenants/client/{tenant_a.pk}/change/", form)

    assert response.status_code == 200  # the form again, with the error
    page = response.content.decode()
    # Names without a dot (2130706433, this machine's name) fail Django's URL check first.
    assert says in page or "Enter a valid URL" in page
    assert Client.objects.get(pk=tenant_a.pk).callback_url == tenant_a.callback_url
    assert server is None or server.connections == 0


def test_a_307_from_an_allowed_endpoint_to_another_address_is_not_followed(servers, tenant_a):
    target = servers("127.0.0.2")
    allowed = servers("127.0.0.1")  # allowed by the test settings
    allowed.redirect_to = f"http://{target.netloc}/internal"
    client = Client.objects.get(pk=tenant_a.pk)
    client.callback_url = allowed.url

    status = notifications.deliver(
        client=client, webhook_id=f"msg_{uuid.uuid4().hex}", payload={"event": "handoff"}
    )

    assert status is None
    assert len(allowed.requests) == 1
    assert (target.connections, target.requests) == (0, [])
    with pytest.raises(netguard.OutboundRedirectRefusedError):
        netguard.outbound_request("POST", allowed.url, data=b"{}")
    assert target.connections == 0


# --- the guard itself: DNS answers we control (a fake resolver), the pinned connection --------


class Resolver:
    """DNS for names the test owns: answers in order, the last one repeated; counts lookups."""

    def __init__(self, *answers: list[str]):
        self.answers = list(answers)
        self.lookups = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups += 1
        return self.answers[min(self.lookups, len(self.answers)) - 1]


def test_dns_rebinding_gets_nothing_the_connection_goes_to_the_checked_address(servers):
    checked = servers("127.0.0.1")
    rebound = servers("127.0.0.2", port=checked.port)  # where a second lookup would go
    resolver = Resolver(["127.0.0.1"], ["127.0.0.2"])

    response = netguard.outbound_request(
        "POST", f"http://rebind.test:{checked.port}/hook", data=b"{}", resolve=resolver
    )

    assert response.status_code == 200
    assert resolver.lookups == 1
    [request] = checked.requests
    assert request.headers["Host"] == f"rebind.test:{checked.port}"
    assert rebound.connections == 0


@pytest.mark.parametrize(
    "answer",
    [["10.20.30.40"], ["127.0.0.1", "10.0.0.7"], ["127.0.0.1", "169.254.169.254"], ["fd00::1"]],
    ids=["private", "one-of-two-private", "one-of-two-metadata", "ipv6-unique-local"],
)
def test_a_name_with_any_non_public_address_is_refused(servers, answer):
    allowed = servers("127.0.0.1")

    with pytest.raises(netguard.OutboundURLRefusedError, match="not public"):
        netguard.outbound_request(
            "POST", f"http://intranet.test:{allowed.port}/hook", resolve=Resolver(answer)
        )

    assert allowed.connections == 0


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.100.100.200",  # CGNAT (Alibaba's metadata)
        "192.0.0.192",  # Oracle's metadata
        "0.0.0.0",
        "224.0.0.251",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "198.18.0.1",
        "::",
        "::1",
        "fe80::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 form of 169.254.169.254
        "2002:a9fe:a9fe::1",  # 6to4 form of 169.254.169.254
        "2001:db8::1",
    ],
)
def test_non_public_addresses_are_not_public(address):
    assert netguard.address_is_public(address) is False


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700::1111"])
def test_public_addresses_are_public(address):
    assert netguard.address_is_public(address) is True


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://93.184.215.14/hook", "https"),
        ("https://93.184.215.14:22/hook", "port"),
        ("https://93.184.215.14:6379/hook", "port"),
        ("https://user:pw@93.184.215.14/hook", "user name or password"),
        ("ftp://93.184.215.14/hook", "https"),
        ("https://metadata/computeMetadata/v1/", "local or internal"),
        ("https://printer.local/", "local or internal"),
        ("https://LOCALHOST./", "local or internal"),
    ],
)
def test_scheme_port_and_names_are_checked_before_any_connection(url, says):
    with pytest.raises(netguard.OutboundURLRefusedError, match=says):
        netguard.outbound_url_check(url)


def test_a_public_https_url_on_an_allowed_port_passes_the_check():
    target = netguard.outbound_url_check("https://93.184.215.14:8443/hook")
    assert (target.port, target.addresses) == (8443, ("93.184.215.14",))


# --- TLS to the pinned address still verifies the certificate for the name -----------------


def _self_signed(tmp_path, name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / f"{name}.pem"
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(path)


def test_tls_to_the_pinned_address_sends_the_name_and_verifies_its_certificate(servers, tmp_path):
    pem = _self_signed(tmp_path, "hooks.test")
    server = servers("127.0.0.1", tls_pem=pem)

    response = netguard.outbound_request(
        "POST",
        f"https://hooks.test:{server.port}/hook",
        data=b"{}",
        verify=pem,
        resolve=Resolver(["127.0.0.1"]),
    )

    assert response.status_code == 200
    assert server.server_names == ["hooks.test"]
    assert server.requests[0].headers["Host"] == f"hooks.test:{server.port}"


def test_tls_to_the_pinned_address_refuses_a_certificate_for_another_name(servers, tmp_path):
    pem = _self_signed(tmp_path, "other.test")
    server = servers("127.0.0.1", tls_pem=pem)

    with pytest.raises(requests.exceptions.SSLError):
        netguard.outbound_request(
            "POST",
            f"https://hooks.test:{server.port}/hook",
            data=b"{}",
            verify=pem,
            resolve=Resolver(["127.0.0.1"]),
        )

    assert server.requests == []


def test_the_allow_list_is_by_address_and_the_test_settings_allow_127_0_0_1_only(settings):
    assert settings.OUTBOUND_ALLOWED_NETWORKS == ["127.0.0.1/32"]
    # Allowed although not public, over http and on any port: the operator's choice.
    netguard.outbound_url_check("http://127.0.0.1:8080/hook")
    with pytest.raises(netguard.OutboundURLRefusedError):
        netguard.outbound_url_check("http://127.0.0.2:8080/hook")


# --- media URLs named in a webhook go through the same guard ---------------------------------


def _graph_client():
    from channels_app.graph import GraphClient

    return GraphClient("http://127.0.0.1:9", "v23.0", "EAAtoken-that-must-stay-home")


def test_a_media_url_from_a_webhook_to_a_non_public_address_is_not_fetched(servers):
    from channels_app.graph import GraphClientError

    target = servers("127.0.0.2")

    with pytest.raises(GraphClientError, match="refused"):
        _graph_client().download_media(f"http://{target.netloc}/latest/meta-data", 1000)

    assert target.connections == 0


def test_a_media_cdn_redirect_is_checked_again_at_every_hop(servers):
    from channels_app.graph import GraphClientError

    target = servers("127.0.0.2")
    cdn = servers("127.0.0.1")
    cdn.redirect_to = f"http://{target.netloc}/internal"

    with pytest.raises(GraphClientError, match="refused"):
        _graph_client().download_media(f"{cdn.url}/media", 1000)

    assert len(cdn.requests) == 1
    assert target.connections == 0


def test_a_redirect_to_another_host_drops_the_token(servers):
    # 127.0.0.1 and its other name: both allowed, but a different host, so no token for it.
    second = servers("127.0.0.1")
    first = servers("127.0.0.1")
    first.redirect_to = f"http://2130706433:{second.port}/cdn"

    data = _graph_client().download_media(f"{first.url}/media", 1000)

    assert data == b""
    assert first.requests[0].headers["Authorization"] == "Bearer EAAtoken-that-must-stay-home"
    assert "Authorization" not in second.requests[0].headers
