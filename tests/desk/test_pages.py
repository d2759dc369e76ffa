"""The inbox's pages: every role sees them, other clients' people and strangers do not, the
list's order, filters and search, and what the conversation view shows."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from conversations import services
from conversations.models import Contact, Conversation, Message
from tenants.models import Membership
from tests.conftest import inside
from tests.desk.conftest import receive, sign_in
from tests.factories import ChannelAccountFactory
from tests.tenants.factories import StaffUserFactory


def ids_in(html: bytes) -> list[int]:
    return [int(i) for i in re.findall(rb'data-conversation-id="(\d+)"', html)]


@pytest.mark.parametrize("role", ["owner", "admin", "agent"])
def test_every_page_renders_for_each_role(member, role, tenant_a, conversation):
    http = sign_in(member(role))
    base = f"/inbox/{tenant_a.slug}"
    for path, shows in (
        (f"{base}/", f'data-conversation-id="{conversation.pk}"'),
        (f"{base}/list/", f'data-conversation-id="{conversation.pk}"'),
        (f"{base}/c/{conversation.pk}/", 'data-direction="in"'),
        (f"{base}/c/{conversation.pk}/live/", 'data-direction="in"'),
    ):
        response = http.get(path)
        assert response.status_code == 200, path
        assert shows.encode() in response.content, path


def test_a_stranger_is_sent_to_the_login_page(tenant_a, conversation):
    http = HttpClient()
    for path in (
        f"/inbox/{tenant_a.slug}/",
        f"/inbox/{tenant_a.slug}/c/{conversation.pk}/",
        f"/inbox/{tenant_a.slug}/c/{conversation.pk}/live/",
    ):
        response = http.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/inbox/login/?next=")
    response = http.post(f"/inbox/{tenant_a.slug}/c/{conversation.pk}/close/")
    assert response.status_code == 302 and response["Location"].startswith("/inbox/login/")
    with inside(tenant_a):
        conversation.refresh_from_db()
    assert conversation.mode == "bot"


def test_a_member_of_another_client_gets_404_everywhere_in_a(
    member, tenant_a, tenant_b, conversation
):
    http = sign_in(member("owner", client=tenant_b))
    base = f"/inbox/{tenant_a.slug}"
    for path in (
        f"{base}/",
        f"{base}/list/",
        f"{base}/c/{conversation.pk}/",
        f"{base}/c/{conversation.pk}/live/",
    ):
        response = http.get(path)
        assert response.status_code == 404, path
        assert b"Hello there" not in response.content
    for action in ("take-over", "hand-back", "close", "reply", "template"):
        response = http.post(f"{base}/c/{conversation.pk}/{action}/", {"text": "hi"})
        assert response.status_code == 404, action
    with inside(tenant_a):
        conversation.refresh_from_db()
        assert conversation.mode == "bot"
        assert not Message.objects.filter(direction="out").exists()


def test_a_conversation_of_a_is_404_inside_b(member, tenant_a, tenant_b, conversation):
    person = member("agent", client=tenant_b)
    http = sign_in(person)
    base = f"/inbox/{tenant_b.slug}/c/{conversation.pk}"
    assert http.get(f"{base}/").status_code == 404
    assert http.get(f"{base}/live/").status_code == 404
    assert http.post(f"{base}/reply/", {"text": "hi"}).status_code == 404
    # Someone in both clients sees A's conversation only under A's address.
    Membership.objects.create(user=person, client=tenant_a, role="agent")
    assert http.get(f"/inbox/{tenant_a.slug}/c/{conversation.pk}/").status_code == 200
    assert http.get(f"{base}/").status_code == 404


def test_an_unknown_client_is_404_like_a_foreign_one(as_agent):
    assert as_agent.get("/inbox/no-such-client/").status_code == 404


def test_staff_may_open_any_client_as_in_the_api(tenant_a, conversation):
    staff = StaffUserFactory()
    http = sign_in(staff)
    assert http.get(f"/inbox/{tenant_a.slug}/c/{conversation.pk}/").status_code == 200


def test_someone_in_two_clients_chooses_and_switches(member, tenant_a, tenant_b):
    person = member("agent")
    Membership.objects.create(user=person, client=tenant_b, role="admin")
    http = sign_in(person)
    chooser = http.get("/inbox/")
    assert chooser.status_code == 200
    assert set(re.findall(rb'data-client-slug="([^"]+)"', chooser.content)) == {
        tenant_a.slug.encode(),
        tenant_b.slug.encode(),
    }
    page = http.get(f"/inbox/{tenant_b.slug}/")
    assert b'id="client-switcher"' in page.content
    assert f'data-client-slug="{tenant_a.slug}"'.encode() in page.content
    # /inbox/ goes back to the client last opened.
    assert http.get("/inbox/")["Location"] == f"/inbox/{tenant_b.slug}/"


def test_a_suspended_client_is_closed_to_its_members(as_agent, tenant_a):
    tenant_a.status = "suspended"
    tenant_a.save()
    response = as_agent.get(f"/inbox/{tenant_a.slug}/")
    assert response.status_code == 403 and b"suspended" in response.content


# --- the list ---------------------------------------------------------------------------------


@pytest.fixture
def several(tenant_a, shop):
    """A bot conversation, two waiting for a person (the older wait first), a closed one."""
    now = timezone.now()
    with inside(tenant_a):
        bot = Conversation.objects.get(pk=receive(shop, wa_id="212600000001").conversation_id)
        waited_long = Conversation.objects.get(
            pk=receive(shop, "I need a person", wa_id="212600000002").conversation_id
        )
        waited_short = Conversation.objects.get(
            pk=receive(shop, "Hello?", wa_id="212600000003").conversation_id
        )
        closed = Conversation.objects.get(pk=receive(shop, wa_id="212600000004").conversation_id)
        Conversation.objects.filter(pk=waited_long.pk).update(
            mode="handoff", handoff_at=now - timedelta(minutes=42)
        )
        Conversation.objects.filter(pk=waited_short.pk).update(
            mode="handoff", handoff_at=now - timedelta(minutes=3)
        )
        Conversation.objects.filter(pk=closed.pk).update(mode="closed")
        Contact.objects.filter(pk=waited_short.contact_id).update(name="Salma Bennani")
    return {"bot": bot, "long": waited_long, "short": waited_short, "closed": closed}


def test_the_list_puts_people_waiting_first_longest_wait_first(as_agent, tenant_a, several):
    response = as_agent.get(f"/inbox/{tenant_a.slug}/")
    assert ids_in(response.content) == [several["long"].pk, several["short"].pk, several["bot"].pk]
    html = response.content.decode()
    assert re.search(r'id="handoff-count"[^>]*>2</a>', html)
    assert "waiting 42\xa0minutes" in html
    assert "window: 23 h" in html  # the customer wrote just now


def test_filters_and_search(as_agent, agent, tenant_a, several, shop):
    def listed(query):
        return ids_in(as_agent.get(f"/inbox/{tenant_a.slug}/?{query}").content)

    with inside(tenant_a):
        Conversation.objects.filter(pk=several["short"].pk).update(
            assigned_agent_email=agent.email, unread_count=0
        )
        Conversation.objects.filter(pk=several["bot"].pk).update(
            ad_source_type="ad", ad_source_id="ad-777", ad_headline="Summer sale"
        )
        Conversation.objects.exclude(pk=several["long"].pk).update(unread_count=0)
        instagram = ChannelAccountFactory(client=tenant_a, kind="instagram", external_id="1784")
        contact = Contact.objects.create(channel="instagram", external_id="igsid-1", name="Omar")
        on_instagram = Conversation.objects.create(
            contact=contact, channel_account_id=instagram.pk, channel="instagram"
        )
    assert listed("mode=handoff") == [several["long"].pk, several["short"].pk]
    assert listed("mode=closed") == [several["closed"].pk]
    assert set(listed("mode=all")) == {*(c.pk for c in several.values()), on_instagram.pk}
    assert listed("channel=instagram") == [on_instagram.pk]
    assert listed("mine=1") == [several["short"].pk]
    assert listed("ad=any") == [several["bot"].pk]
    assert listed("ad=ad-777") == [several["bot"].pk]
    assert listed("ad=ad-other") == []
    assert listed("unread=1") == [several["long"].pk]
    assert listed("q=salma") == [several["short"].pk]
    assert listed("q=600000002") == [several["long"].pk]
    assert listed("q=nobody") == []
    assert listed("mode=nonsense") == listed("")  # unknown values are ignored


def test_the_list_is_paginated_in_a_bounded_number_of_statements(
    as_agent, tenant_a, shop, django_assert_max_num_queries
):
    with inside(tenant_a):
        contact = Contact.objects.create(channel="whatsapp", external_id="1", wa_id="1")
        Conversation.objects.bulk_create(
            Conversation(contact=contact, channel_account_id=shop.pk, channel="whatsapp")
            for _ in range(60)
        )
    as_agent.get(f"/inbox/{tenant_a.slug}/")  # warm: session, search_path
    with django_assert_max_num_queries(12):
        first = as_agent.get(f"/inbox/{tenant_a.slug}/")
    assert len(ids_in(first.content)) == 50 and b'rel="next"' in first.content
    second = as_agent.get(f"/inbox/{tenant_a.slug}/?page=2")
    assert len(ids_in(second.content)) == 10
    assert not set(ids_in(first.content)) & set(ids_in(second.content))


# --- the conversation -------------------------------------------------------------------------


def test_the_conversation_shows_everything_that_happened(as_agent, tenant_a, shop, conversation):
    with inside(tenant_a):
        first = conversation.messages.get()
        Message.objects.filter(pk=first.pk).update(external_id="wamid.first")
        # An edit, a deletion, a picture, a reaction on the first message, a cited bot reply.
        edited = receive(shop, "Price of a latte?")
        Message.objects.filter(pk=edited.pk).update(
            edited_at=timezone.now(), raw={"edits": [{"previous_text": "Price of a late?"}]}
        )
        deleted = receive(shop, "oops")
        Message.objects.filter(pk=deleted.pk).update(text="", deleted_at=timezone.now())
        picture = receive(shop, "", type_="image")
        Message.objects.filter(pk=picture.pk).update(
            media_url="https://scontent.cdninstagram.com/pic.jpg", media_mime_type="image/jpeg"
        )
        Message.objects.filter(pk=picture.pk).update(media_id="m-1")
        receive(shop, "👍", type_="reaction")
        Message.objects.filter(type="reaction").update(reply_to_external_id="wamid.first")
        services.message_store_outbound(
            conversation=conversation,
            author="bot",
            text="A latte costs 20 MAD.",
            status="read",
            citations=[{"document": "Price list", "score": 0.83}],
        )
        Conversation.objects.filter(pk=conversation.pk).update(
            ad_source_type="ad", ad_source_id="ad-9", ad_headline="Latte week"
        )
    html = as_agent.get(f"/inbox/{tenant_a.slug}/c/{conversation.pk}/").content.decode()
    assert "Price of a latte?" in html and "Before: <bdi>Price of a late?</bdi>" in html
    assert "The customer deleted this message." in html and ">oops<" not in html
    assert 'href="https://scontent.cdninstagram.com/pic.jpg"' in html
    assert re.search(r'class="reactions"[^>]*>👍</p>', html)
    assert html.count('data-type="reaction"') == 0  # shown on its message, not as one
    assert "<summary>Knowledge cited (1)</summary>" in html and "Price list" in html
    assert re.search(r'class="ticks" data-status="read"[^>]*>✓✓</span>', html)
    assert "Latte week" in html and "15551234567" in html
    assert 'id="customer-language" data-language="en">English<' in html


def test_a_failed_reply_shows_why(as_agent, tenant_a, conversation):
    with inside(tenant_a):
        services.message_store_outbound(
            conversation=conversation,
            author="agent",
            text="Hello",
            status="failed",
            failure_reason="131026",
            failure_detail="Message undeliverable",
        )
    html = as_agent.get(f"/inbox/{tenant_a.slug}/c/{conversation.pk}/").content.decode()
    assert 'data-status="failed"' in html
    assert "Not delivered: <bdi>Message undeliverable</bdi>" in html


def test_a_media_link_is_never_a_script(as_agent, tenant_a, shop, conversation):
    with inside(tenant_a):
        picture = receive(shop, "", type_="image")
        Message.objects.filter(pk=picture.pk).update(media_url="javascript:alert(1)")
    html = as_agent.get(f"/inbox/{tenant_a.slug}/c/{conversation.pk}/").content.decode()
    assert "javascript:" not in html


def test_arabic_is_right_to_left(as_agent, tenant_a):
    response = as_agent.post(
        "/inbox/i18n/setlang/", {"language": "ar", "next": f"/inbox/{tenant_a.slug}/"}
    )
    assert response.status_code == 302
    html = as_agent.get(f"/inbox/{tenant_a.slug}/").content.decode()
    assert '<html lang="ar" dir="rtl">' in html
    english = sign_in_fresh_page(tenant_a)
    assert '<html lang="en" dir="ltr">' in english


def sign_in_fresh_page(tenant_a) -> str:
    return HttpClient().get("/inbox/login/").content.decode()
