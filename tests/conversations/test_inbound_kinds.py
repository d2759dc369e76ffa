"""Each inbound kind through a signed webhook: what is stored, what is answered, what is not.

The webhook is posted to the real view; reply tasks run in this process (eager) after commit,
against the fake Graph API and the fake OpenAI server, so "no reply" means nothing reached
the fake Graph API.
"""

from __future__ import annotations

import json

import pytest

from conversations.models import Contact, Conversation, ConversationEvent, Message
from tests.conftest import inside
from tests.conversations.conftest import IG_URL
from tests.factories import (
    fixture_json,
)
from tests.fakes.callback_receiver import CallbackReceiver


def answer(tenant, message, capture):
    """Run the reply task of `message` now, as its delayed task would."""
    from conversations.tasks import handle_inbound_task

    with inside(tenant), capture(execute=True):
        handle_inbound_task.delay(message.pk)


def owner_api(tenant):
    from tenants.models import Membership
    from tests.tenants.factories import MembershipFactory, api_as_user

    membership = MembershipFactory(client=tenant, role=Membership.Role.OWNER)
    return api_as_user(membership.user, tenant)


def messages(tenant, **filters):
    with inside(tenant):
        return list(Message.objects.filter(**filters).select_related("conversation").order_by("pk"))


def conversation(tenant) -> Conversation:
    with inside(tenant):
        return Conversation.objects.select_related("contact").get()


def test_a_text_is_answered_and_a_reaction_to_it_is_not(wa_shop, deliver, tenant_a, fake_graph):
    deliver("wa_text")
    assert len(fake_graph.message_sends()) == 1
    deliver("wa_reaction")
    deliver("wa_reaction_removed")
    assert len(fake_graph.message_sends()) == 1  # still only the answer to the text
    reactions = messages(tenant_a, type="reaction")
    assert [(m.text, m.status) for m in reactions] == [
        ("\N{THUMBS UP SIGN}", "stored"),
        ("", "stored"),
    ]


@pytest.mark.parametrize(
    "fixture", ["wa_system_user_changed_number", "wa_call_permission_reply", "wa_reaction"]
)
def test_notices_and_reactions_are_stored_and_never_answered(
    wa_shop, deliver, tenant_a, fake_graph, fixture
):
    assert deliver(fixture)["accepted"] == 1
    [message] = messages(tenant_a)
    assert message.status == "stored"
    assert fake_graph.message_sends() == []


def test_an_edit_of_an_unanswered_message_is_answered_in_its_new_form(
    wa_shop, deliver, tenant_a, fake_graph, online, django_capture_on_commit_callbacks
):
    deliver("wa_text", run=False)  # stored, its reply task not run yet
    deliver("wa_edit", run=False)
    [original] = messages(tenant_a)
    assert original.text == "Hello, what are your opening hours on Friday?"
    assert original.edited_at is not None
    assert original.raw["edits"][0]["previous_text"] == "Hello, what are your opening hours?"

    answer(tenant_a, original, django_capture_on_commit_callbacks)
    [call] = online.chat_calls
    assert call["messages"][-1]["content"] == "Hello, what are your opening hours on Friday?"
    assert len(fake_graph.message_sends()) == 1


def test_an_edit_of_an_answered_message_updates_it_without_a_second_reply(
    wa_shop, deliver, tenant_a, fake_graph
):
    deliver("wa_text")
    assert len(fake_graph.message_sends()) == 1
    deliver("wa_edit")
    deliver("wa_edit")  # redelivered
    [original] = messages(tenant_a, direction="in")
    assert original.status == "answered" and original.edited_at is not None
    assert original.text.endswith("on Friday?") and len(original.raw["edits"]) == 1
    assert len(fake_graph.message_sends()) == 1


def test_a_revoked_message_is_emptied_and_not_answered(
    wa_shop, deliver, tenant_a, fake_graph, django_capture_on_commit_callbacks
):
    deliver("wa_text", run=False)
    deliver("wa_revoke", run=False)
    [original] = messages(tenant_a)
    assert original.text == "" and original.deleted_at is not None

    answer(tenant_a, original, django_capture_on_commit_callbacks)
    [original] = messages(tenant_a)
    assert original.status == "stored"
    assert fake_graph.message_sends() == []


