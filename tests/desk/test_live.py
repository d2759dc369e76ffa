"""The live polls: "nothing changed" is a cheap 204, a change returns the fragment drawn anew
(new messages, status ticks, the waiting-for-a-person badge)."""

from __future__ import annotations

import html as html_lib
import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations.management.commands.simulate_message import status_webhook_body
from conversations.models import Conversation, Message
from tests.conftest import inside
from tests.desk.conftest import receive
from tests.factories import WA_PHONE_ID, post_webhook

POLL = re.compile(r'hx-get="([^"]+)" hx-trigger="every 2s"')


def poll_url(html: bytes | str) -> str:
    text = html.decode() if isinstance(html, bytes) else html
    return html_lib.unescape(POLL.search(text)[1])


def settled_poll(http, page_url):
    """The poll URL of a freshly drawn page, answered 204 (drawn again if a minute turned
    between the page and the poll: the stamp moves once a minute on purpose)."""
    url = poll_url(http.get(page_url).content)
    for _ in range(2):
        response = http.get(url)
        if response.status_code == 204:
            return url
        url = poll_url(response.content)
    raise AssertionError("the poll never settled")


def test_the_list_poll_answers_204_cheaply_until_something_changes(
    as_agent, tenant_a, conversation, shop
):
    url = settled_poll(as_agent, f"/inbox/{tenant_a.slug}/")
    with CaptureQueriesContext(connection) as queries:
        response = as_agent.get(url)
    assert response.status_code == 204 and response.content == b""
    # The session, the user, the membership, the stamp (the client is cached for a few
    # seconds, as for the API) and the two search_path switches: nothing else.
    assert len(queries) <= 6, [q["sql"] for q in queries]

    with inside(tenant_a):
        newcomer = receive(shop, "Salam", wa_id="212611111111")
    changed = as_agent.get(url)
    assert changed.status_code == 200
    assert f'data-conversation-id="{newcomer.conversation_id}"'.encode() in changed.content
    assert poll_url(changed.content) != url  # the next poll compares with the new stamp
    assert as_agent.get(poll_url(changed.content)).status_code == 204


def test_a_new_handoff_raises_the_badge_through_the_poll(as_agent, tenant_a, conversation):
    url = settled_poll(as_agent, f"/inbox/{tenant_a.slug}/")
    with inside(tenant_a):
        Conversation.objects.filter(pk=conversation.pk).update(mode="handoff")
    response = as_agent.get(url)
    assert response.status_code == 200
    badge = re.search(
        rb'<a id="handoff-count"[^>]*hx-swap-oob="true"[^>]*>(\d+)</a>', response.content
    )
    assert badge and badge[1] == b"1"
    assert b'data-mode="handoff"' in response.content


def test_the_list_poll_keeps_the_filters(as_agent, tenant_a, conversation):
    page = as_agent.get(f"/inbox/{tenant_a.slug}/?mode=handoff&q=nobody")
    url = poll_url(page.content)
    assert "mode=handoff" in url and "q=nobody" in url


def test_the_conversation_poll_brings_new_messages_and_statuses(
    as_agent, tenant_a, conversation, shop, client
):
    page_url = f"/inbox/{tenant_a.slug}/c/{conversation.pk}/"
    url = settled_poll(as_agent, page_url)
    with CaptureQueriesContext(connection) as queries:
        assert as_agent.get(url).status_code == 204
    assert len(queries) <= 6, [q["sql"] for q in queries]

    with inside(tenant_a):
        receive(shop, "Are you open on Friday?")
    response = as_agent.get(url)
    assert response.status_code == 200 and b"Are you open on Friday?" in response.content
    assert b'id="conversation-live"' in response.content

    url = poll_url(response.content)
    assert as_agent.get(url).status_code == 204
    with inside(tenant_a):
        reply = Message.objects.create(
            conversation=conversation,
            direction="out",
            author="agent",
            text="Yes",
            status="sent",
            external_id="wamid.desk-live-1",
        )
    url = poll_url(as_agent.get(url).content)
    assert as_agent.get(url).status_code == 204
    # A delivery status touches only the message, through Meta's webhook.
    body = status_webhook_body(
        phone_number_id=WA_PHONE_ID,
        message_id=reply.external_id,
        status="delivered",
        recipient="15551234567",
    )
    assert post_webhook(client, f"/webhook/whatsapp/{tenant_a.slug}/", body).status_code == 200
    response = as_agent.get(url)
    assert response.status_code == 200
    assert re.search(rb'class="ticks" data-status="delivered"', response.content)


def test_opening_a_conversation_reads_it_and_its_poll_reads_what_arrives(
    as_agent, tenant_a, conversation, shop
):
    def unread():
        with inside(tenant_a):
            return Conversation.objects.get(pk=conversation.pk).unread_count

    assert unread() == 1  # the customer's first message
    page_url = f"/inbox/{tenant_a.slug}/c/{conversation.pk}/"
    url = settled_poll(as_agent, page_url)
    assert unread() == 0
    listed = as_agent.get(f"/inbox/{tenant_a.slug}/", {"unread": "1"}).content
    assert f'data-conversation-id="{conversation.pk}"'.encode() not in listed

    with inside(tenant_a):
        receive(shop, "One more thing")
    assert unread() == 1
    response = as_agent.get(url)  # drawn on the agent's open page: seen
    assert response.status_code == 200 and b"One more thing" in response.content
    assert unread() == 0
    assert as_agent.get(poll_url(response.content)).status_code == 204


def test_the_conversation_poll_of_another_clients_id_is_404(
    member, tenant_a, tenant_b, conversation
):
    from tests.desk.conftest import sign_in

    http = sign_in(member("agent", client=tenant_b))
    assert http.get(f"/inbox/{tenant_b.slug}/c/{conversation.pk}/live/").status_code == 404


def test_a_poll_after_the_session_ended_sends_the_whole_page_to_login(tenant_a, conversation):
    from django.test import Client as HttpClient

    page = f"/inbox/{tenant_a.slug}/c/{conversation.pk}/"
    response = HttpClient().get(
        f"{page}live/?since=x",
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL=f"http://testserver{page}",
    )
    assert response.status_code == 204
    assert response["HX-Redirect"] == f"/inbox/login/?next={page}"
