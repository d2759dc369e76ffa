"""Webhook parsing: one JSON fixture per Meta event, parsed to the shared inbound shape.

Plain pytest, no Django and no database: the providers are pure functions of the payload.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from channels_app.providers import instagram, parse, whatsapp
from channels_app.providers.base import sign_body, status_transition_allowed, verify_signature

FIXTURES = Path(__file__).parent / "fixtures"

PNID = "106540352242922"
PNID2 = "106540352242933"
CUSTOMER = "15550002222"
BSUID = "US.13491208655302741918"
IG_ACCOUNT = "17841400000000001"
IGSID = "1234567890123456"


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def wamid(n: int) -> str:
    return f"wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzRUIwRkFLRTAwMDAwMDAwMDAw{n:04d}AA=="


def ig_mid(n: int) -> str:
    return (
        "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDAxOjM0MDI4MjM2Njg0MTcxMDMwMTI0"
        f"NDI1OTk5OTA{n:04d}"
    )


def only_message(parsed):
    assert parsed.errors == []
    assert parsed.statuses == []
    assert len(parsed.messages) == 1, parsed
    return parsed.messages[0]


# --- WhatsApp messages --------------------------------------------------------------------

# fixture → fields the single parsed message must have
WA_MESSAGES = {
    "wa_text": {
        "type": "text",
        "text": "Hello, what are your opening hours?",
        "contact_key": CUSTOMER,
        "wa_id": CUSTOMER,
        "user_id": None,
        "contact_name": "Test Customer",
        "external_id": wamid(1),
    },
    "wa_text_user_id_only": {
        "type": "text",
        "text": "Do you deliver to my area?",
        "contact_key": BSUID,
        "wa_id": None,
        "user_id": BSUID,
        "contact_name": "Private User",
        "username": "private.user",
    },
    "wa_image": {
        "type": "image",
        "text": "Is this one in stock?",
        "media_id": "1500000000000001",
        "media_mime_type": "image/jpeg",
        "contact_key": BSUID,
        "wa_id": CUSTOMER,
    },
    "wa_audio": {
        "type": "audio",
        "text": "",
        "media_id": "1500000000000002",
        "media_mime_type": "audio/ogg; codecs=opus",
    },
    "wa_video": {
        "type": "video",
        "text": "The box arrived like this",
        "media_id": "1500000000000003",
        "media_mime_type": "video/mp4",
    },
    "wa_document": {
        "type": "document",
        "text": "invoice-2026-001.pdf",
        "media_id": "1500000000000004",
        "media_mime_type": "application/pdf",
    },
    "wa_sticker": {"type": "sticker", "text": "", "media_id": "1500000000000005"},
    "wa_location": {"type": "location", "text": "Main Branch, King Fahd Road, Riyadh"},
    "wa_contacts": {
        "type": "contacts",
        "text": "Sara Example: +1 555-000-4444, +1 555-000-5555\nOmar: +1 555-000-6666",
    },
    "wa_interactive_button_reply": {
        "type": "interactive",
        "text": "Talk to a person",
        "payload": "talk_to_human",
        "reply_to_external_id": wamid(900),
    },
    "wa_interactive_list_reply": {
        "type": "interactive",
        "text": "Riyadh branch\nOpen 9am-11pm",
        "payload": "branch_riyadh",
        "reply_to_external_id": wamid(901),
    },
    "wa_button": {
        "type": "button",
        "text": "Confirm",
        "payload": "CONFIRM_ORDER",
        "reply_to_external_id": wamid(902),
    },
    "wa_reaction": {
        "type": "reaction",
        "text": "\N{THUMBS UP SIGN}",
        "reply_to_external_id": wamid(903),
    },
    "wa_unsupported": {"type": "unsupported", "text": ""},
}


@pytest.mark.parametrize(("fixture", "expected"), WA_MESSAGES.items(), ids=list(WA_MESSAGES))
def test_whatsapp_message_fixture_parses_to_expected_fields(fixture, expected):
    message = only_message(whatsapp.parse(load(fixture)))
    assert message.channel == "whatsapp"
    assert message.account_external_id == PNID
    assert message.timestamp == datetime(2025, 10, 9, 8, 53, 20, tzinfo=UTC)
    assert message.raw["id"] == message.external_id
    for name, value in expected.items():
        assert getattr(message, name) == value, name


def test_unsupported_message_keeps_metas_errors():
    message = only_message(whatsapp.parse(load("wa_unsupported")))
    assert message.errors[0]["code"] == 131051
    assert message.errors[0]["details"] == "Message type is currently not supported."


def test_unknown_whatsapp_type_becomes_unsupported_and_keeps_the_original():
    payload = load("wa_text")
    message_dict = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message_dict["type"] = "request_welcome"
    message_dict["request_welcome"] = {}
    message = only_message(whatsapp.parse(payload))
    assert message.type == "unsupported"
    assert message.raw["type"] == "request_welcome"


def test_location_without_name_is_its_coordinates():
    payload = load("wa_location")
    location = payload["entry"][0]["changes"][0]["value"]["messages"][0]["location"]
    del location["name"], location["address"]
    assert only_message(whatsapp.parse(payload)).text == "24.7136,46.6753"


# --- WhatsApp statuses --------------------------------------------------------------------

WA_STATUSES = {
    "wa_status_sent": ("sent", wamid(100), CUSTOMER, 0),
    "wa_status_delivered": ("delivered", wamid(100), CUSTOMER, 0),
    "wa_status_read": ("read", wamid(100), CUSTOMER, 0),
    "wa_status_failed": ("failed", wamid(101), CUSTOMER, 1),
    "wa_status_recipient_user_id": ("delivered", wamid(102), BSUID, 0),
}


@pytest.mark.parametrize(("fixture", "expected"), WA_STATUSES.items(), ids=list(WA_STATUSES))
def test_whatsapp_status_fixture_parses(fixture, expected):
    status, external_id, recipient, error_count = expected
    parsed = whatsapp.parse(load(fixture))
    assert parsed.messages == [] and parsed.errors == []
    (update,) = parsed.statuses
    assert (update.status, update.external_id, update.recipient) == (status, external_id, recipient)
    assert update.account_external_id == PNID
    assert len(update.errors) == error_count
    assert update.timestamp.tzinfo is not None


def test_failed_status_carries_the_error_code_and_details():
    (update,) = whatsapp.parse(load("wa_status_failed")).statuses
    assert update.errors[0]["code"] == 131047
    assert update.errors[0]["title"] == "Re-engagement message"
    assert "24 hours" in update.errors[0]["details"]


# --- WhatsApp batches and routing ---------------------------------------------------------


def test_whatsapp_batch_yields_every_message_and_status_of_every_entry_and_change():
    parsed = whatsapp.parse(load("wa_batch_multi"))
    assert parsed.errors == []
    assert [m.external_id for m in parsed.messages] == [wamid(20), wamid(21), wamid(22)]
    assert [m.account_external_id for m in parsed.messages] == [PNID, PNID, PNID2]
    assert [m.contact_name for m in parsed.messages] == [
        "Test Customer",
        "Second Customer",
        "Third Customer",
    ]
    assert [(s.external_id, s.status) for s in parsed.statuses] == [
        (wamid(110), "delivered"),
        (wamid(111), "read"),
        (wamid(112), "sent"),
    ]
    assert parsed.ignored == ["unknown_field:message_template_status_update"]


def test_batch_can_be_routed_per_account():
    payload = load("wa_batch_multi")
    assert whatsapp.account_ids(payload) == [PNID, PNID2]
    parsed = whatsapp.parse(payload)
    assert parsed.account_external_ids() == [PNID, PNID2]
    second = parsed.for_account(PNID2)
    assert [m.external_id for m in second.messages] == [wamid(22)]
    assert [s.external_id for s in second.statuses] == [wamid(112)]

    parts = whatsapp.split_by_account(payload)
    assert list(parts) == [PNID, PNID2]
    assert [m.external_id for m in whatsapp.parse(parts[PNID]).messages] == [wamid(20), wamid(21)]
    assert len(whatsapp.parse(parts[PNID]).statuses) == 2
    assert [m.external_id for m in whatsapp.parse(parts[PNID2]).messages] == [wamid(22)]
    assert payload == load("wa_batch_multi")  # the input was not modified


def test_malformed_parts_are_skipped_and_their_valid_siblings_kept():
    payload = load("wa_batch_multi")
    value = payload["entry"][0]["changes"][0]["value"]
    del value["messages"][0]["id"]  # a message without id
    value["messages"].append("not a message")
    payload["entry"][0]["changes"][1]["value"]["statuses"].append({"status": "read"})
    payload["entry"].insert(0, "not an entry")
    payload["entry"].append({"id": "1", "changes": [{"field": "messages", "value": {}}]})

    parsed = whatsapp.parse(payload)

    assert [m.external_id for m in parsed.messages] == [wamid(21), wamid(22)]
    assert [s.external_id for s in parsed.statuses] == [wamid(110), wamid(111), wamid(112)]
    assert parsed.errors == [
        "entry[0]: not an object",
        "entry[1].changes[0].messages[0]: missing id",
        "entry[1].changes[0].messages[2]: not an object",
        "entry[1].changes[1].statuses[2]: missing id",
        "entry[3].changes[0]: missing metadata.phone_number_id",
    ]


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "text",
        {},
        {"object": "instagram", "entry": []},
        {"object": "whatsapp_business_account"},
    ],
)
def test_payload_of_the_wrong_shape_gives_an_error_not_an_exception(payload):
    parsed = whatsapp.parse(payload)
    assert parsed.messages == [] and parsed.statuses == []
    assert len(parsed.errors) == 1


def test_unknown_status_value_is_ignored():
    payload = load("wa_status_sent")
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = "warning"
    parsed = whatsapp.parse(payload)
    assert parsed.statuses == [] and parsed.ignored == ["unknown_status:warning"]


# --- Instagram ----------------------------------------------------------------------------

IG_MESSAGES = {
    "ig_text": {
        "type": "text",
        "text": "Hi! Is the blue dress available in M?",
        "external_id": ig_mid(1),
    },
    "ig_attachment_image": {
        "type": "image",
        "text": "",
        "media_url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1800000000000001&signature=FAKE",
    },
    "ig_story_mention": {
        "type": "story_mention",
        "media_url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1800000000000002&signature=FAKE",
    },
    "ig_story_reply": {
        "type": "story_reply",
        "text": "How much is this?",
        "media_url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1800000000000003&signature=FAKE",
        "reply_to_external_id": None,
    },
    "ig_deleted": {"type": "deleted", "text": "", "target_external_id": ig_mid(1)},
    "ig_standby": {"type": "text", "text": "Anyone there?", "standby": True},
}


@pytest.mark.parametrize(("fixture", "expected"), IG_MESSAGES.items(), ids=list(IG_MESSAGES))
def test_instagram_message_fixture_parses_to_expected_fields(fixture, expected):
    message = only_message(instagram.parse(load(fixture)))
    assert message.channel == "instagram"
    assert message.account_external_id == IG_ACCOUNT
    assert message.contact_key == IGSID
    assert message.wa_id is None
    assert message.timestamp == datetime(2025, 10, 9, 8, 53, 20, tzinfo=UTC)
    expected = {"standby": False, **expected}
    for name, value in expected.items():
        assert getattr(message, name) == value, name


def test_instagram_echo_is_ignored():
    parsed = instagram.parse(load("ig_echo"))
    assert parsed.messages == [] and parsed.errors == []
    assert parsed.ignored == ["echo"]


def test_instagram_batch_yields_every_event_and_ignores_echo_and_read():
    parsed = instagram.parse(load("ig_batch_multi"))
    assert parsed.errors == []
    assert parsed.ignored == ["echo", "read"]
    summary = [(m.type, m.text, m.reply_to_external_id, m.payload) for m in parsed.messages]
    assert summary == [
        ("text", "First", None, None),
        ("text", "Second", ig_mid(10), None),
        ("reaction", "\u2764\ufe0f", ig_mid(12), "love"),
        ("interactive", "Track my order", None, "TRACK_ORDER"),
        ("text", "Yes", None, "CONFIRM_YES"),
        ("share", "Our new collection", None, None),
    ]
    assert parsed.messages[-1].account_external_id == "17841400000000002"
    assert parsed.account_external_ids() == [IG_ACCOUNT, "17841400000000002"]


def test_instagram_reaction_id_is_stable_across_redeliveries():
    first = instagram.parse(load("ig_batch_multi")).messages[2]
    again = instagram.parse(load("ig_batch_multi")).messages[2]
    assert first.type == "reaction"
    assert first.external_id == again.external_id
    assert first.external_id != first.reply_to_external_id


def test_instagram_malformed_items_are_skipped_and_siblings_kept():
    payload = load("ig_batch_multi")
    messaging = payload["entry"][0]["messaging"]
    del messaging[0]["message"]["mid"]
    del messaging[1]["sender"]
    messaging.append(42)
    payload["entry"].append("nope")
    parsed = instagram.parse(payload)
    assert len(parsed.messages) == 4
    assert parsed.errors == [
        "entry[0].messaging[0]: missing message.mid",
        "entry[0].messaging[1]: missing sender.id",
        "entry[0].messaging[7]: not an object",
        "entry[2]: not an object",
    ]


def test_instagram_changes_format_is_accepted():
    item = load("ig_text")["entry"][0]["messaging"][0]
    payload = {
        "object": "instagram",
        "entry": [
            {
                "id": IG_ACCOUNT,
                "time": 1760000000,
                "changes": [
                    {"field": "messages", "value": item},
                    {"field": "comments", "value": {}},
                ],
            }
        ],
    }
    parsed = instagram.parse(payload)
    assert [m.text for m in parsed.messages] == ["Hi! Is the blue dress available in M?"]
    assert parsed.ignored == ["unknown_field:comments"]


def test_parse_dispatches_by_channel_and_refuses_unknown_channels():
    assert parse("whatsapp", load("wa_text")).messages[0].channel == "whatsapp"
    assert parse("instagram", load("ig_text")).messages[0].channel == "instagram"
    assert parse("telegram", {}).errors == ["unknown channel: 'telegram'"]
    assert instagram.parse(load("wa_text")).errors == ["not an instagram payload"]


# --- Signatures ---------------------------------------------------------------------------

SECRET = "test-app-secret"
BODY = (FIXTURES / "wa_text.json").read_bytes()


@pytest.mark.parametrize(
    ("body", "header", "secret", "expected"),
    [
        (BODY, sign_body(BODY, SECRET), SECRET, True),
        (BODY, sign_body(BODY, SECRET).upper().replace("SHA256=", "sha256="), SECRET, True),
        (BODY, sign_body(BODY, "another-secret"), SECRET, False),
        (BODY + b" ", sign_body(BODY, SECRET), SECRET, False),
        (BODY, None, SECRET, False),
        (BODY, "", SECRET, False),
        (BODY, "sha256=", SECRET, False),
        (BODY, "sha1=" + "0" * 40, SECRET, False),
        (BODY, "sha256=" + "z" * 64, SECRET, False),
        (BODY, sign_body(BODY, SECRET)[:-2], SECRET, False),
        (BODY, sign_body(BODY, SECRET).removeprefix("sha256="), SECRET, False),
        (BODY, sign_body(BODY, ""), "", False),
    ],
    ids=[
        "valid",
        "uppercase-hex",
        "wrong-secret",
        "body-changed",
        "missing",
        "empty",
        "no-digest",
        "sha1",
        "not-hex",
        "truncated",
        "no-prefix",
        "empty-secret",
    ],
)
def test_verify_signature(body, header, secret, expected):
    assert verify_signature(body, header, secret) is expected


def test_signature_of_re_serialised_json_does_not_verify():
    header = sign_body(BODY, SECRET)
    reserialised = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    assert reserialised != BODY
    assert verify_signature(reserialised, header, SECRET) is False


def test_verify_signature_never_raises_on_odd_input():
    assert verify_signature("not bytes", "sha256=" + "0" * 64, SECRET) is False  # type: ignore[arg-type]
    assert verify_signature(BODY, 123, SECRET) is False  # type: ignore[arg-type]
    assert verify_signature(BODY, "sha256=é" + "0" * 63, SECRET) is False


# --- Status transitions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        (None, "sent", True),
        (None, "delivered", True),
        (None, "read", True),
        (None, "failed", True),
        ("queued", "sent", True),
        ("queued", "read", True),
        ("queued", "failed", True),
        ("pending", "delivered", True),
        ("sent", "delivered", True),
        ("sent", "read", True),
        ("sent", "failed", True),
        ("delivered", "read", True),
        ("read", "played", True),
        ("sent", "sent", False),
        ("delivered", "delivered", False),
        ("read", "read", False),
        ("delivered", "sent", False),
        ("read", "delivered", False),
        ("read", "sent", False),
        ("played", "read", False),
        ("delivered", "failed", False),
        ("read", "failed", False),
        ("played", "failed", False),
        ("failed", "failed", False),
        ("failed", "sent", False),
        ("failed", "delivered", False),
        ("failed", "read", False),
        ("sent", "queued", False),
        ("sent", "deleted", False),
        (None, "warning", False),
        ("some_local_status", "sent", True),
    ],
)
def test_status_transition_allowed(current, new, allowed):
    assert status_transition_allowed(current, new) is allowed


def test_parsed_dataclasses_are_frozen():
    message = only_message(whatsapp.parse(load("wa_text")))
    with pytest.raises(AttributeError):
        message.text = "changed"  # type: ignore[misc]
    assert copy.copy(message) == message
