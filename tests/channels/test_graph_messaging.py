"""GraphClient's templates, reply buttons, media sends and uploads, and media fetching
limited to allowed hosts, against the fake Graph API server. Plain pytest, no Django."""

from __future__ import annotations

import pytest

from channels_app.graph import (
    GraphClient,
    GraphClientError,
    GraphInvalidResponseError,
    MediaHostNotAllowedError,
)
from tests.fakes import graph_api as graph_api_fake

fake_graph_api = graph_api_fake.fake_graph_api

TOKEN = "EAAG-secret-test-token-0123456789"
PNID = "106540352242922"
WABA = "102290129340398"


@pytest.fixture
def client(fake_graph_api):
    return GraphClient(fake_graph_api.url, "v23.0", TOKEN, connect_timeout=1, read_timeout=2)


def test_templates_are_listed_with_their_components(client, fake_graph_api):
    fake_graph_api.add_template(WABA, "order_ready", body="Hi {{1}}")
    fake_graph_api.add_template(WABA, "draft", status="REJECTED")
    templates = client.list_whatsapp_templates(WABA)
    assert [(t["name"], t["status"]) for t in templates] == [
        ("order_ready", "APPROVED"),
        ("draft", "REJECTED"),
    ]
    request = fake_graph_api.requests[-1]
    assert request.path == f"/v23.0/{WABA}/message_templates"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_reply_buttons_are_an_interactive_button_message(client, fake_graph_api):
    buttons = [{"id": "yes", "title": "Yes, connect me to a person"}, {"id": "no", "title": "No"}]
    assert client.send_whatsapp_buttons(PNID, "15550002222", "Shall I?", buttons).startswith(
        "wamid."
    )
    body = fake_graph_api.message_sends()[-1].json
    assert body["interactive"]["action"]["buttons"][0]["reply"] == {
        "id": "yes",
        "title": "Yes, connect me to a",  # WhatsApp's 20-character limit
    }
    with pytest.raises(ValueError):
        client.send_whatsapp_buttons(PNID, "15550002222", "Too many", buttons * 2)


def test_upload_sends_the_file_as_multipart_and_returns_the_media_id(client, fake_graph_api):
    media_id = client.upload_whatsapp_media(PNID, b"%PDF-1.7 fake", "application/pdf", "a.pdf")
    assert fake_graph_api.uploads[media_id] == ("application/pdf", b"%PDF-1.7 fake")


def test_upload_answered_without_an_id_is_an_invalid_response(client, fake_graph_api):
    fake_graph_api.respond_next(200, {"success": True})
    with pytest.raises(GraphInvalidResponseError):
        client.upload_whatsapp_media(PNID, b"x", "image/png", "x.png")


def test_a_redirect_within_allowed_hosts_is_followed_without_the_token(client, fake_graph_api):
    fake_graph_api.add_media("m1", b"media-bytes", "image/jpeg")
    target = f"{fake_graph_api.url}/media-download/m1"
    fake_graph_api.respond_next(302, b"", headers={"Location": target})
    allowed = {"127.0.0.1"}
    # Same host here, so the token is kept; the test below covers a host change.
    data = client.download_media(
        f"{fake_graph_api.url}/start", 100, allowed_host=lambda h: h in allowed
    )
    assert data == b"media-bytes"
    assert [r.path for r in fake_graph_api.requests] == ["/start", "/media-download/m1"]


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data", "http://10.0.0.1/x", "file:///etc/passwd"],
)
def test_a_url_outside_allowed_hosts_is_refused_before_any_request(client, fake_graph_api, url):
    with pytest.raises((MediaHostNotAllowedError, GraphClientError)):
        client.download_media(url, 100, allowed_host=lambda h: h == "127.0.0.1")
    assert fake_graph_api.requests == []


def test_too_many_redirects_are_refused(client, fake_graph_api):
    loop = f"{fake_graph_api.url}/loop"
    for _ in range(5):
        fake_graph_api.respond_next(302, b"", headers={"Location": loop})
    with pytest.raises(GraphClientError):
        client.download_media(loop, 100, allowed_host=lambda h: h == "127.0.0.1")
    assert len(fake_graph_api.requests) == 4


def test_a_redirect_to_a_refused_host_is_not_followed_and_the_token_stays(client, fake_graph_api):
    """`localhost` passes our media host rule but not the outbound guard (wafaa.netguard
    refuses the name outright): the redirect is not followed, so the token went to the first
    host only. (The guard drops the token on a host change it does follow:
    tests/security/test_ssrf.py.)"""
    fake_graph_api.add_media("m2", b"cdn-bytes", "image/jpeg")
    port = fake_graph_api.url.rsplit(":", 1)[1]
    fake_graph_api.respond_next(
        302, b"", headers={"Location": f"http://localhost:{port}/media-download/m2"}
    )
    with pytest.raises(GraphClientError):
        client.download_media(
            f"{fake_graph_api.url}/start",
            100,
            allowed_host=lambda h: h in {"127.0.0.1", "localhost"},
        )
    [first] = fake_graph_api.requests
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
