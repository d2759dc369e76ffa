"""Working a conversation in the inbox: take over, reply (through the API's outbound path to
the fake Graph API, ticks moved by status webhooks), hand back, close, templates when the
window is closed; CSRF on every action."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.management.commands.simulate_message import status_webhook_body
from conversations.models import Conversation, ConversationEvent, Message
from tests.conftest import inside
from tests.desk.conftest import sign_in
from tests.factories import WA_PHONE_ID, post_webhook


def url(client, conversation, action=""):
    return f"/inbox/{client.slug}/c/{conversation.pk}/{action + '/' if action else ''}"


def flash(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_take_over_reply_status_ticks_hand_back_close(
    as_agent,
    agent,
    tenant_a,
    conversation,
    fake_graph,
    eager_tasks,
    client,
    django_capture_on_commit_callbacks,
):
    # Take over: a handoff assigned to me, the bot quiet.
    response = as_agent.post(url(tenant_a, conversation, "take-over"))
    assert response.status_code == 302 and response["Location"] == url(tenant_a, conversation)
    with inside(tenant_a):
        conversation.refresh_from_db()
    assert conversation.mode == "handoff" and conversation.assigned_agent_email == agent.email
    page = as_agent.get(url(tenant_a, conversation)).content.decode()
    assert re.search(r'id="take-over"[^>]* disabled', page)
    assert not re.search(r'id="hand-back"[^>]* disabled', page)

    # Reply: stored queued, sent after commit by the API's send task, to the fake Graph API.
    with django_capture_on_commit_callbacks() as callbacks:
        response = as_agent.post(url(tenant_a, conversation, "reply"), {"text": "This is Sara"})
    assert response.status_code == 302
    with inside(tenant_a):
        reply = Message.objects.get(direction="out")
        assert (reply.author, reply.author_email, reply.status) == (
            "agent",
            agent.email,
            "queued",
        )
        assert ConversationEvent.objects.filter(kind="agent_reply").exists()
        with django_capture_on_commit_callbacks(execute=True):
            for callback in callbacks:
                callback()  # the send task, as the worker runs it (eager)
        reply.refresh_from_db()
    assert fake_graph.sent_texts() == ["This is Sara"]
    [send] = fake_graph.message_sends()
    assert send.json["to"] == "15551234567"
    assert reply.status == "sent" and reply.external_id

    def ticks():
        live = as_agent.get(url(tenant_a, conversation, "live")).content.decode()
        found = re.search(
            rf'data-message-id="{reply.pk}"[^>]*data-status="(\w+)".*?'
            r'<span class="ticks" data-status="(\w+)"[^>]*>([^<]*)</span>',
            live,
            re.S,
        )
        assert found, live
        assert found[1] == found[2]
        return found[1], found[3]

    assert ticks() == ("sent", "✓")
    # Meta's status webhooks move the ticks.
    for status, marks in (("delivered", "✓✓"), ("read", "✓✓")):
        body = status_webhook_body(
            phone_number_id=WA_PHONE_ID,
            message_id=reply.external_id,
            status=status,
            recipient="15551234567",
        )
        assert post_webhook(client, f"/webhook/whatsapp/{tenant_a.slug}/", body).status_code == 200
        assert ticks() == (status, marks)

    # Hand back, then close: the API's services, recorded as events by me.
    assert as_agent.post(url(tenant_a, conversation, "hand-back")).status_code == 302
    with inside(tenant_a):
        conversation.refresh_from_db()
    assert conversation.mode == "bot" and conversation.assigned_agent_email == ""
    assert as_agent.post(url(tenant_a, conversation, "close")).status_code == 302
    with inside(tenant_a):
        conversation.refresh_from_db()
        kinds = list(conversation.events.values_list("kind", "actor"))
    assert conversation.mode == "closed"
    assert [k for k in kinds if k[0] != "agent_reply"] == [
        ("handoff", agent.email),
        ("resume", agent.email),
        ("close", agent.email),
    ]
    page = as_agent.get(url(tenant_a, conversation)).content.decode()
    assert 'id="reply-form"' not in page
    assert re.search(r'id="close"[^>]* disabled', page)


def test_a_reply_failed_by_meta_shows_the_reason(
    as_agent, tenant_a, conversation, fake_graph, eager_tasks, django_capture_on_commit_callbacks
):
    fake_graph.fail_next(status=400, code=131026)  # undeliverable: no retry
    with django_capture_on_commit_callbacks() as callbacks:
        as_agent.post(url(tenant_a, conversation, "reply"), {"text": "Are you there?"})
    with inside(tenant_a), django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()
    live = as_agent.get(url(tenant_a, conversation, "live")).content.decode()
    assert re.search(r'class="ticks" data-status="failed"', live)
    assert 'class="failure">Not delivered:' in live


def test_replying_to_a_bot_conversation_takes_it_over(as_agent, agent, tenant_a, conversation):
    as_agent.post(url(tenant_a, conversation, "reply"), {"text": "Hi, a person here"})
    with inside(tenant_a):
        conversation.refresh_from_db()
    assert conversation.mode == "handoff" and conversation.assigned_agent_email == agent.email


def _waiting(tenant_a, conversation, assigned=""):
    """A conversation the customer (or the bot) handed to the people, nobody or `assigned` on it."""
    with inside(tenant_a):
        Conversation.objects.filter(pk=conversation.pk).update(
            mode="handoff", handoff_at=timezone.now(), assigned_agent_email=assigned
        )


def test_taking_over_a_waiting_conversation_assigns_it_to_me(
    as_agent, agent, tenant_a, conversation
):
    _waiting(tenant_a, conversation)
    page = as_agent.get(url(tenant_a, conversation)).content.decode()
    assert re.search(r'id="take-over"', page) and not re.search(
        r'id="take-over"[^>]* disabled', page
    )

    as_agent.post(url(tenant_a, conversation, "take-over"))
    with inside(tenant_a):
        conversation.refresh_from_db()
        event = ConversationEvent.objects.get(conversation=conversation, kind="assigned")
    assert conversation.mode == "handoff" and conversation.assigned_agent_email == agent.email
    assert (event.actor, event.detail) == (agent.email, {"previous": ""})
    mine = as_agent.get(f"/inbox/{tenant_a.slug}/", {"mine": "1"}).content.decode()
    assert f'data-conversation-id="{conversation.pk}"' in mine
    page = as_agent.get(url(tenant_a, conversation)).content.decode()
    assert re.search(r'id="take-over"[^>]* disabled', page)


def test_taking_over_from_a_colleague_reassigns_and_keeps_who_had_it(
    as_agent, agent, tenant_a, conversation
):
    _waiting(tenant_a, conversation, assigned="colleague@a.test")
    as_agent.post(url(tenant_a, conversation, "take-over"))
    with inside(tenant_a):
        conversation.refresh_from_db()
        event = ConversationEvent.objects.get(conversation=conversation, kind="assigned")
    assert conversation.assigned_agent_email == agent.email
    assert event.detail == {"previous": "colleague@a.test"}


def test_the_first_reply_to_a_waiting_conversation_assigns_it_a_later_one_does_not_steal_it(
    as_agent, agent, tenant_a, conversation
):
    _waiting(tenant_a, conversation)
    as_agent.post(url(tenant_a, conversation, "reply"), {"text": "A person here"})
    with inside(tenant_a):
        conversation.refresh_from_db()
    assert conversation.assigned_agent_email == agent.email

    _waiting(tenant_a, conversation, assigned="colleague@a.test")
    as_agent.post(url(tenant_a, conversation, "reply"), {"text": "Adding a detail"})
    with inside(tenant_a):
        conversation.refresh_from_db()
    assert conversation.assigned_agent_email == "colleague@a.test"


def test_an_empty_reply_is_refused_and_nothing_is_stored(as_agent, tenant_a, conversation):
    response = as_agent.post(url(tenant_a, conversation, "reply"), {"text": "   "}, follow=True)
    assert "Write a reply first." in flash(response)
    with inside(tenant_a):
        assert not Message.objects.filter(direction="out").exists()


def test_a_reply_to_a_closed_conversation_is_refused_with_the_reason(
    as_agent, tenant_a, conversation
):
    as_agent.post(url(tenant_a, conversation, "close"))
    response = as_agent.post(url(tenant_a, conversation, "reply"), {"text": "hello"}, follow=True)
    assert any("closed" in m for m in flash(response))
    with inside(tenant_a):
        assert not Message.objects.filter(direction="out").exists()


def test_every_action_needs_the_csrf_token(agent, tenant_a, conversation):
    http = sign_in(agent, enforce_csrf=True)
    for action in ("take-over", "hand-back", "close", "reply", "template"):
        response = http.post(url(tenant_a, conversation, action), {"text": "hi"})
        assert response.status_code == 403, action
    with inside(tenant_a):
        conversation.refresh_from_db()
        assert conversation.mode == "bot"
        assert not Message.objects.filter(direction="out").exists()
    # With the page's token it works.
    page = http.get(url(tenant_a, conversation))
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content)[1].decode()
    response = http.post(url(tenant_a, conversation, "close"), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_actions_need_post(as_agent, tenant_a, conversation):
    for action in ("take-over", "hand-back", "close", "reply", "template"):
        assert as_agent.get(url(tenant_a, conversation, action)).status_code == 405


# --- the 24-hour window -----------------------------------------------------------------------


@pytest.fixture
def window_closed(tenant_a, conversation, shop, fake_graph):
    with inside(tenant_a):
        Conversation.objects.filter(pk=conversation.pk).update(
            last_inbound_at=timezone.now() - timedelta(hours=25)
        )
    fake_graph.add_template(shop.business_account_id, "order_ready", body="Hi {{1}}, order {{2}}.")
    fake_graph.add_template(shop.business_account_id, "draft_one", status="PENDING")
    return conversation


def test_a_closed_window_offers_the_approved_templates_instead_of_text(
    as_agent, tenant_a, window_closed
):
    html = as_agent.get(url(tenant_a, window_closed)).content.decode()
    assert 'id="window-closed"' in html and 'data-window="closed"' in html
    assert 'id="reply-form"' not in html
    assert re.findall(r'data-template="([^"]+)"', html) == ["order_ready"]
    assert html.count('name="parameters"') == 2


def test_a_template_is_sent_through_the_api_service(
    as_agent,
    agent,
    tenant_a,
    window_closed,
    fake_graph,
    eager_tasks,
    django_capture_on_commit_callbacks,
):
    form = {"name": "order_ready", "language": "en", "parameters": ["Sara", "A-17"]}
    with django_capture_on_commit_callbacks() as callbacks:
        response = as_agent.post(url(tenant_a, window_closed, "template"), form, follow=True)
    assert "Template sent." in flash(response)
    with inside(tenant_a), django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()
        message = Message.objects.get(direction="out")
    assert message.type == "template" and message.text == "Hi Sara, order A-17."
    assert message.author_email == agent.email and message.status == "sent"
    [send] = fake_graph.message_sends()
    assert send.json["type"] == "template" and send.json["template"]["name"] == "order_ready"


def test_a_template_with_a_missing_parameter_is_refused(as_agent, tenant_a, window_closed):
    form = {"name": "order_ready", "language": "en", "parameters": ["Sara"]}
    response = as_agent.post(url(tenant_a, window_closed, "template"), form, follow=True)
    assert "Fill in every parameter of the template." in flash(response)
    with inside(tenant_a):
        assert not Message.objects.filter(direction="out").exists()


def test_free_text_outside_the_window_is_refused(as_agent, tenant_a, window_closed):
    response = as_agent.post(url(tenant_a, window_closed, "reply"), {"text": "hi"}, follow=True)
    assert any("24 hours" in m for m in flash(response))
    with inside(tenant_a):
        assert not Message.objects.filter(direction="out").exists()
