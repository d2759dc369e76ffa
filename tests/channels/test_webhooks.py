"""Webhooks through the real view: verify, signature on the raw body, parse, store once."""

from __future__ import annotations

import json

import pytest

from channels_app.models import ChannelAccount
from channels_app.providers import sign_body
from conversations.models import Contact, Message
from tests.conftest import inside
from tests.factories import (
    APP_SECRET,
    IG_ACCOUNT_ID,
    WA_PHONE_ID,
    WA_PHONE_ID_2,
    ChannelAccountFactory,
    drain_inbox,
    fixture_bytes,
    post_webhook,
    wa_text_payload,
)

WA_URL = "/webhook/whatsapp/test-a/"


@pytest.fixture
def wa_account(tenant_a):
    return ChannelAccountFactory(client=tenant_a, verify_token="the-verify-token")


@pytest.fixture
def ig_account(tenant_a):
    return ChannelAccountFactory(client=tenant_a, kind="instagram", external_id=IG_ACCOUNT_ID)


def _messages(client):
    with inside(client):
        return list(Message.objects.order_by("created_at", "pk"))


def test_verify_handshake_answers_the_challenge(client, wa_account):
    response = client.get(
        WA_URL,
        {
            "hub.mode": "subscribe",
            "hub.verify_token": "the-verify-token",
            "hub.challenge": "1158201444",
        },
    )
    assert response.status_code == 200
    assert response.content == b"1158201444"
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "the-verify-token", "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ],
)
def test_verify_handshake_refuses_a_wrong_token_or_mode(client, wa_account, params):
    assert client.get(WA_URL, params).status_code == 403


