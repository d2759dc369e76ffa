"""Finding 12 — callbacks were signed with an empty key until someone rotated the secret.

Every client has a Standard Webhooks secret (`whsec_` + 32 random bytes) from its creation;
callbacks carry webhook-id / webhook-timestamp / webhook-signature and verify with the
published `standardwebhooks` library and that client's secret, and with nothing else.
"""

from __future__ import annotations

import base64
import importlib
import uuid

import pytest
import requests
from django.apps import apps
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from conversations import notifications, services
from conversations.models import Conversation
from tenants.models import Client, Membership
from tests.conversations.helpers import inbound
from tests.factories import ChannelAccountFactory
from tests.fakes.callback_receiver import CallbackReceiver
from tests.tenants.factories import MembershipFactory, api_as_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    r = CallbackReceiver().start()
    yield r
    r.stop()


def _secret_bytes(secret: str) -> bytes:
    assert secret.startswith("whsec_")
    return base64.b64decode(secret.removeprefix("whsec_"), validate=True)


def test_every_client_has_its_own_signing_secret_from_the_start(tenant_a, tenant_b):
    fresh = Client(name="Fresh", slug="fresh-unsaved")  # the field's default, as on creation
    secrets = [tenant_a.callback_secret, tenant_b.callback_secret, fresh.callback_secret]

    assert all(len(_secret_bytes(secret)) == 32 for secret in secrets)
    assert len(set(secrets)) == 3


def test_a_client_without_a_secret_gets_one_when_its_callback_url_is_first_set(tenant_a):
    Client.objects.filter(pk=tenant_a.pk).update(callback_secret="", callback_url="")
    owner = MembershipFactory(client=tenant_a, role=Membership.Role.OWNER).user

    response = api_as_user(owner, tenant_a).patch(
        f"/api/v1/clients/{tenant_a.pk}", {"callback_url": "https://93.184.215.14/hooks"}, "json"
    )

    assert response.status_code == 200, response.content
    assert "callback_secret" not in response.json()
    assert len(_secret_bytes(Client.objects.get(pk=tenant_a.pk).callback_secret)) == 32


def test_the_migration_gives_empty_and_old_style_secrets_a_standard_one(tenant_a, tenant_b):
    migration = importlib.import_module("tenants.migrations.0003_callback_secret_and_url_guard")
    Client.objects.filter(pk=tenant_a.pk).update(callback_secret="")
    Client.objects.filter(pk=tenant_b.pk).update(callback_secret="Old-style_token-urlsafe-0123")
    kept = Client.objects.exclude(pk__in=[tenant_a.pk, tenant_b.pk]).values_list(
        "pk", "callback_secret"
    )
    kept = dict(kept)

    migration.give_every_client_a_signing_secret(apps, None)

    for client in Client.objects.filter(pk__in=[tenant_a.pk, tenant_b.pk]):
        assert len(_secret_bytes(client.callback_secret)) == 32
    for pk, secret in kept.items():  # already standard: unchanged
        assert Client.objects.get(pk=pk).callback_secret == secret


@pytest.mark.parametrize("secret", ["", "not-a-standard-secret"])
def test_a_client_with_no_valid_secret_sends_nothing_unsigned(tenant_a, receiver, secret):
    client = Client.objects.get(pk=tenant_a.pk)
    client.callback_url = receiver.url
    client.callback_secret = secret

    status = notifications.deliver(
        client=client, webhook_id=f"msg_{uuid.uuid4().hex}", payload={"event": "handoff"}
    )

    assert status is None
    assert receiver.connections == 0


def test_a_callback_verifies_with_the_published_library_and_only_with_its_clients_secret(
    in_tenant_a, tenant_b, receiver, eager_tasks, django_capture_on_commit_callbacks
):
    in_tenant_a.callback_url = receiver.url
    account = ChannelAccountFactory(client=in_tenant_a, external_id="106540352288001")
    first, _ = services.message_receive(
        account=account, inbound=inbound("hello", phone_id=account.external_id)
    )
    Conversation.objects.filter(pk=first.conversation_id).update(mode="handoff")
    with django_capture_on_commit_callbacks(execute=True):
        services.message_receive(
            account=account, inbound=inbound("Is my parcel late?", phone_id=account.external_id)
        )
    [request] = receiver.wait_for(1)

    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        assert request.headers[name]
    body = Webhook(in_tenant_a.callback_secret).verify(request.body, request.headers)
    assert body["event"] == "customer_message"
    assert body["data"]["text"] == "Is my parcel late?"

    with pytest.raises(WebhookVerificationError):
        Webhook(tenant_b.callback_secret).verify(request.body, request.headers)
    tampered = request.body.replace(b"late", b"lost")
    with pytest.raises(WebhookVerificationError):
        Webhook(in_tenant_a.callback_secret).verify(tampered, request.headers)
    replayed = {
        **request.headers,
        "webhook-timestamp": str(int(request.headers["webhook-timestamp"]) - 3600),
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(in_tenant_a.callback_secret).verify(request.body, replayed)


def test_a_retried_event_keeps_its_webhook_id_so_the_receiver_can_deduplicate(tenant_a, receiver):
    client = Client.objects.get(pk=tenant_a.pk)
    client.callback_url = receiver.url
    webhook_id = f"msg_{uuid.uuid4().hex}"
    receiver.status = 503
    with pytest.raises(requests.HTTPError):  # the task retries
        notifications.deliver(client=client, webhook_id=webhook_id, payload={"event": "handoff"})
    receiver.status = 200
    notifications.deliver(client=client, webhook_id=webhook_id, payload={"event": "handoff"})

    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == webhook_id
    for request in (first, second):
        Webhook(client.callback_secret).verify(request.body, request.headers)


def test_rotating_the_secret_makes_old_signatures_fail(tenant_a, receiver):
    from tenants.services import callback_secret_rotate

    client = Client.objects.get(pk=tenant_a.pk)
    client.callback_url = receiver.url
    notifications.deliver(
        client=client, webhook_id=f"msg_{uuid.uuid4().hex}", payload={"event": "handoff"}
    )
    old_secret = client.callback_secret

    new_secret = callback_secret_rotate(client=client)

    [request] = receiver.wait_for(1)
    assert new_secret != old_secret and len(_secret_bytes(new_secret)) == 32
    Webhook(old_secret).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret).verify(request.body, request.headers)
