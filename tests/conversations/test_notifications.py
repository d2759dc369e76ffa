"""Signed callbacks to a client's own endpoint (a real local HTTP server)."""

from __future__ import annotations

import uuid

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from conversations import notifications, services
from tenants.models import new_callback_secret
from tests.fakes.callback_receiver import CallbackReceiver


@pytest.fixture
def receiver():
    r = CallbackReceiver().start()
    yield r
    r.stop()


def deliver(client, payload):
    return notifications.deliver(
        client=client, webhook_id=f"msg_{uuid.uuid4().hex}", payload=payload
    )


def test_event_is_posted_with_a_standard_webhooks_signature(tenant_a, receiver):
    tenant_a.callback_url = receiver.url
    tenant_a.callback_secret = new_callback_secret()
    payload = {"event": "handoff", "conversation_id": 7, "data": {"reason": "customer_asked"}}
    assert deliver(tenant_a, payload) == 200
    [request] = receiver.requests
    assert Webhook(tenant_a.callback_secret).verify(request.body, request.headers) == payload
    assert request.headers["webhook-id"].startswith("msg_")
    assert request.headers["X-Wafaa-Event"] == "handoff"


def test_a_5xx_from_the_endpoint_raises_so_the_task_retries(tenant_a, receiver):
    receiver.status = 503
    tenant_a.callback_url = receiver.url
    with pytest.raises(requests.HTTPError):
        deliver(tenant_a, {"event": "handoff"})


def test_a_4xx_is_not_retried(tenant_a, receiver):
    receiver.status = 410
    tenant_a.callback_url = receiver.url
    assert deliver(tenant_a, {"event": "handoff"}) == 410


def test_a_customer_message_in_handoff_is_delivered_with_its_text_read_at_delivery(
    in_tenant_a, receiver, eager_tasks, django_capture_on_commit_callbacks
):
    from conversations.models import Conversation
    from tests.conversations.helpers import inbound
    from tests.factories import ChannelAccountFactory

    in_tenant_a.callback_url = receiver.url
    account = ChannelAccountFactory(client=in_tenant_a, external_id="106540352299001")
    first, _ = services.message_receive(
        account=account, inbound=inbound("hello", phone_id=account.external_id)
    )
    Conversation.objects.filter(pk=first.conversation_id).update(mode="handoff")
    with django_capture_on_commit_callbacks(execute=True):
        message, _ = services.message_receive(
            account=account, inbound=inbound("Where is my order 4711?", phone_id="106540352299001")
        )
    [request] = receiver.wait_for(1)
    body = Webhook(in_tenant_a.callback_secret).verify(request.body, request.headers)
    assert body["event"] == "customer_message" and body["mode"] == "handoff"
    assert body["data"] == {
        "message_id": message.pk,
        "type": "text",
        "text": "Where is my order 4711?",
    }


def test_notification_data_with_a_text_is_refused(in_tenant_a, receiver):
    from conversations.models import Conversation

    in_tenant_a.callback_url = receiver.url
    with pytest.raises(ValueError, match="ids and codes only"):
        notifications.notify(
            conversation=Conversation(pk=1, mode="handoff"),
            event="handoff",
            data={"reason": "customer_asked", "last_customer_message": "my IBAN is ..."},
        )


def test_callback_secret_is_rotated_and_shown_once(api, tenant_a):
    from django.contrib.auth import get_user_model

    from tenants.models import Client, Membership

    owner = get_user_model().objects.create_user(
        "cb-owner@example.com", "cb-owner@example.com", "pw-123456789"
    )
    Membership.objects.create(user=owner, client=tenant_a, role="owner")
    api.force_authenticate(owner)
    first = api.post(f"/api/v1/clients/{tenant_a.pk}/callback-secret").json()["callback_secret"]
    second = api.post(f"/api/v1/clients/{tenant_a.pk}/callback-secret").json()["callback_secret"]
    assert first != second and len(second) > 30
    assert Client.objects.get(pk=tenant_a.pk).callback_secret == second
    assert "callback_secret" not in api.get(f"/api/v1/clients/{tenant_a.pk}").json()