def test_signed_text_is_stored_with_contact_and_conversation(client, wa_account, tenant_a):
    response = post_webhook(client, WA_URL, fixture_bytes("wa_text"))
    assert response.status_code == 200
    assert response.json() == {"received": True, "stored": 1}
    assert response.drained.accepted == 1
    [message] = _messages(tenant_a)
    assert message.direction == "in" and message.type == "text" and message.text
    assert message.status == Message.Status.RECEIVED
    with inside(tenant_a):
        contact = Contact.objects.get()
        assert contact.wa_id and contact.name
        assert message.conversation.channel_account_id == wa_account.pk
    wa_account.refresh_from_db()
    assert wa_account.last_seen_at is not None


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sha1=abc", "garbage"])
def test_missing_or_wrong_signature_is_refused_and_stores_nothing(
    client, wa_account, tenant_a, signature
):
    body = fixture_bytes("wa_text")
    headers = {"HTTP_X_HUB_SIGNATURE_256": signature} if signature else {}
    response = client.post(WA_URL, data=body, content_type="application/json", **headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_signature"
    assert _messages(tenant_a) == []


def test_signature_is_checked_on_the_raw_body_not_a_reserialised_one(client, wa_account, tenant_a):
    body = fixture_bytes("wa_text")
    reserialised = json.dumps(json.loads(body), indent=1).encode()
    response = post_webhook(client, WA_URL, reserialised, signature=sign_body(body, APP_SECRET))
    assert response.status_code == 401
    assert _messages(tenant_a) == []


@pytest.mark.parametrize(
    "name,expected_type",
    [
        ("wa_text", "text"),
        ("wa_image", "image"),
        ("wa_audio", "audio"),
        ("wa_video", "video"),
        ("wa_document", "document"),
        ("wa_sticker", "sticker"),
        ("wa_location", "location"),
        ("wa_contacts", "contacts"),
        ("wa_interactive_button_reply", "interactive"),
        ("wa_interactive_list_reply", "interactive"),
        ("wa_button", "button"),
        ("wa_reaction", "reaction"),
        ("wa_unsupported", "unsupported"),
        ("wa_text_user_id_only", "text"),
    ],
)
def test_each_whatsapp_message_kind_is_stored(client, wa_account, tenant_a, name, expected_type):
    assert post_webhook(client, WA_URL, fixture_bytes(name)).status_code == 200
    [message] = _messages(tenant_a)
    assert message.type == expected_type
    assert message.external_id


def test_contact_is_keyed_by_user_id_when_present(client, wa_account, tenant_a):
    post_webhook(client, WA_URL, fixture_bytes("wa_text_user_id_only"))
    with inside(tenant_a):
        contact = Contact.objects.get()
    assert contact.user_id and contact.external_id == contact.user_id
    assert contact.wa_id == ""


def _post_undrained(http, body):
    # The test drains the inbox itself, inside its captures.
    headers = {"HTTP_X_HUB_SIGNATURE_256": sign_body(body, APP_SECRET)}
    return http.post(WA_URL, data=body, content_type="application/json", **headers)


def test_redelivered_webhook_is_stored_once_and_enqueued_once(
    client, wa_account, tenant_a, django_capture_on_commit_callbacks
):
    body = fixture_bytes("wa_text")
    assert _post_undrained(client, body).status_code == 200
    with django_capture_on_commit_callbacks() as first:
        assert drain_inbox().accepted == 1
    assert _post_undrained(client, body).status_code == 200
    with django_capture_on_commit_callbacks() as second:
        result = drain_inbox()
    assert (result.accepted, result.duplicates, result.statuses) == (0, 1, 0)
    assert len(_messages(tenant_a)) == 1
    assert len(first) == 1 and len(second) == 0  # one reply task, enqueued once


def test_a_redelivery_before_any_drain_is_stored_once(
    client, wa_account, tenant_a, django_capture_on_commit_callbacks
):
    body = fixture_bytes("wa_text")
    assert _post_undrained(client, body).status_code == 200
    assert _post_undrained(client, body).status_code == 200
    with django_capture_on_commit_callbacks() as callbacks:
        result = drain_inbox()
    assert (result.events, result.accepted, result.duplicates) == (2, 1, 1)
    assert len(_messages(tenant_a)) == 1
    assert len(callbacks) == 1


PLATFORM_SECRET = "the-platform-app-secret-0001"


def test_batched_payload_stores_every_message_of_every_entry(client, tenant_a, tenant_b, settings):
    settings.META_APP_SECRET = PLATFORM_SECRET
    ChannelAccountFactory(client=tenant_a, external_id=WA_PHONE_ID)
    ChannelAccountFactory(
        client=tenant_b, external_id=WA_PHONE_ID_2, display_phone_number="15550001112"
    )
    response = post_webhook(
        client, "/webhook/whatsapp/", fixture_bytes("wa_batch_multi"), secret=PLATFORM_SECRET
    )
    assert response.status_code == 200
    # Routed by phone_number_id: two messages to A, one to B, in one POST.
    assert len([m for m in _messages(tenant_a) if m.direction == "in"]) == 2
    assert len([m for m in _messages(tenant_b) if m.direction == "in"]) == 1


def test_slug_url_only_routes_to_that_clients_accounts(client, tenant_a, tenant_b):
    ChannelAccountFactory(client=tenant_a, external_id=WA_PHONE_ID)
    ChannelAccountFactory(client=tenant_b, external_id=WA_PHONE_ID_2)
    post_webhook(client, WA_URL, fixture_bytes("wa_batch_multi"))
    assert len(_messages(tenant_a)) == 2
    assert _messages(tenant_b) == []  # B's entry in A's URL is not B's to deliver


def test_unknown_phone_number_id_on_app_level_url_is_200_and_stores_nothing(
    client, tenant_a, settings
):
    settings.META_APP_SECRET = PLATFORM_SECRET
    response = post_webhook(
        client,
        "/webhook/whatsapp/",
        wa_text_payload(message_id="wamid.X1", text="hi", phone_id="999999999"),
        secret=PLATFORM_SECRET,
    )
    assert response.status_code == 200
    assert _messages(tenant_a) == []


def test_unknown_slug_is_404(client, db):
    assert (
        post_webhook(client, "/webhook/whatsapp/nobody/", fixture_bytes("wa_text")).status_code
        == 404
    )


def test_non_json_body_is_400_when_signed(client, wa_account):
    response = post_webhook(client, WA_URL, b"not json at all")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed"


def test_json_of_the_wrong_shape_is_accepted_without_storing(client, wa_account, tenant_a):
    response = post_webhook(client, WA_URL, b'{"object": "page", "entry": "nope"}')
    assert response.status_code == 200
    assert _messages(tenant_a) == []


def test_a_malformed_entry_does_not_lose_its_valid_siblings(client, wa_account, tenant_a):
    payload = json.loads(fixture_bytes("wa_text"))
    payload["entry"].insert(0, "not an entry")
    payload["entry"][1]["changes"][0]["value"]["messages"].insert(0, {"type": "text"})  # no id
    response = post_webhook(client, WA_URL, json.dumps(payload).encode())
    assert response.status_code == 200
    assert len(_messages(tenant_a)) == 1


def test_body_well_beyond_the_limit_is_413(client, wa_account, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1000
    body = wa_text_payload(message_id="wamid.BIG", text="x" * 5000)
    assert post_webhook(client, WA_URL, body).status_code == 413


def test_meta_sized_payloads_are_accepted(client, wa_account, tenant_a):
    body = wa_text_payload(message_id="wamid.LARGE", text="y" * 3_000_000)
    assert post_webhook(client, WA_URL, body).status_code == 200
    assert len(_messages(tenant_a)[0].text) == 3_000_000


def test_inactive_client_gets_200_and_nothing_is_processed(client, wa_account, tenant_a):
    tenant_a.status = "suspended"
    tenant_a.save(update_fields=["status"])
    response = post_webhook(client, WA_URL, fixture_bytes("wa_text"))
    assert response.status_code == 200
    assert _messages(tenant_a) == []


def test_inactive_account_gets_200_and_nothing_is_processed(client, wa_account, tenant_a):
    ChannelAccount.objects.filter(pk=wa_account.pk).update(status="inactive")
    assert post_webhook(client, WA_URL, fixture_bytes("wa_text")).status_code == 200
    assert _messages(tenant_a) == []


def _outbound(tenant, external_id: str, status: str = "sent") -> Message:
    from conversations.models import Conversation

    with inside(tenant):
        contact = Contact.objects.create(
            channel="whatsapp", external_id="15551234567", wa_id="15551234567"
        )
        conversation = Conversation.objects.create(
            contact=contact, channel_account_id=1, channel="whatsapp"
        )
        return Message.objects.create(
            conversation=conversation,
            direction="out",
            author="bot",
            text="hello",
            status=status,
            external_id=external_id,
        )


def _status_body(external_id: str, status: str, errors=None) -> bytes:
    payload = json.loads(fixture_bytes("wa_status_delivered"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["statuses"][0]["id"] = external_id
    value["statuses"][0]["status"] = status
    if errors:
        value["statuses"][0]["errors"] = errors
    return json.dumps(payload).encode()


def test_statuses_move_forward_only(client, wa_account, tenant_a):
    message = _outbound(tenant_a, "wamid.OUT1")
    post_webhook(client, WA_URL, _status_body("wamid.OUT1", "read"))
    post_webhook(client, WA_URL, _status_body("wamid.OUT1", "delivered"))  # late, out of order
    post_webhook(client, WA_URL, _status_body("wamid.OUT1", "read"))  # repeated
    with inside(tenant_a):
        message.refresh_from_db()
    assert message.status == "read" and message.read_at is not None


def test_failed_overrides_sent_but_not_delivered(client, wa_account, tenant_a):
    errors = [{"code": 131026, "title": "Message undeliverable"}]
    sent = _outbound(tenant_a, "wamid.OUT2", status="sent")
    post_webhook(client, WA_URL, _status_body("wamid.OUT2", "failed", errors))
    with inside(tenant_a):
        sent.refresh_from_db()
        assert sent.status == "failed" and sent.failure_reason == "131026"
        delivered = Message.objects.create(
            conversation=sent.conversation,
            direction="out",
            author="bot",
            text="x",
            status="delivered",
            external_id="wamid.OUT3",
        )
    post_webhook(client, WA_URL, _status_body("wamid.OUT3", "failed", errors))
    with inside(tenant_a):
        delivered.refresh_from_db()
    assert delivered.status == "delivered"


@pytest.mark.parametrize(
    "name",
    ["wa_status_sent", "wa_status_delivered", "wa_status_read", "wa_status_recipient_user_id"],
)
def test_each_status_fixture_is_applied(client, wa_account, tenant_a, name):
    status = json.loads(fixture_bytes(name))["entry"][0]["changes"][0]["value"]["statuses"][0]
    message = _outbound(tenant_a, status["id"], status="queued")
    assert post_webhook(client, WA_URL, fixture_bytes(name)).drained.statuses == 1
    with inside(tenant_a):
        message.refresh_from_db()
    assert message.status == status["status"]


@pytest.mark.parametrize(
    "name,expected",
    [
        ("ig_text", 1),
        ("ig_attachment_image", 1),
        ("ig_story_mention", 1),
        ("ig_story_reply", 1),
        ("ig_echo", 0),
        ("ig_standby", 1),
    ],
)
def test_instagram_events_are_stored_or_ignored(client, ig_account, tenant_a, name, expected):
    response = post_webhook(client, "/webhook/instagram/test-a/", fixture_bytes(name))
    assert response.status_code == 200
    assert len(_messages(tenant_a)) == expected


def test_instagram_standby_messages_are_stored_but_never_answered(client, ig_account, tenant_a):
    post_webhook(client, "/webhook/instagram/test-a/", fixture_bytes("ig_standby"))
    [message] = _messages(tenant_a)
    assert message.status == Message.Status.STORED


@pytest.mark.parametrize("url", ["/webhook/whatsapp/test-a/", "/webhook/whatsapp/test-a"])
def test_both_url_forms_answer_the_handshake(client, wa_account, url):
    params = {"hub.mode": "subscribe", "hub.verify_token": "the-verify-token", "hub.challenge": "7"}
    response = client.get(url, params)
    assert response.status_code == 200
    assert response.content == b"7"


@pytest.mark.parametrize("url", ["/webhook/whatsapp/test-a/", "/webhook/whatsapp/test-a"])
def test_both_url_forms_store_a_post(client, wa_account, tenant_a, url):
    response = post_webhook(client, url, fixture_bytes("wa_text"))
    assert response.status_code == 200  # not a redirect: Meta does not follow one on POST
    assert [m.type for m in _messages(tenant_a)] == ["text"]


@pytest.mark.parametrize("url", ["/webhook/whatsapp/", "/webhook/whatsapp"])
def test_both_app_level_url_forms_store_a_post(client, wa_account, tenant_a, settings, url):
    settings.META_APP_SECRET = PLATFORM_SECRET
    settings.META_APP_VERIFY_TOKEN = "platform-verify"
    handshake = {
        "hub.mode": "subscribe",
        "hub.verify_token": "platform-verify",
        "hub.challenge": "9",
    }
    assert client.get(url, handshake).content == b"9"
    response = post_webhook(client, url, fixture_bytes("wa_text"), secret=PLATFORM_SECRET)
    assert response.status_code == 200
    assert [m.type for m in _messages(tenant_a)] == ["text"]


def test_a_changed_app_secret_counts_at_once_in_this_process(client, wa_account, tenant_a):
    # The routing table is cached per process; a save of the account forgets it.
    assert post_webhook(client, WA_URL, fixture_bytes("wa_text")).status_code == 200
    wa_account.app_secret = "the-rotated-app-secret"
    wa_account.save(update_fields=["app_secret"])

    old = post_webhook(client, WA_URL, wa_text_payload(message_id="wamid.OLD", text="x"))
    new = post_webhook(
        client,
        WA_URL,
        wa_text_payload(message_id="wamid.NEW", text="y"),
        secret="the-rotated-app-secret",
    )

    assert (old.status_code, new.status_code) == (401, 200)
    assert "wamid.OLD" not in [m.external_id for m in _messages(tenant_a)]
    assert "wamid.NEW" in [m.external_id for m in _messages(tenant_a)]
