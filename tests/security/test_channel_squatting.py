"""Attack (issue 10, finding 11): a client connects a number that is not its own.

Client B knows A's WhatsApp phone number id (it is in every message A sends) and tries to
connect it, to block A or to learn who owns it. Meta (the fake Graph API) accepts only A's
token for that id. B gets the same refusal whether the id is taken or not, no account is
created, A's account is untouched; with a token Meta accepts, the account is connected.
"""

from __future__ import annotations

import pytest

from channels_app.models import ChannelAccount
from tenants.models import Membership
from tests.factories import WA_PHONE_ID, ChannelAccountFactory
from tests.tenants.factories import MembershipFactory, StaffUserFactory, api_as_user
from tests.test_isolation import fingerprint

A_TOKEN = "EAA-token-of-client-a-0001"
B_TOKEN = "EAA-token-of-client-b-0001"
FREE_ID = "106540352299999"


@pytest.fixture
def owner_b(tenant_b):
    user = MembershipFactory(client=tenant_b, role=Membership.Role.OWNER).user
    return api_as_user(user, tenant_b)


@pytest.fixture
def a_connected(tenant_a, fake_graph):
    fake_graph.add_account(WA_PHONE_ID, A_TOKEN, display_phone_number="+1 555-000-1111")
    return ChannelAccountFactory(client=tenant_a, external_id=WA_PHONE_ID, access_token=A_TOKEN)


def _connect(api, client, external_id, token):
    return api.post(
        f"/api/v1/clients/{client.pk}/channels",
        {
            "kind": "whatsapp",
            "external_id": external_id,
            "access_token": token,
            "app_secret": "b-app-secret-0001",
        },
        format="json",
    )


def test_b_cannot_connect_as_number_and_learns_nothing(
    owner_b, a_connected, tenant_a, tenant_b, fake_graph
):
    before = fingerprint(tenant_a)

    taken = _connect(owner_b, tenant_b, WA_PHONE_ID, B_TOKEN)
    free = _connect(owner_b, tenant_b, FREE_ID, B_TOKEN)

    assert taken.status_code == free.status_code == 400
    assert taken.json()["error"]["code"] == free.json()["error"]["code"] == "channel_access_denied"
    # The same answer as for an id nobody connected: no "already connected", no owner.
    assert taken.json()["error"]["message"] == free.json()["error"]["message"].replace(
        FREE_ID, WA_PHONE_ID
    )
    for word in ("already", tenant_a.slug, tenant_a.name):
        assert word not in taken.content.decode()
    assert not ChannelAccount.objects.filter(client=tenant_b).exists()
    assert fingerprint(tenant_a) == before
    # Meta was asked with B's token, for that id.
    lookups = [r for r in fake_graph.requests if r.method == "GET"]
    assert [r.path.rsplit("/", 1)[-1] for r in lookups] == [WA_PHONE_ID, FREE_ID]
    assert {r.headers["authorization"] for r in lookups} == {f"Bearer {B_TOKEN}"}


def test_a_token_meta_accepts_connects_the_number(owner_b, tenant_b, fake_graph):
    fake_graph.add_account(FREE_ID, B_TOKEN, display_phone_number="+1 555-000-2222")

    response = _connect(owner_b, tenant_b, FREE_ID, B_TOKEN)

    assert response.status_code == 201, response.content
    account = ChannelAccount.objects.get(client=tenant_b)
    assert account.external_id == FREE_ID and account.access_token == B_TOKEN


def test_a_proved_token_for_a_connected_number_is_a_conflict_naming_no_one(
    owner_b, a_connected, tenant_a, tenant_b, fake_graph
):
    # B holds a real token for the number (say, the business moved): only now may it learn
    # that the number is connected, and still not to whom.
    fake_graph.add_account(WA_PHONE_ID, B_TOKEN)
    response = _connect(owner_b, tenant_b, WA_PHONE_ID, B_TOKEN)
    assert response.status_code == 409
    assert tenant_a.slug not in response.content.decode()
    assert tenant_a.name not in response.content.decode()
    assert not ChannelAccount.objects.filter(client=tenant_b).exists()


def test_a_new_token_must_be_good_for_the_account(tenant_a, fake_graph):
    fake_graph.add_account(WA_PHONE_ID, A_TOKEN)
    account = ChannelAccountFactory(client=tenant_a, external_id=WA_PHONE_ID, access_token=A_TOKEN)
    owner = api_as_user(
        MembershipFactory(client=tenant_a, role=Membership.Role.OWNER).user, tenant_a
    )
    url = f"/api/v1/clients/{tenant_a.pk}/channels/{account.pk}"

    response = owner.patch(url, {"access_token": "EAA-someone-elses-token"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "channel_access_denied"
    account.refresh_from_db()
    assert account.access_token == A_TOKEN


def test_meta_unreachable_connects_nothing(owner_b, tenant_b, fake_graph):
    fake_graph.fail_next(status=500, code=2)
    response = _connect(owner_b, tenant_b, FREE_ID, B_TOKEN)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "graph_unavailable"
    assert not ChannelAccount.objects.filter(client=tenant_b).exists()


def test_staff_cannot_connect_a_number_with_a_token_meta_refuses(
    client, a_connected, tenant_b, fake_graph
):
    client.force_login(StaffUserFactory(is_superuser=True))
    form = {
        "client": tenant_b.pk,
        "kind": "whatsapp",
        "name": "",
        "external_id": FREE_ID,
        "business_account_id": "",
        "display_phone_number": "",
        "access_token": B_TOKEN,
        "app_secret": "b-app-secret-0001",
        "verify_token": "v-0001",
        "graph_api_version": "v23.0",
        "status": "active",
    }
    response = client.post("/admin/channels_app/channelaccount/add/", form)
    assert response.status_code == 200  # the form again, with the error
    assert "does not let this access token" in response.content.decode()
    assert not ChannelAccount.objects.filter(client=tenant_b).exists()

    fake_graph.add_account(FREE_ID, B_TOKEN)
    response = client.post("/admin/channels_app/channelaccount/add/", form)
    assert response.status_code == 302
    assert ChannelAccount.objects.get(client=tenant_b).external_id == FREE_ID
