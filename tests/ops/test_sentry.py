"""Sentry: errors reach it with our trace id and client schema, never a customer's text or phone.

A fake Sentry (a real local HTTP server) receives the SDK's envelopes at
/api/<project>/envelope/, exactly as sentry.io would; the SDK is started by our own
`init_sentry()` against it and switched off again after each test.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import threading
import time
import uuid
import zlib
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sentry_sdk
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, connection

from channels_app.providers import sign_body
from tests.factories import APP_SECRET, ChannelAccountFactory, drain_inbox, wa_text_payload
from wafaa import context
from wafaa.sentry import before_breadcrumb, before_send, init_sentry

CUSTOMER_TEXT = "Is my order for Leila Haddad at 12 Palm Street ready?"
CUSTOMER_PHONE = "966501234567"


class FakeSentry:
    """Receives envelopes like sentry.io: POST /api/<project>/envelope/, gzip or plain."""

    def __init__(self):
        self.envelopes: list[bytes] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    raw = gzip.decompress(raw)
                elif encoding == "deflate":
                    raw = zlib.decompress(raw)
                elif encoding:
                    self.send_response(415)
                    self.end_headers()
                    return
                if self.path.startswith("/api/") and self.path.endswith("/envelope/"):
                    with fake._lock:
                        fake.envelopes.append(raw)
                    status, answer = 200, b'{"id": "fake"}'
                else:
                    status, answer = 404, b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.server.server_address[1]}/1"

    def start(self) -> FakeSentry:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict]:
        """The error events of every envelope received so far."""
        events = []
        with self._lock:
            envelopes = list(self.envelopes)
        for envelope in envelopes:
            lines = envelope.split(b"\n")
            # Envelope header, then pairs of item header and payload.
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if header.strip() and json.loads(header).get("type") == "event":
                    events.append(json.loads(payload))
        return events

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sentry_sdk.flush(timeout=1)
            if len(self.events()) >= count:
                return self.events()
            time.sleep(0.05)
        raise AssertionError(f"the fake Sentry received {len(self.events())} event(s)")

    def everything_received(self) -> bytes:
        with self._lock:
            return b"\n".join(self.envelopes)


@pytest.fixture
def fake_sentry(settings, monkeypatch):
    """Our SDK set-up, started against the fake; switched off again afterwards."""
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    server = FakeSentry().start()
    started = init_sentry(
        dsn=server.dsn, environment=settings.ENVIRONMENT, release=settings.RELEASE
    )
    assert started is True
    try:
        yield server
    finally:
        sentry_sdk.flush(timeout=2)
        sentry_sdk.init()  # no DSN: the SDK is off for the tests that follow
        server.stop()


@contextmanager
def _test_database_connection_kept():
    """As Django's test client does: the request must not close the test's connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def wsgi_post(path: str, body: bytes, headers: dict) -> tuple[int, dict]:
    """POST through Django's WSGI application, the entry point gunicorn calls (and Sentry's
    Django integration wraps), rather than the test client's handler."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **headers,
    }
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(response_headers)

    with _test_database_connection_kept():
        result = get_wsgi_application()(environ, start_response)
        try:
            b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
    return answer["status"], answer["headers"]


def test_an_error_while_handling_a_webhook_reaches_sentry_without_the_text_or_phone(
    db, fake_sentry
):
    from tenants.services import client_create

    # A client whose schema is gone (dropped by hand, or a half-finished deletion): its
    # channel account still routes webhooks to it, and storing the message (in the inbox
    # drain) fails.
    shop = client_create(name="Gone shop", slug=f"gone-{uuid.uuid4().hex[:8]}")
    phone_id = str(uuid.uuid4().int)[:15]
    ChannelAccountFactory(client=shop, external_id=phone_id)
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA "{shop.schema_name}" CASCADE')
    body = wa_text_payload(
        message_id=f"wamid.{uuid.uuid4().hex}",
        text=CUSTOMER_TEXT,
        phone_id=phone_id,
        wa_id=CUSTOMER_PHONE,
        name="Leila Haddad",
    )
    path = f"/webhook/whatsapp/{shop.slug}/"

    status, headers = wsgi_post(
        path, body, {"HTTP_X_HUB_SIGNATURE_256": sign_body(body, APP_SECRET)}
    )
    assert status == 200  # recorded in the inbox; storing it in the schema fails in the drain
    result = drain_inbox()

    assert result.failed == 1 and result.accepted == 0
    events = fake_sentry.wait_for_events(1)
    [event] = [e for e in events if e.get("exception")]
    assert event["tags"]["trace_id"] == headers["X-Trace-ID"]
    assert event["tags"]["client_schema"] == shop.schema_name
    assert event["environment"] == "development" and event["release"] == "dev"
    assert "request" not in event  # raised in the inbox drain, after the webhook's 200
    assert "does not exist" in json.dumps(event["exception"])
    received = fake_sentry.everything_received().decode()
    assert "Palm Street" not in received and "Leila" not in received
    assert CUSTOMER_PHONE not in received and CUSTOMER_PHONE[-7:] not in received


def test_sentry_reports_with_the_django_and_celery_integrations_and_without_openai(fake_sentry):
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.openai import OpenAIIntegration

    client = sentry_sdk.get_client()

    assert client.get_integration(DjangoIntegration) is not None
    assert client.get_integration(CeleryIntegration) is not None
    assert client.get_integration(OpenAIIntegration) is None
    assert client.should_send_default_pii() is False
    collected = client.options["data_collection"]
    assert collected["user_info"] is False and collected["http_bodies"] == []
    assert collected["gen_ai"] == {"inputs": False, "outputs": False}
    assert collected["stack_frame_variables"] is False and collected["queues"] is False
    assert client.options["include_local_variables"] is False
    assert client.options["max_request_body_size"] == "never"


def test_without_a_dsn_sentry_is_not_started(monkeypatch):
    monkeypatch.delenv("SENTRY_DSN", raising=False)

    assert init_sentry(dsn="", environment="production", release="r1") is False
    assert sentry_sdk.get_client().dsn is None


def test_before_send_removes_texts_and_masks_phones_everywhere():
    event = {
        "message": "could not reach +966 50 123 4567",
        "request": {
            "url": "http://testserver/webhook/whatsapp/shop/",
            "query_string": "hub.mode=subscribe&hub.verify_token=s3cret&hub.challenge=1",
            "data": {"entry": [{"text": {"body": CUSTOMER_TEXT}}]},
            "cookies": {"sessionid": "abc"},
        },
        "extra": {"text": CUSTOMER_TEXT, "wa_id": CUSTOMER_PHONE, "reason": "graph_100"},
        "contexts": {"celery_job": {"kwargs": {"body": CUSTOMER_TEXT, "to": CUSTOMER_PHONE}}},
        "logentry": {"message": "reply for %s", "params": [CUSTOMER_TEXT]},
        "breadcrumbs": {
            "values": [
                {"category": "wafaa", "message": f"from {CUSTOMER_PHONE}", "data": {}},
                {"category": "httplib", "data": {"url": "https://x/m", "http.query": "hash=1"}},
                {"category": "notify", "data": {"last_customer_message": CUSTOMER_TEXT}},
            ]
        },
        "spans": [{"description": f"notify {CUSTOMER_PHONE}", "data": {"http.query": "hash=1"}}],
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "value": f"bad recipient {CUSTOMER_PHONE}",
                    "stacktrace": {"frames": [{"function": "f", "vars": {"t": CUSTOMER_TEXT}}]},
                }
            ]
        },
    }

    with context.bound(trace_id="trace-0123456789", request_id="req-0123456789"):
        scrubbed = before_send(event, {})

    text = json.dumps(scrubbed)
    assert "Palm Street" not in text and "s3cret" not in text and "sessionid" not in text
    assert "501234567" not in text and "123 4567" not in text
    assert scrubbed["extra"] == {"wa_id": "***567", "reason": "graph_100"}
    assert scrubbed["breadcrumbs"]["values"][0]["message"] == "from ***567"
    assert "http.query" not in scrubbed["breadcrumbs"]["values"][1]["data"]
    assert scrubbed["spans"] == [{"description": "notify ***567", "data": {}}]
    assert scrubbed["tags"]["trace_id"] == "trace-0123456789"
    assert scrubbed["tags"]["request_id"] == "req-0123456789"
    assert scrubbed["request"]["url"] == "http://testserver/webhook/whatsapp/shop/"


def test_breadcrumbs_are_scrubbed_when_recorded():
    crumb = before_breadcrumb(
        {"message": f"sent to {CUSTOMER_PHONE}", "data": {"body": CUSTOMER_TEXT, "n": 1}}, {}
    )

    assert crumb == {"message": "sent to ***567", "data": {"n": 1}}
