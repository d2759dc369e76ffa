"""Attack (issue 10, finding 1): client B injects a message into client A through a webhook.

B holds a valid channel account of its own, so it knows its own app secret. It signs a body
that carries a message for A's phone number (plus an entry of B's own number, which is what
once made the body "verify") and posts it to every webhook URL. Nothing may land in A's
schema or A's public rows, nothing may be enqueued or sent, and no status of A's may move.

Also: a body nested thousands deep is a 400 in the envelope, never a 500.
"""

from __future__ import annotations

import json

import pytest

from conversations.models import Contact, Conversation, Message
from tests.conftest import inside
from tests.factories import (
    WA_PHONE_ID,
    WA_PHONE_ID_2,
    ChannelAccountFactory,
    post_webhook,
    wa_text_payload,
)
from tests.test_isolation import fingerprint

SECRET_A = "client-a-own-app-secret-000"
SECRET_B = "client-b-own-app-secret-000"
PLATFORM_SECRET = "the-platform-app-secret-000"
A_OUTBOUND = "wamid.A-OUTBOUND-0001"


@pytest.fixture
def accounts(tenant_a, tenant_b):
    a = ChannelAccountFactory(client=tenant_a, external_id=WA_PHONE_ID, app_secret=SECRET_A)
    b = ChannelAccountFactory(client=tenant_b, external_id=WA_PHONE_ID_2, app_secret=SECRET_B)
    with inside(tenant_a):  # one of A's replies, already sent: its status must not move
        contact = Contact.objects.create(channel="whatsapp", external_id="15551230000")
        conversation = Conversation.objects.create(
            contact=contact, channel_account_id=a.pk, channel="whatsapp"
        )
        Message.objects.create(
            conversation=conversation,
            direction="out",
            author="bot",
            text="hello",
            status="sent",
            external_id=A_OUTBOUND,
        )
    return a, b


def forged_body() -> bytes:
    """A's customer message and a 'failed' status of A's reply, plus an entry of B's number."""
    payload = json.loads(
        wa_text_payload(message_id="wamid.FORGED-FOR-A", text="injected", phone_id=WA_PHONE_ID)
    )
    a_value = payload["entry"][0]["changes"][0]["value"]
    a_value["statuses"] = [
        {
            "id": A_OUTBOUND,
            "status": "failed",
            "timestamp": "1760000000",
            "recipient_id": "15551230000",
            "errors": [{"code": 131026, "title": "forged"}],
        }
    ]
    b_entry = json.loads(
        wa_text_payload(message_id="wamid.B-OWN-0001", text="mine", phone_id=WA_PHONE_ID_2)
    )["entry"][0]
    payload["entry"].append(b_entry)
    return json.dumps(payload).encode()


def _inbound(tenant) -> list[str]:
    with inside(tenant):
        return list(Message.objects.filter(direction="in").values_list("external_id", flat=True))


def _a_reply_status(tenant_a) -> str:
    with inside(tenant_a):
        return Message.objects.get(external_id=A_OUTBOUND).status


@pytest.mark.parametrize("platform_secret", ["", PLATFORM_SECRET])
def test_b_cannot_inject_into_a_through_the_app_level_url(
    client, accounts, tenant_a, tenant_b, settings, platform_secret, fake_graph
):
    settings.META_APP_SECRET = platform_secret
    before = fingerprint(tenant_a)

    response = post_webhook(client, "/webhook/whatsapp/", forged_body(), secret=SECRET_B)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_signature"
    assert fingerprint(tenant_a) == before
    assert _inbound(tenant_a) == [] and _inbound(tenant_b) == []
    assert _a_reply_status(tenant_a) == "sent"
    assert fake_graph.requests == []


def test_b_cannot_inject_into_a_through_its_own_url(
    client, accounts, tenant_a, tenant_b, fake_graph
):
    before = fingerprint(tenant_a)

    response = post_webhook(client, "/webhook/whatsapp/test-b/", forged_body(), secret=SECRET_B)

    # B's own entry is B's to deliver; A's entry is skipped, whatever B signed.
    assert response.status_code == 200
    assert fingerprint(tenant_a) == before
    assert _inbound(tenant_a) == []
    assert _a_reply_status(tenant_a) == "sent"
    assert _inbound(tenant_b) == ["wamid.B-OWN-0001"]
    assert fake_graph.requests == []


def test_b_cannot_inject_into_a_through_as_url(client, accounts, tenant_a, tenant_b):
    before = fingerprint(tenant_a)

    response = post_webhook(client, "/webhook/whatsapp/test-a/", forged_body(), secret=SECRET_B)

    assert response.status_code == 401
    assert fingerprint(tenant_a) == before
    assert _inbound(tenant_b) == []


def test_the_platform_secret_delivers_each_entry_to_its_own_client(
    client, accounts, tenant_a, tenant_b, settings
):
    settings.META_APP_SECRET = PLATFORM_SECRET
    response = post_webhook(client, "/webhook/whatsapp/", forged_body(), secret=PLATFORM_SECRET)
    assert response.status_code == 200
    assert _inbound(tenant_a) == ["wamid.FORGED-FOR-A"]
    assert _inbound(tenant_b) == ["wamid.B-OWN-0001"]
    assert _a_reply_status(tenant_a) == "failed"


def test_a_secret_proves_only_its_own_account_within_one_client(client, tenant_a):
    ChannelAccountFactory(client=tenant_a, external_id=WA_PHONE_ID, app_secret=SECRET_A)
    ChannelAccountFactory(client=tenant_a, external_id=WA_PHONE_ID_2, app_secret=SECRET_B)
    body = json.loads(wa_text_payload(message_id="wamid.ONE", text="1", phone_id=WA_PHONE_ID))
    other = json.loads(wa_text_payload(message_id="wamid.TWO", text="2", phone_id=WA_PHONE_ID_2))
    body["entry"].append(other["entry"][0])

    response = post_webhook(
        client, "/webhook/whatsapp/test-a/", json.dumps(body).encode(), secret=SECRET_B
    )

    assert response.status_code == 200
    assert _inbound(tenant_a) == ["wamid.TWO"]


def _nested(depth: int) -> bytes:
    return b'{"object": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("url", ["/webhook/whatsapp/test-a/", "/webhook/whatsapp/"])
def test_deeply_nested_json_is_a_400_envelope_and_stores_nothing(
    client, accounts, tenant_a, settings, url
):
    settings.META_APP_SECRET = PLATFORM_SECRET
    secret = SECRET_A if url.endswith("test-a/") else PLATFORM_SECRET
    before = fingerprint(tenant_a)

    response = post_webhook(client, url, _nested(200_000), secret=secret)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed"
    assert fingerprint(tenant_a) == before


def test_deeply_nested_json_without_a_valid_signature_is_401(client, accounts, tenant_a):
    response = post_webhook(client, "/webhook/whatsapp/test-a/", _nested(200_000), secret="nope")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_signature"