def test_an_order_is_stored_listed_in_the_api_and_notified(
    wa_shop, deliver, tenant_a, api, fake_graph
):
    receiver = CallbackReceiver().start()
    try:
        tenant_a.callback_url = receiver.url
        tenant_a.save(update_fields=["callback_url"])
        deliver("wa_order")
    finally:
        receiver.stop()
    [order] = messages(tenant_a, type="order")
    assert order.order["total"] == 48.5 and order.text.startswith("Order (catalogue")

    owner = owner_api(tenant_a)
    body = owner.get(f"/api/v1/clients/{tenant_a.pk}/orders").json()
    [listed] = body["results"]
    assert listed["id"] == order.pk and listed["order"]["items"][0]["retailer_id"] == "SKU-CAPPU"
    assert listed["summary"] == order.text and listed["contact"]["wa_id"] == "15550002222"

    events = [json.loads(r.body)["event"] for r in receiver.requests]
    assert "order_received" in events
    [payload] = [json.loads(r.body) for r in receiver.requests if b"order_received" in r.body]
    assert payload["data"]["order"]["catalog_id"] == "1234567890123456"


def test_a_business_app_echo_is_stored_as_outbound_and_hands_off(
    wa_shop, deliver, tenant_a, fake_graph, django_capture_on_commit_callbacks
):
    deliver("wa_text", run=False)
    deliver("wa_smb_message_echo")
    deliver("wa_smb_message_echo")  # redelivered: stored once
    [echo] = messages(tenant_a, direction="out")
    assert (echo.author, echo.status, echo.author_email) == ("agent", "sent", "business_app")
    assert echo.text.startswith("Hi, this is Sara")
    current = conversation(tenant_a)
    assert (current.mode, current.handoff_reason) == ("handoff", "business_replied")

    [customer] = messages(tenant_a, direction="in")
    answer(tenant_a, customer, django_capture_on_commit_callbacks)
    assert fake_graph.message_sends() == []  # the bot stepped back
    assert messages(tenant_a, direction="in")[0].status == "stored"


def test_number_change_rekeys_the_contact_and_keeps_its_history(wa_shop, deliver, tenant_a):
    deliver("wa_text", run=False)
    deliver("wa_system_user_changed_number", run=False)
    payload = fixture_json("wa_text")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = value["messages"][0]["from"] = "15550003333"
    value["messages"][0]["id"] = "wamid.FROM-THE-NEW-NUMBER"
    deliver(json.dumps(payload).encode(), run=False)

    with inside(tenant_a):
        [contact] = Contact.objects.all()
        assert (contact.wa_id, contact.external_id) == ("15550003333", "15550003333")
        assert contact.previous_wa_ids == ["15550002222"] and contact.identity_changed_at
        [only] = Conversation.objects.all()
        assert only.messages.count() == 3
        event = ConversationEvent.objects.get(kind="customer_identity_changed")
    assert event.detail == {
        "change": "user_changed_number",
        "previous_wa_id": "15550002222",
        "new_wa_id": "15550003333",
    }


def test_a_message_from_the_new_number_before_the_notice_is_merged(wa_shop, deliver, tenant_a):
    deliver("wa_text", run=False)
    payload = fixture_json("wa_text")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = value["messages"][0]["from"] = "15550003333"
    value["messages"][0]["id"] = "wamid.FROM-THE-NEW-NUMBER"
    deliver(json.dumps(payload).encode(), run=False)
    deliver("wa_system_user_changed_number", run=False)
    with inside(tenant_a):
        [contact] = Contact.objects.all()
        assert contact.wa_id == "15550003333"
        assert Message.objects.filter(conversation__contact=contact).count() == 3


