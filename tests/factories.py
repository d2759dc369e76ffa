"""Factories and helpers shared by the tests of several apps."""

from __future__ import annotations

import json
from pathlib import Path

import factory
from factory.django import DjangoModelFactory

from channels_app.models import ChannelAccount
from channels_app.providers import sign_body

FIXTURES = Path(__file__).parent / "channels" / "fixtures"
WA_PHONE_ID = "106540352242922"
WA_PHONE_ID_2 = "106540352242933"
IG_ACCOUNT_ID = "17841400000000001"
APP_SECRET = "test-app-secret-0123456789"


class ChannelAccountFactory(DjangoModelFactory):
    class Meta:
        model = ChannelAccount

    kind = "whatsapp"
    external_id = WA_PHONE_ID
    display_phone_number = "15550001111"
    access_token = factory.Sequence(lambda n: f"EAAtesttoken{n:06d}")
    app_secret = APP_SECRET
    verify_token = factory.Sequence(lambda n: f"verify-{n}")


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def fixture_json(name: str) -> dict:
    return json.loads(fixture_bytes(name))


def post_webhook(
    http, path: str, body: bytes, secret: str = APP_SECRET, signature: str | None = None
):
    """POST a signed webhook. Inside a test's transaction the stored inbox event is invisible
    to any worker, so it is drained here, as a worker would (`response.drained` holds the
    DrainResult); with committed data (live tests) the real worker drains it."""
    from django.db import connection

    headers = {"HTTP_X_HUB_SIGNATURE_256": signature or sign_body(body, secret)}
    response = http.post(path, data=body, content_type="application/json", **headers)
    if response.status_code == 200 and connection.in_atomic_block:
        response.drained = drain_inbox()
    return response


def drain_inbox():
    """Drain every client's pending inbox events in this process (what the worker does)."""
    from channels_app.models import InboxEvent
    from conversations.inbound import DrainResult, inbox_drain

    total = DrainResult()
    pending = InboxEvent.objects.filter(state=InboxEvent.State.PENDING)
    for client_id in sorted(set(pending.values_list("client_id", flat=True))):
        total.add(inbox_drain(client_id=client_id))
    return total


def wa_text_payload(
    *,
    message_id: str,
    text: str,
    phone_id: str = WA_PHONE_ID,
    wa_id: str = "15551234567",
    name: str = "Test Customer",
) -> bytes:
    """A WhatsApp text webhook body as Meta sends it (one message)."""
    from conversations.management.commands.simulate_message import webhook_body

    return webhook_body(
        phone_number_id=phone_id, wa_id=wa_id, name=name, message_id=message_id, text=text
    )
