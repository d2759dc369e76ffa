"""Conversations, contacts, usage and channel accounts APIs."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import services
from conversations.models import Conversation, Message
from tenants.models import Membership
from tests.conftest import inside
from tests.conversations.helpers import inbound
from tests.factories import ChannelAccountFactory


@pytest.fixture
def agent(tenant_a):
    user = get_user_model().objects.create_user(
        "agent-a@example.com", "agent-a@example.com", "pw-123456789"
    )
    Membership.objects.create(user=user, client=tenant_a, role="agent")
    return user


@pytest.fixture
def as_agent(api, agent):
    api.force_authenticate(agent)
    return api


@pytest.fixture
def conversation(tenant_a):
    account = ChannelAccountFactory(client=tenant_a)
    with inside(tenant_a):
        message, _ = services.message_receive(account=account, inbound=inbound("Hello there"))
        return Conversation.objects.get(pk=message.conversation_id)


def url(client, path=""):
    return f"/api/v1/clients/{client.pk}/{path}"


def test_list_conversations_newest_first_with_filters(as_agent, tenant_a, conversation):
    with inside(tenant_a):
        other = Conversation.objects.create(
            contact=conversation.contact, channel_account_id=1, channel="instagram", mode="handoff"
        )
    body = as_agent.get(url(tenant_a, "conversations")).json()
    assert [c["id"] for c in body["results"]] == [other.pk, conversation.pk]
    assert [
        c["id"] for c in as_agent.get(url(tenant_a, "conversations?mode=handoff")).json()["results"]
    ] == [other.pk]
    assert [
        c["id"]
        for c in as_agent.get(url(tenant_a, "conversations?channel=whatsapp")).json()["results"]
    ] == [conversation.pk]
    assert as_agent.get(url(tenant_a, "conversations?mode=nope")).status_code == 400


def test_conversation_list_query_count_does_not_grow_with_rows(as_agent, tenant_a, conversation):
    def count():
        with CaptureQueriesContext(connection) as queries:
            assert as_agent.get(url(tenant_a, "conversations")).status_code == 200
        return len(queries)

    count()  # warm: the first request also sets up the connection's search_path
    few = count()
    with inside(tenant_a):
        for _ in range(5):
            Conversation.objects.create(
                contact=conversation.contact, channel_account_id=1, channel="whatsapp"
            )
    assert count() == few


def test_conversation_detail_has_messages_with_citations(as_agent, tenant_a, conversation):
    with inside(tenant_a):
        services.message_store_outbound(
            conversation=conversation,
            author="bot",
            text="Hi!",
            citations=[{"chunk_id": 1, "document": "FAQ", "score": 0.5}],
        )
    body = as_agent.get(url(tenant_a, f"conversations/{conversation.pk}")).json()
    assert [m["text"] for m in body["messages"]] == ["Hello there", "Hi!"]
    assert body["messages"][1]["citations"][0]["document"] == "FAQ"


def test_unknown_conversation_is_404_in_the_envelope(as_agent, tenant_a, db):
    response = as_agent.get(url(tenant_a, "conversations/999999"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_handoff_resume_close_are_recorded(as_agent, tenant_a, conversation, agent):
    base = url(tenant_a, f"conversations/{conversation.pk}")
    assert as_agent.post(f"{base}/handoff").json()["mode"] == "handoff"
    assert as_agent.post(f"{base}/resume").json()["mode"] == "bot"
    assert as_agent.post(f"{base}/close").json()["mode"] == "closed"
    with inside(tenant_a):
        events = list(conversation.events.values_list("kind", "actor"))
    assert events == [("handoff", agent.email), ("resume", agent.email), ("close", agent.email)]


def test_agent_reply_to_a_closed_conversation_is_409(as_agent, tenant_a, conversation):
    base = url(tenant_a, f"conversations/{conversation.pk}")
    as_agent.post(f"{base}/close")
    response = as_agent.post(f"{base}/messages", {"text": "hello"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conversation_closed"


def test_agent_reply_outside_the_24_hour_window_is_refused(as_agent, tenant_a, conversation):
    from datetime import timedelta

    from django.utils import timezone

    with inside(tenant_a):
        Conversation.objects.filter(pk=conversation.pk).update(
            last_inbound_at=timezone.now() - timedelta(hours=25)
        )
    response = as_agent.post(
        url(tenant_a, f"conversations/{conversation.pk}/messages"), {"text": "hello"}, format="json"
    )
    assert response.status_code == 422
    assert "24 hours" in response.json()["error"]["message"]


def test_agent_reply_is_stored_queued_and_takes_over(
    as_agent, tenant_a, conversation, agent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = as_agent.post(
            url(tenant_a, f"conversations/{conversation.pk}/messages"),
            {"text": "This is Sara"},
            format="json",
        )
    assert response.status_code == 201
    assert response.json()["author"] == "agent" and response.json()["status"] == "queued"
    assert len(callbacks) == 1  # the send task, after commit
    with inside(tenant_a):
        conversation.refresh_from_db()
    assert conversation.mode == "handoff" and conversation.assigned_agent_email == agent.email


def test_empty_agent_reply_is_400(as_agent, tenant_a, conversation):
    response = as_agent.post(
        url(tenant_a, f"conversations/{conversation.pk}/messages"), {"text": "  "}, format="json"
    )
    assert response.status_code == 400
    assert "text" in response.json()["error"]["details"]


def test_contacts_list_and_detail(as_agent, tenant_a, conversation):
    body = as_agent.get(url(tenant_a, "contacts")).json()
    assert body["results"][0]["wa_id"] == "15551234567"
    assert as_agent.get(url(tenant_a, f"contacts/{conversation.contact_id}")).status_code == 200
    assert as_agent.get(url(tenant_a, "contacts/999999")).status_code == 404


def test_usage_counts_messages(as_agent, tenant_a, conversation):
    body = as_agent.get(url(tenant_a, "usage")).json()
    assert body["totals"]["messages_in"] >= 1
    assert as_agent.get(url(tenant_a, "usage?from=2026-01-10&to=2026-01-01")).status_code == 400
    assert as_agent.get(url(tenant_a, "usage?from=notadate")).status_code == 400


def test_channel_accounts_hide_secrets_and_need_admin(api, as_agent, tenant_a, fake_graph):
    fake_graph.add_account("123456789012345", "EAAsecret-token-value")  # Meta accepts the token
    owner = get_user_model().objects.create_user(
        "owner-a@example.com", "owner-a@example.com", "pw-123456789"
    )
    Membership.objects.create(user=owner, client=tenant_a, role="owner")
    payload = {
        "kind": "whatsapp",
        "external_id": "123456789012345",
        "access_token": "EAAsecret-token-value",
        "app_secret": "app-secret-value",
    }
    assert as_agent.post(url(tenant_a, "channels"), payload, format="json").status_code == 403
    api.force_authenticate(owner)
    response = api.post(url(tenant_a, "channels"), payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert "access_token" not in body and "app_secret" not in body
    assert body["webhook_path"] == "/webhook/whatsapp/test-a/" and body["verify_token"]
    assert api.post(url(tenant_a, "channels"), payload, format="json").status_code == 409
    listed = api.get(url(tenant_a, "channels")).json()["results"]
    assert "EAAsecret" not in str(listed)
    detail = url(tenant_a, f"channels/{body['id']}")
    assert api.patch(detail, {"status": "inactive"}, format="json").json()["status"] == "inactive"
    assert api.delete(detail).status_code == 204


def test_stored_secrets_are_encrypted_at_rest(tenant_a):
    account = ChannelAccountFactory(client=tenant_a, access_token="EAAplain-token-123")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token, app_secret FROM channels_app_channelaccount WHERE id = %s",
            [account.pk],
        )
        token, secret = cursor.fetchone()
    assert "EAAplain" not in token and secret != account.app_secret
    account.refresh_from_db()
    assert account.access_token == "EAAplain-token-123"


def test_taking_over_a_waiting_conversation_claims_it_and_resume_leaves_it_nobodys(
    as_agent, tenant_a, conversation, agent
):
    with inside(tenant_a):
        Conversation.objects.filter(pk=conversation.pk).update(
            mode="handoff", assigned_agent_email="colleague@a.test"
        )
    base = url(tenant_a, f"conversations/{conversation.pk}")
    assert as_agent.post(f"{base}/handoff").status_code == 200
    with inside(tenant_a):
        conversation.refresh_from_db()
        event = conversation.events.get(kind="assigned")
    assert conversation.assigned_agent_email == agent.email
    assert (event.actor, event.detail) == (agent.email, {"previous": "colleague@a.test"})
    as_agent.post(f"{base}/resume")
    with inside(tenant_a):
        conversation.refresh_from_db()
    assert (conversation.mode, conversation.assigned_agent_email) == ("bot", "")


def test_marking_a_conversation_read_and_another_clients_cannot(
    as_agent, tenant_a, tenant_b, conversation
):
    from rest_framework.test import APIClient

    with inside(tenant_a):
        Conversation.objects.filter(pk=conversation.pk).update(unread_count=3)
    base = url(tenant_a, f"conversations/{conversation.pk}")
    user_b = get_user_model().objects.create_user("agent-b@example.com", "agent-b@example.com")
    Membership.objects.create(user=user_b, client=tenant_b, role="owner")
    outsider = APIClient()
    outsider.force_authenticate(user_b)
    assert outsider.post(f"{base}/read").status_code == 404
    assert outsider.post(url(tenant_b, f"conversations/{conversation.pk}/read")).status_code == 404
    with inside(tenant_a):
        assert Conversation.objects.get(pk=conversation.pk).unread_count == 3
    response = as_agent.post(f"{base}/read")
    assert response.status_code == 200 and response.json()["unread_count"] == 0


def test_messages_in_handoff_are_stored_silently_and_notified(
    tenant_a, django_capture_on_commit_callbacks
):
    tenant_a.callback_url = "https://helpdesk.example/hook"
    tenant_a.callback_secret = "cb-secret"
    tenant_a.save()
    account = ChannelAccountFactory(client=tenant_a, external_id="5550001")
    with inside(tenant_a):
        first, _ = services.message_receive(
            account=account, inbound=inbound("hi", phone_id="5550001")
        )
        Conversation.objects.filter(pk=first.conversation_id).update(mode="handoff")
        with django_capture_on_commit_callbacks() as callbacks:
            second, _ = services.message_receive(
                account=account, inbound=inbound("still there?", phone_id="5550001")
            )
    assert second.status == Message.Status.STORED
    assert len(callbacks) == 1  # the signed notification, sent after commit; no reply task