def test_an_ad_click_is_attributed_filterable_and_counted(wa_shop, deliver, tenant_a, online):
    deliver("wa_referral")
    [message] = messages(tenant_a, direction="in")
    assert message.referral["ctwa_clid"].startswith("ARAkLkA8")
    current = conversation(tenant_a)
    assert current.ad_source_id == "120210000000000001"
    assert current.ad_headline == "Two coffees for one" and current.ad_source_type == "ad"
    assert current.ad_ctwa_clid.startswith("ARAkLkA8") and current.ad_source_url

    owner = owner_api(tenant_a)
    base = f"/api/v1/clients/{tenant_a.pk}/"
    found = owner.get(base + "conversations?ad_source_id=120210000000000001").json()["results"]
    assert [c["id"] for c in found] == [current.pk]
    assert found[0]["ad_headline"] == "Two coffees for one"
    assert owner.get(base + "conversations?from_ad=false").json()["results"] == []
    assert owner.get(base + "conversations?ad_source_id=other").json()["results"] == []
    usage = owner.get(base + "usage").json()
    assert usage["ads"] == [
        {
            "source_id": "120210000000000001",
            "source_type": "ad",
            "headline": "Two coffees for one",
            "messages": 1,
            "conversations": 1,
        }
    ]
    detail = owner.get(base + f"conversations/{current.pk}").json()
    assert detail["messages"][0]["referral"]["source_id"] == "120210000000000001"


def test_metas_error_goes_onto_the_message(wa_shop, deliver, tenant_a, fake_graph):
    deliver("wa_message_error")
    [message] = messages(tenant_a, direction="in")
    assert message.errors[0]["code"] == 131000
    assert message.errors[0]["details"] == "Unable to process the interactive message."


def test_a_sticker_follows_the_clients_unsupported_media_setting(
    wa_shop, deliver, tenant_a, fake_graph
):
    tenant_a.unsupported_media = "handoff"
    tenant_a.save(update_fields=["unsupported_media"])
    deliver("wa_sticker")
    current = conversation(tenant_a)
    assert (current.mode, current.handoff_reason) == ("handoff", "unsupported_media")
    assert len(fake_graph.message_sends()) == 1  # the handoff acknowledgement


def test_instagram_edit_updates_the_original_and_referral_attributes(
    ig_shop, deliver, tenant_a, fake_graph
):
    deliver("ig_text", url=IG_URL, run=False)
    deliver("ig_message_edit", url=IG_URL, run=False)
    deliver("ig_referral", url=IG_URL)
    original = messages(tenant_a, type="text")[0]
    assert original.text == "Hi! Is the blue dress available in L?" and original.edited_at
    [referral] = messages(tenant_a, type="referral")
    assert referral.status == "stored"
    assert conversation(tenant_a).ad_source_id == "120210000000000002"


def test_instagram_post_share_keeps_both_attachments(ig_shop, deliver, tenant_a):
    deliver("ig_post_share", url=IG_URL, run=False)
    [message] = messages(tenant_a)
    assert [a["kind"] for a in message.attachments] == ["ig_post", "image"]
    assert message.media_id == "18000000000000021"


def test_a_changes_shape_postback_dated_in_seconds_keeps_the_window_open(
    ig_shop, deliver, tenant_a
):
    deliver("ig_postback_changes", url=IG_URL, run=False)
    [postback] = messages(tenant_a)
    assert (postback.type, postback.payload) == ("interactive", "handoff_yes")
    current = conversation(tenant_a)
    assert current.last_inbound_at.year == 2025  # not 1970: seconds were not read as ms


def test_the_per_client_admin_shows_ad_attribution_orders_and_edits(
    wa_shop, deliver, tenant_a, client
):
    from django.contrib.auth import get_user_model

    deliver("wa_referral", run=False)
    deliver("wa_order", run=False)
    current = conversation(tenant_a)
    staff = get_user_model().objects.create_user(
        "staff-kinds", "staff-kinds@wafaa.example", "pw-123456789", is_staff=True
    )
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    client.get(f"/admin/client-data/open/{tenant_a.pk}/")
    page = client.get(
        f"/admin/client-data/conversations/conversation/{current.pk}/change/"
    ).content.decode()
    assert "Two coffees for one" in page and "120210000000000001" in page
    assert "Order (catalogue 1234567890123456)" in page
    listing = client.get("/admin/client-data/conversations/conversation/").content.decode()
    assert "Two coffees for one" in listing  # the ad headline column
