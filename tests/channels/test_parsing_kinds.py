"""Every kind of inbound event Meta sends, parsed into what it means (one fixture per kind).

The fixtures follow the payloads of Meta's webhook reference and of other projects' test data
(pywa, netflie/whatsapp-cloud-api, Chatwoot), with numbers and ids anonymised.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from channels_app.providers import NO_REPLY_TYPES, instagram, whatsapp
from tests.channels.test_parsing import CUSTOMER, IG_ACCOUNT, IGSID, PNID, ig_mid, load, wamid

WHEN = datetime(2025, 10, 9, 8, 53, 20, tzinfo=UTC)


def one(parsed):
    assert parsed.errors == [] and parsed.statuses == [], parsed
    assert len(parsed.messages) == 1, parsed
    return parsed.messages[0]


def wa(name):
    message = one(whatsapp.parse(load(name)))
    assert message.account_external_id == PNID and message.timestamp == WHEN
    return message


def ig(name):
    message = one(instagram.parse(load(name)))
    assert message.account_external_id == IG_ACCOUNT and message.contact_key == IGSID
    assert message.timestamp == WHEN
    return message


def test_order_is_structured_with_a_readable_summary():
    message = wa("wa_order")
    assert message.type == "order"
    assert message.order == {
        "catalog_id": "1234567890123456",
        "note": "Please deliver after 6pm",
        "items": [
            {"retailer_id": "SKU-CAPPU", "quantity": 2, "price": 18, "currency": "MAD"},
            {"retailer_id": "SKU-CROIS", "quantity": 1, "price": 12.5, "currency": "MAD"},
        ],
        "total": 48.5,
        "currency": "MAD",
    }
    assert message.text == (
        "Order (catalogue 1234567890123456): 2 x SKU-CAPPU at 18 MAD; 1 x SKU-CROIS at 12.5 MAD."
        " Total 48.5 MAD. Note: Please deliver after 6pm"
    )


def test_number_change_names_the_old_and_the_new_number():
    message = wa("wa_system_user_changed_number")
    assert message.type == "system" and message.type in NO_REPLY_TYPES
    assert message.wa_id == CUSTOMER and message.contact_key == CUSTOMER
    assert message.system == {
        "kind": "user_changed_number",
        "body": "Test Customer changed from 15550002222 to 15550003333",
        "new_wa_id": "15550003333",
    }


def test_revoke_is_a_deletion_of_the_original():
    message = wa("wa_revoke")
    assert (message.type, message.target_external_id, message.text) == ("deleted", wamid(1), "")


def test_edit_carries_the_new_text_and_the_original_id():
    message = wa("wa_edit")
    assert message.type == "edit" and message.target_external_id == wamid(1)
    assert message.text == "Hello, what are your opening hours on Friday?"
    assert message.external_id == wamid(23)


def test_click_to_whatsapp_ad_referral_is_kept_with_the_text():
    message = wa("wa_referral")
    assert message.type == "text" and message.text.startswith("Hi, I saw your ad")
    assert message.referral["source_type"] == "ad"
    assert message.referral["source_id"] == "120210000000000001"
    assert message.referral["source_url"] == "https://fb.me/2ZUJkFAKE"
    assert message.referral["headline"] == "Two coffees for one"
    assert message.referral["ctwa_clid"].startswith("ARAkLkA8")
    assert message.referral["media_url"].endswith("fake.jpg")


def test_referred_product_is_an_attribution_to_a_product():
    message = wa("wa_referred_product")
    assert message.type == "text" and message.reply_to_external_id == wamid(904)
    assert message.referral == {
        "source_type": "product",
        "catalog_id": "1234567890123456",
        "product_retailer_id": "SKU-CAPPU",
    }


def test_call_permission_reply_keeps_the_answer_and_expiry():
    message = wa("wa_call_permission_reply")
    assert message.type == "call_permission_reply" and message.type in NO_REPLY_TYPES
    assert message.call_permission == {
        "response": "accept",
        "expires_at": "2025-10-16T08:53:20+00:00",
        "is_permanent": False,
        "source": "user_action",
    }


def test_metas_error_on_a_message_is_kept_on_it():
    message = wa("wa_message_error")
    assert message.type == "unsupported"
    assert message.errors == [
        {
            "code": 131000,
            "title": "Something went wrong",
            "message": "Something went wrong",
            "details": "Unable to process the interactive message.",
        }
    ]


def test_business_app_echo_is_an_outbound_message_to_the_customer():
    parsed = whatsapp.parse(load("wa_smb_message_echo"))
    message = one(parsed)
    assert message.echo is True
    assert message.contact_key == CUSTOMER and message.wa_id == CUSTOMER
    assert message.text == "Hi, this is Sara from the shop. Your order is on its way."
    assert whatsapp.account_ids(load("wa_smb_message_echo")) == [PNID]
    assert list(whatsapp.split_by_account(load("wa_smb_message_echo"))) == [PNID]


def test_reaction_removal_is_a_reaction_without_emoji():
    message = wa("wa_reaction_removed")
    assert (message.type, message.text, message.reply_to_external_id) == (
        "reaction",
        "",
        wamid(903),
    )
    assert wa("wa_reaction").type in NO_REPLY_TYPES


def test_sticker_is_media_without_text():
    message = wa("wa_sticker")
    assert message.type == "sticker" and message.text == "" and message.media_id


# --- Instagram ----------------------------------------------------------------------------


def test_shared_story_has_its_media_id_and_url():
    message = ig("ig_story_share")
    assert message.type == "share"
    assert message.media_id == "18000000000000020"
    assert message.media_url.endswith("asset_id=1800000000000020&signature=FAKE")


def test_post_share_keeps_every_attachment():
    message = ig("ig_post_share")
    assert message.type == "share" and message.text == "New collection: summer dresses"
    assert [(a["kind"], a.get("media_id")) for a in message.attachments] == [
        ("ig_post", "18000000000000021"),
        ("image", None),
    ]
    assert message.attachments[1]["url"].endswith("1800000000000022&signature=FAKE")


def test_instagram_edit_targets_the_original_and_has_its_own_id():
    message = ig("ig_message_edit")
    assert message.type == "edit" and message.target_external_id == ig_mid(1)
    assert message.text == "Hi! Is the blue dress available in L?"
    assert message.external_id == f"edit:{ig_mid(1)}:1"


def test_instagram_deleted_targets_the_unsent_message():
    message = ig("ig_deleted")
    assert message.type == "deleted" and message.target_external_id == ig_mid(1)
    assert message.external_id != ig_mid(1)


def test_instagram_ad_message_carries_ads_context_data():
    message = ig("ig_ads_referral")
    assert message.type == "text" and message.text == "Is this still available?"
    assert message.referral == {
        "source_type": "ad",
        "source_id": "120210000000000002",
        "headline": "Summer dresses -30%",
        "media_url": "https://scontent.cdninstagram.com/fake-ad.jpg",
        "post_id": "18000000000000023",
        "ref": "summer-sale",
    }


def test_instagram_referral_alone_is_an_attribution_event():
    message = ig("ig_referral")
    assert message.type == "referral" and message.type in NO_REPLY_TYPES
    assert message.referral["source_id"] == "120210000000000002"


def test_postback_in_the_changes_shape_with_seconds_is_dated_today_not_1970():
    message = ig("ig_postback_changes")
    assert message.type == "interactive" and message.payload == "handoff_yes"
    assert message.text == "Talk to a person"


def test_instagram_reaction_removal_has_no_emoji():
    message = ig("ig_reaction_removed")
    assert message.type == "reaction" and message.text == ""
    assert message.reply_to_external_id == ig_mid(1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1760000000, WHEN),
        ("1760000000", WHEN),
        (1760000000000, WHEN),
        ("1760000000000", WHEN),
    ],
)
def test_instagram_timestamps_in_seconds_or_milliseconds(value, expected):
    payload = load("ig_text")
    payload["entry"][0]["messaging"][0]["timestamp"] = value
    assert one(instagram.parse(payload)).timestamp == expected
