"""API keys: shown once, stored hashed, scoped to one client, revocable, and their last use."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from tenants import services
from tenants.authentication import hash_api_key
from tenants.models import APIKey
from tests.tenants.factories import api_key_for, api_with_key

pytestmark = pytest.mark.django_db


def keys_url(client, key_id=None) -> str:
    return f"/api/v1/clients/{client.pk}/api-keys" + (f"/{key_id}" if key_id else "")


def test_a_key_is_shown_once_at_creation_and_only_its_hash_is_stored(as_owner_a, tenant_a):
    response = as_owner_a.post(keys_url(tenant_a), {"name": "CRM sync"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    raw_key = body["key"]
    assert raw_key.startswith(f"wfa_{body['prefix']}_")
    assert body["role"] == "admin"
    assert body["revoked_at"] is None and body["last_used_at"] is None
    stored = APIKey.objects.get(pk=body["id"])
    assert stored.client_id == tenant_a.pk
    assert stored.hashed_key == hash_api_key(raw_key)
    assert raw_key not in {
        str(value) for value in APIKey.objects.filter(pk=body["id"]).values()[0].values()
    }


def test_the_list_never_shows_a_key_or_its_hash(as_owner_a, tenant_a):
    created = as_owner_a.post(keys_url(tenant_a), {"name": "a", "role": "agent"}, format="json")
    raw_key = created.json()["key"]

    response = as_owner_a.get(keys_url(tenant_a))

    assert response.status_code == 200
    [listed] = response.json()["results"]
    assert set(listed) == {
        "id",
        "name",
        "prefix",
        "role",
        "created_at",
        "last_used_at",
        "revoked_at",
    }
    assert raw_key not in response.content.decode()
    assert hash_api_key(raw_key) not in response.content.decode()


@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_X_API_KEY"])
def test_a_key_works_for_its_own_client_in_either_header(tenant_a, header):
    _, raw_key = api_key_for(tenant_a, role="admin")
    value = f"Api-Key {raw_key}" if header == "HTTP_AUTHORIZATION" else raw_key

    response = APIClient().get(f"/api/v1/clients/{tenant_a.pk}/members", **{header: value})

    assert response.status_code == 200, response.content


def test_a_key_cannot_reach_another_client(tenant_a, tenant_b):
    _, raw_key = api_key_for(tenant_b, role="admin")

    response = api_with_key(raw_key).get(f"/api/v1/clients/{tenant_a.pk}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_revoked_key_is_401_and_revoking_twice_is_harmless(as_owner_a, tenant_a):
    api_key, raw_key = api_key_for(tenant_a)
    api = api_with_key(raw_key)
    assert api.get(f"/api/v1/clients/{tenant_a.pk}").status_code == 200

    revoked = as_owner_a.delete(keys_url(tenant_a, api_key.pk))

    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    response = api.get(f"/api/v1/clients/{tenant_a.pk}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert "revoked" in response.json()["error"]["message"]
    again = as_owner_a.delete(keys_url(tenant_a, api_key.pk))
    assert again.status_code == 200
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


def test_an_unknown_key_is_401(tenant_a):
    response = api_with_key("wfa_00000000_not-a-real-key").get(f"/api/v1/clients/{tenant_a.pk}")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_last_used_at_is_set_on_use_and_written_at_most_once_a_minute(tenant_a):
    api_key, raw_key = api_key_for(tenant_a)
    api = api_with_key(raw_key)

    api.get(f"/api/v1/clients/{tenant_a.pk}")
    api_key.refresh_from_db()
    first_use = api_key.last_used_at
    assert first_use is not None
    assert timezone.now() - first_use < timedelta(seconds=10)

    api.get(f"/api/v1/clients/{tenant_a.pk}")
    api_key.refresh_from_db()
    assert api_key.last_used_at == first_use

    APIKey.objects.filter(pk=api_key.pk).update(last_used_at=first_use - timedelta(minutes=5))
    api.get(f"/api/v1/clients/{tenant_a.pk}")
    api_key.refresh_from_db()
    assert api_key.last_used_at > first_use


def test_an_agent_key_reads_but_cannot_manage_keys_or_members(tenant_a):
    _, raw_key = api_key_for(tenant_a, role="agent")
    api = api_with_key(raw_key)

    assert api.get(f"/api/v1/clients/{tenant_a.pk}").status_code == 200
    for response in (
        api.get(keys_url(tenant_a)),
        api.post(keys_url(tenant_a), {"name": "escalate"}, format="json"),
        api.get(f"/api/v1/clients/{tenant_a.pk}/members"),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    assert APIKey.objects.filter(client=tenant_a).count() == 1


def test_an_agent_user_cannot_list_create_or_revoke_keys(as_agent_a, tenant_a):
    api_key, _ = api_key_for(tenant_a)

    assert as_agent_a.get(keys_url(tenant_a)).status_code == 403
    assert as_agent_a.post(keys_url(tenant_a), {"name": "x"}, format="json").status_code == 403
    assert as_agent_a.delete(keys_url(tenant_a, api_key.pk)).status_code == 403
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_an_admin_user_manages_keys(as_admin_a, tenant_a):
    created = as_admin_a.post(keys_url(tenant_a), {"name": "ops", "role": "agent"}, format="json")
    assert created.status_code == 201

    assert as_admin_a.get(keys_url(tenant_a)).json()["count"] == 1
    assert as_admin_a.delete(keys_url(tenant_a, created.json()["id"])).status_code == 200


def test_a_key_cannot_have_the_owner_role(as_owner_a, tenant_a):
    response = as_owner_a.post(keys_url(tenant_a), {"name": "root", "role": "owner"}, format="json")

    assert response.status_code == 400
    assert "role" in response.json()["error"]["details"]
    assert not APIKey.objects.filter(client=tenant_a).exists()


def test_revoking_another_clients_key_by_id_is_404_and_leaves_it_working(
    as_owner_a, tenant_a, tenant_b
):
    theirs, raw_key = api_key_for(tenant_b)

    response = as_owner_a.delete(keys_url(tenant_a, theirs.pk))

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert api_with_key(raw_key).get(f"/api/v1/clients/{tenant_b.pk}").status_code == 200


def test_the_key_list_uses_a_fixed_number_of_queries(as_owner_a, owner_a, tenant_a):
    def count() -> int:
        as_owner_a.get(keys_url(tenant_a))  # warm the per-process client cache
        with CaptureQueriesContext(connection) as queries:
            assert as_owner_a.get(keys_url(tenant_a)).status_code == 200
        return len(queries)

    api_key_for(tenant_a)
    few = count()
    for number in range(5):
        services.api_key_create(
            client=tenant_a, name=f"k{number}", role="agent", created_by=owner_a
        )

    assert count() == few
