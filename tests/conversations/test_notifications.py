"""Signed callbacks to a client's own endpoint (a real local HTTP server)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conversations import notifications


class Receiver:
    def __init__(self, status=200):
        self.received = []
        self.status = status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def test_event_is_posted_with_a_verifiable_signature(tenant_a, receiver):
    tenant_a.callback_url = receiver.url
    tenant_a.callback_secret = "s3cret-for-callbacks"
    payload = {"event": "handoff", "conversation_id": 7, "data": {"reason": "customer_asked"}}
    assert notifications.deliver(client=tenant_a, payload=payload) == 200
    [(headers, body)] = receiver.received
    timestamp = headers["X-Wafaa-Timestamp"]
    expected = hmac.new(
        b"s3cret-for-callbacks", f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert headers["X-Wafaa-Signature"] == f"sha256={expected}"
    assert json.loads(body)["event"] == "handoff"


def test_a_5xx_from_the_endpoint_raises_so_the_task_retries(tenant_a, receiver):
    receiver.status = 503
    tenant_a.callback_url = receiver.url
    tenant_a.callback_secret = "x"
    with pytest.raises(requests.HTTPError):
        notifications.deliver(client=tenant_a, payload={"event": "handoff"})


def test_a_4xx_is_not_retried(tenant_a, receiver):
    receiver.status = 410
    tenant_a.callback_url = receiver.url
    tenant_a.callback_secret = "x"
    assert notifications.deliver(client=tenant_a, payload={"event": "handoff"}) == 410


def test_callback_secret_is_rotated_and_shown_once(api, tenant_a):
    from django.contrib.auth import get_user_model

    from tenants.models import Client, Membership

    owner = get_user_model().objects.create_user(
        "cb-owner@example.com", "cb-owner@example.com", "pw-123456789"
    )
    Membership.objects.create(user=owner, client=tenant_a, role="owner")
    api.force_authenticate(owner)
    first = api.post(f"/api/v1/clients/{tenant_a.pk}/callback-secret").json()["callback_secret"]
    second = api.post(f"/api/v1/clients/{tenant_a.pk}/callback-secret").json()["callback_secret"]
    assert first != second and len(second) > 30
    assert Client.objects.get(pk=tenant_a.pk).callback_secret == second
    assert "callback_secret" not in api.get(f"/api/v1/clients/{tenant_a.pk}").json()
