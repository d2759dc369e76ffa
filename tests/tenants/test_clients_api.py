"""Clients and members: who may list, create and change what, and clean client creation."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_exists

from tenants import services
from tenants.models import Client, Domain, Invitation, Membership
from tests.tenants.factories import MembershipFactory, api_as_user, api_key_for
from tests.tenants.factories import api_with_key as api_with_key_


def client_url(client, path: str = "") -> str:
    return f"/api/v1/clients/{client.pk}" + (f"/{path}" if path else "")


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    return response.json()["error"]


pytestmark = pytest.mark.django_db


# --- listing ---------------------------------------------------------------------------------


def test_a_member_lists_only_their_own_clients(as_owner_a, tenant_a, tenant_b):
    body = as_owner_a.get("/api/v1/clients").json()

    assert body["count"] == 1
    assert [c["id"] for c in body["results"]] == [tenant_a.pk]
    assert body["next"] is None and body["previous"] is None


def test_staff_list_every_client_paginated(as_staff, tenant_a, tenant_b):
    body = as_staff.get("/api/v1/clients?page_size=1").json()

    assert body["count"] == Client.objects.count()
    assert len(body["results"]) == 1
    assert body["next"] is not None
    ids = {c["id"] for c in as_staff.get("/api/v1/clients?page_size=200").json()["results"]}
    assert {tenant_a.pk, tenant_b.pk} <= ids


def test_an_api_key_lists_only_its_own_client(tenant_a, tenant_b):
    _, raw_key = api_key_for(tenant_b, role="agent")

    body = api_with_key_(raw_key).get("/api/v1/clients").json()

    assert [c["id"] for c in body["results"]] == [tenant_b.pk]


# --- creation --------------------------------------------------------------------------------


def test_only_staff_create_clients_here(as_owner_a, tenant_a):
    _, raw_key = api_key_for(tenant_a, role="admin")
    body = {"name": "Other shop", "slug": "other-shop"}

    for api in (as_owner_a, api_with_key_(raw_key)):
        error = error_of(api.post("/api/v1/clients", body, format="json"), 403)
        assert error["code"] == "permission_denied"
        assert "/api/v1/auth/register" in error["message"]
    assert not Client.objects.filter(slug="other-shop").exists()


def test_staff_create_a_client_with_plan_limits_and_its_schema(as_staff):
    response = as_staff.post(
        "/api/v1/clients",
        {"name": "Dar Tea", "slug": "dar-tea", "api_requests_per_minute": 30, "status": "active"},
        format="json",
    )

    assert response.status_code == 201, response.content
    client = Client.objects.get(slug="dar-tea")
    assert client.api_requests_per_minute == 30
    assert schema_exists("c_dar_tea")
    assert Domain.objects.filter(tenant=client, is_primary=True).exists()
    # No one is a member yet: staff add the owner afterwards.
    assert not client.memberships.exists()


def test_staff_creating_a_client_with_a_taken_slug_get_400_naming_slug(as_staff, tenant_a):
    response = as_staff.post(
        "/api/v1/clients", {"name": "Dup", "slug": tenant_a.slug}, format="json"
    )

    assert "slug" in error_of(response, 400)["details"]


def test_a_slug_whose_schema_already_exists_is_refused_and_the_schema_is_left_alone(as_staff):
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA c_orphan_shop")
        cursor.execute("CREATE TABLE c_orphan_shop.keep_me (id int)")
    try:
        with pytest.raises(services.ValidationFailedError) as caught:
            services.client_create(name="Orphan", slug="orphan-shop")
        assert caught.value.details == {"slug": ["already exists"]}
        api_error = error_of(
            as_staff.post(
                "/api/v1/clients", {"name": "Orphan", "slug": "orphan-shop"}, format="json"
            ),
            400,
        )
        assert "slug" in api_error["details"]

        assert not Client.objects.filter(slug="orphan-shop").exists()
        # Not adopted, not dropped: the table someone left there is still there.
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('c_orphan_shop.keep_me') IS NOT NULL")
            assert cursor.fetchone()[0] is True
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA IF EXISTS c_orphan_shop CASCADE")


def test_a_failure_after_the_schema_was_made_leaves_no_client_and_no_schema(db, tenant_a):
    # The primary domain this slug would get already belongs to someone else: the last step of
    # client creation fails after the row was saved and the schema created and migrated.
    Domain.objects.create(domain="late-fail.clients.wafaa.local", tenant=tenant_a)

    with pytest.raises(IntegrityError):
        services.client_create(name="Late fail", slug="late-fail")

    assert not Client.objects.filter(slug="late-fail").exists()
    assert not schema_exists("c_late_fail")
    assert connection.schema_name == "public"


# --- updates and staff-only fields -----------------------------------------------------------


def test_owner_and_admin_change_the_bot_settings(as_owner_a, as_admin_a, tenant_a):
    first = as_owner_a.patch(client_url(tenant_a), {"bot_name": "Nour"}, format="json")
    assert first.status_code == 200, first.content
    assert first.json()["bot_name"] == "Nour"

    second = as_admin_a.patch(
        client_url(tenant_a),
        # A public address (never called here): the outbound guard resolves names at save time.
        {"languages": ["ar", "fr"], "callback_url": "https://93.184.215.14/wafaa"},
        format="json",
    )
    assert second.status_code == 200, second.content
    client = Client.objects.get(pk=tenant_a.pk)
    assert (client.bot_name, client.languages) == ("Nour", ["ar", "fr"])
    assert client.callback_url == "https://93.184.215.14/wafaa"
    # The change is visible at once to the next request (the client cache was forgotten).
    assert as_owner_a.get(client_url(tenant_a)).json()["languages"] == ["ar", "fr"]


@pytest.mark.parametrize(
    "field,value",
    [
        ("status", "suspended"),
        ("api_requests_per_minute", 100000),
        ("messages_per_day", 999999),
        ("max_documents", 99999),
        ("max_upload_bytes", 999999999),
    ],
)
def test_owners_cannot_change_staff_only_fields(as_owner_a, tenant_a, field, value):
    before = getattr(Client.objects.get(pk=tenant_a.pk), field)

    response = as_owner_a.patch(
        client_url(tenant_a), {field: value, "bot_name": "Sneaky"}, format="json"
    )

    error = error_of(response, 403)
    assert error["code"] == "permission_denied"
    assert field in error["message"]
    assert error["details"] == {field: ["staff only"]}
    client = Client.objects.get(pk=tenant_a.pk)
    assert getattr(client, field) == before
    assert client.bot_name != "Sneaky"


def test_staff_change_plan_limits_and_status(as_staff, tenant_a):
    response = as_staff.patch(
        client_url(tenant_a), {"api_requests_per_minute": 7, "status": "suspended"}, format="json"
    )

    assert response.status_code == 200, response.content
    client = Client.objects.get(pk=tenant_a.pk)
    assert (client.api_requests_per_minute, client.status) == (7, "suspended")


def test_an_agent_reads_the_client_but_cannot_change_it(as_agent_a, tenant_a):
    assert as_agent_a.get(client_url(tenant_a)).status_code == 200

    error = error_of(as_agent_a.patch(client_url(tenant_a), {"bot_name": "X"}, format="json"), 403)

    assert "'admin'" in error["message"]
    assert Client.objects.get(pk=tenant_a.pk).bot_name != "X"


def test_put_needs_the_name_and_cannot_rename_the_slug(as_owner_a, tenant_a):
    missing = as_owner_a.put(client_url(tenant_a), {"bot_name": "Nour"}, format="json")
    assert "name" in error_of(missing, 400)["details"]

    slug = as_owner_a.put(client_url(tenant_a), {"name": "New", "slug": "new"}, format="json")
    assert "slug" in error_of(slug, 400)["details"]

    ok = as_owner_a.put(client_url(tenant_a), {"name": "Renamed shop"}, format="json")
    assert ok.status_code == 200
    assert Client.objects.get(pk=tenant_a.pk).slug == tenant_a.slug


def test_a_plain_http_callback_url_is_refused(as_owner_a, tenant_a):
    response = as_owner_a.patch(
        client_url(tenant_a), {"callback_url": "http://hooks.example/x"}, format="json"
    )

    assert "https" in error_of(response, 400)["details"]["callback_url"][0]


# --- suspension ------------------------------------------------------------------------------


def test_a_suspended_client_is_403_with_a_clear_message_but_staff_still_reach_it(
    as_owner_a, as_staff, tenant_a
):
    services.client_set_status(client=tenant_a, status=Client.Status.SUSPENDED)
    _, raw_key = api_key_for(tenant_a, role="admin")

    for api in (as_owner_a, api_with_key_(raw_key)):
        error = error_of(api.get(client_url(tenant_a, "members")), 403)
        assert error["code"] == "client_suspended"
        assert "suspended" in error["message"]
        assert "support" in error["message"]

    assert as_staff.get(client_url(tenant_a, "members")).status_code == 200
    # The owner still sees the client itself, and why it does not work.
    assert as_owner_a.get(client_url(tenant_a)).json()["status"] == "suspended"

    services.client_set_status(client=tenant_a, status=Client.Status.ACTIVE)
    assert as_owner_a.get(client_url(tenant_a, "members")).status_code == 200


# --- members and roles -----------------------------------------------------------------------


def test_an_agent_cannot_list_invite_or_remove_members(as_agent_a, tenant_a, owner_a):
    other = MembershipFactory(client=tenant_a, role=Membership.Role.AGENT)

    assert error_of(as_agent_a.get(client_url(tenant_a, "members")), 403)["code"] == (
        "permission_denied"
    )
    invite = as_agent_a.post(
        client_url(tenant_a, "members"), {"email": "x@y.example"}, format="json"
    )
    assert error_of(invite, 403)["code"] == "permission_denied"
    remove = as_agent_a.delete(client_url(tenant_a, f"members/{other.pk}"))
    assert error_of(remove, 403)["code"] == "permission_denied"
    assert Membership.objects.filter(pk=other.pk).exists()
    assert not Membership.objects.filter(user__email="x@y.example").exists()
    assert not Invitation.objects.filter(email="x@y.example").exists()


def test_an_admin_lists_members_invites_and_revokes_an_invitation(
    as_admin_a, tenant_a, owner_a, django_capture_on_commit_callbacks
):
    listed = as_admin_a.get(client_url(tenant_a, "members")).json()
    assert {m["role"] for m in listed["results"]} == {"owner", "admin"}
    assert all("password" not in m["user"] for m in listed["results"])

    with django_capture_on_commit_callbacks(execute=True):
        invited = as_admin_a.post(
            client_url(tenant_a, "members"), {"email": "Helper@Shop.example"}, format="json"
        )
    assert invited.status_code == 202, invited.content
    body = invited.json()
    assert set(body) == {"id", "email", "role", "created_at", "expires_at"}
    assert (body["email"], body["role"]) == ("helper@shop.example", "agent")
    assert [m.to for m in mail.outbox] == [["helper@shop.example"]]
    assert not Membership.objects.filter(user__email="helper@shop.example").exists()

    pending = as_admin_a.get(client_url(tenant_a, "invitations")).json()
    assert [i["email"] for i in pending["results"]] == ["helper@shop.example"]

    revoked = as_admin_a.delete(client_url(tenant_a, f"invitations/{body['id']}"))
    assert revoked.status_code == 204
    assert not Invitation.objects.filter(pk=body["id"]).exists()
    again = as_admin_a.delete(client_url(tenant_a, f"invitations/{body['id']}"))
    assert error_of(again, 404)["code"] == "not_found"


def test_inviting_again_replaces_the_pending_invitation_and_a_member_is_409(
    as_owner_a, tenant_a, agent_a
):
    first = as_owner_a.post(
        client_url(tenant_a, "members"), {"email": "twice@shop.example"}, format="json"
    )
    second = as_owner_a.post(
        client_url(tenant_a, "members"),
        {"email": "twice@shop.example", "role": "admin"},
        format="json",
    )
    assert first.status_code == second.status_code == 202
    pending = Invitation.objects.get(client=tenant_a, email="twice@shop.example")
    assert (pending.pk, pending.role) == (second.json()["id"], "admin")

    member = as_owner_a.post(
        client_url(tenant_a, "members"), {"email": agent_a.email}, format="json"
    )
    assert error_of(member, 409)["code"] == "conflict"


def test_only_an_owner_invites_an_owner(as_admin_a, as_owner_a, tenant_a):
    by_admin = as_admin_a.post(
        client_url(tenant_a, "members"),
        {"email": "co@shop.example", "role": "owner"},
        format="json",
    )
    assert error_of(by_admin, 403)["code"] == "permission_denied"
    assert not Invitation.objects.filter(email="co@shop.example").exists()

    by_owner = as_owner_a.post(
        client_url(tenant_a, "members"),
        {"email": "co@shop.example", "role": "owner"},
        format="json",
    )
    assert by_owner.status_code == 202
    assert by_owner.json()["role"] == "owner"
    assert Invitation.objects.get(email="co@shop.example").role == "owner"


def test_an_admin_cannot_remove_an_owner(as_admin_a, tenant_a, owner_a):
    owner_membership = Membership.objects.get(user=owner_a, client=tenant_a)
    MembershipFactory(client=tenant_a, role=Membership.Role.OWNER)  # not the last owner

    response = as_admin_a.delete(client_url(tenant_a, f"members/{owner_membership.pk}"))

    assert error_of(response, 403)["code"] == "permission_denied"
    assert Membership.objects.filter(pk=owner_membership.pk).exists()


def test_the_last_owner_cannot_be_removed_but_one_of_two_can(as_owner_a, tenant_a, owner_a):
    mine = Membership.objects.get(user=owner_a, client=tenant_a)

    last = as_owner_a.delete(client_url(tenant_a, f"members/{mine.pk}"))
    error = error_of(last, 409)
    assert "at least one owner" in error["message"]
    assert Membership.objects.filter(pk=mine.pk).exists()

    second = MembershipFactory(client=tenant_a, role=Membership.Role.OWNER)
    assert as_owner_a.delete(client_url(tenant_a, f"members/{second.pk}")).status_code == 204
    assert list(tenant_a.memberships.filter(role="owner")) == [mine]


def test_removing_a_member_of_another_client_by_id_is_404(as_owner_a, tenant_a, tenant_b):
    theirs = MembershipFactory(client=tenant_b, role=Membership.Role.AGENT)

    response = as_owner_a.delete(client_url(tenant_a, f"members/{theirs.pk}"))

    assert error_of(response, 404)["code"] == "not_found"
    assert Membership.objects.filter(pk=theirs.pk).exists()


def test_a_removed_member_loses_access_at_once(tenant_a, owner_a, as_owner_a):
    agent = MembershipFactory(client=tenant_a, role=Membership.Role.AGENT)
    as_agent = api_as_user(agent.user, tenant_a)
    assert as_agent.get(client_url(tenant_a)).status_code == 200

    assert as_owner_a.delete(client_url(tenant_a, f"members/{agent.pk}")).status_code == 204

    # The token is still valid, but the membership behind it is gone.
    assert error_of(as_agent.get(client_url(tenant_a)), 404)["code"] == "not_found"


def _queries(api, url: str) -> int:
    api.get(url)  # warm the per-process client cache, so both counts see it warm
    with CaptureQueriesContext(connection) as queries:
        assert api.get(url).status_code == 200
    return len(queries)


def test_list_endpoints_use_a_fixed_number_of_queries(as_owner_a, owner_a, tenant_a, tenant_b):
    urls = [client_url(tenant_a, "members"), "/api/v1/clients", "/api/v1/auth/me"]
    before = [_queries(as_owner_a, url) for url in urls]

    for _ in range(5):
        MembershipFactory(client=tenant_a)
    MembershipFactory(client=tenant_b, user=owner_a)  # a second client in /clients and /me

    assert [_queries(as_owner_a, url) for url in urls] == before
