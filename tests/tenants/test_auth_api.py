"""Sign-up, login, tokens, /auth/me and the invited user's set-password flow."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django_tenants.utils import schema_exists
from rest_framework_simplejwt.tokens import AccessToken

from tenants.models import Client, Membership
from tests.tenants.factories import (
    PASSWORD,
    UserFactory,
    api_as,
    api_key_for,
    api_with_key,
    jwt_for,
)

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"
SET_PASSWORD = "/api/v1/auth/set-password"

pytestmark = pytest.mark.django_db


def register_body(**overrides) -> dict:
    body = {
        "email": "founder@cafe.example",
        "password": "a-long-unusual-passphrase",
        "name": "Salma",
        "client_name": "Cafe Atlas",
        "client_slug": "cafe-atlas",
    }
    body.update(overrides)
    return body


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response["X-Request-ID"]
    return error


def test_register_returns_tokens_and_makes_the_user_owner_of_a_new_client_with_its_schema(api):
    response = api.post(REGISTER, register_body(), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    client = Client.objects.get(slug="cafe-atlas")
    assert body["client_id"] == client.pk
    assert body["client"]["slug"] == "cafe-atlas"
    assert body["client"]["status"] == "active"
    assert body["access"] and body["refresh"]
    user = get_user_model().objects.get(email="founder@cafe.example")
    assert Membership.objects.get(user=user, client=client).role == Membership.Role.OWNER
    assert client.schema_name == "c_cafe_atlas"
    assert schema_exists(client.schema_name)
    # The access token works at once, for the new client.
    me = api_as(body["access"]).get(f"/api/v1/clients/{client.pk}")
    assert me.status_code == 200
    assert me.json()["name"] == "Cafe Atlas"


def test_register_with_a_taken_email_is_400_naming_email_and_creates_no_client(api):
    UserFactory(email="founder@cafe.example", username="founder@cafe.example")

    response = api.post(REGISTER, register_body(email="Founder@Cafe.example"), format="json")

    error = assert_envelope(response, 400, "validation_error")
    assert "email" in error["details"]
    assert not Client.objects.filter(slug="cafe-atlas").exists()
    assert not schema_exists("c_cafe_atlas")


def test_register_with_a_taken_slug_is_400_naming_slug_and_creates_no_user(api, tenant_a):
    response = api.post(REGISTER, register_body(client_slug=tenant_a.slug), format="json")

    error = assert_envelope(response, 400, "validation_error")
    assert "slug" in error["details"]
    assert tenant_a.slug in error["message"]
    assert not get_user_model().objects.filter(email="founder@cafe.example").exists()


def test_register_with_an_invalid_slug_or_weak_password_names_the_field(api):
    bad_slug = api.post(REGISTER, register_body(client_slug="Cafe Atlas!"), format="json")
    assert "slug" in assert_envelope(bad_slug, 400, "validation_error")["details"]

    weak = api.post(REGISTER, register_body(password="password123"), format="json")
    error = assert_envelope(weak, 400, "validation_error")
    assert "password" in error["details"]
    assert not get_user_model().objects.filter(email="founder@cafe.example").exists()
    assert not Client.objects.filter(slug="cafe-atlas").exists()


def test_login_with_a_wrong_password_or_unknown_email_is_the_same_401(api, tenant_a):
    user = UserFactory()

    wrong = api.post(LOGIN, {"email": user.email, "password": "not-it-at-all"}, format="json")
    unknown = api.post(LOGIN, {"email": "nobody@x.example", "password": PASSWORD}, format="json")

    for response in (wrong, unknown):
        assert_envelope(response, 401, "authentication_failed")
        assert "access" not in response.json()
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


def test_login_with_one_membership_binds_the_token_to_that_client(api, tenant_a):
    user = UserFactory()
    Membership.objects.create(user=user, client=tenant_a, role=Membership.Role.AGENT)

    response = api.post(LOGIN, {"email": user.email.upper(), "password": PASSWORD}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["client_id"] == tenant_a.pk
    assert AccessToken(response.json()["access"])["client_id"] == tenant_a.pk


def test_login_for_a_client_the_user_is_not_a_member_of_is_403(api, tenant_a, tenant_b):
    user = UserFactory()
    Membership.objects.create(user=user, client=tenant_a, role=Membership.Role.OWNER)

    response = api.post(
        LOGIN, {"email": user.email, "password": PASSWORD, "client": tenant_b.pk}, format="json"
    )

    assert_envelope(response, 403, "permission_denied")


def test_a_token_bound_to_one_client_cannot_reach_another_client_of_the_same_user(
    tenant_a, tenant_b
):
    user = UserFactory()
    Membership.objects.create(user=user, client=tenant_a, role=Membership.Role.OWNER)
    Membership.objects.create(user=user, client=tenant_b, role=Membership.Role.OWNER)
    api = api_as(jwt_for(user, tenant_a))

    assert api.get(f"/api/v1/clients/{tenant_a.pk}").status_code == 200
    assert_envelope(api.get(f"/api/v1/clients/{tenant_b.pk}"), 404, "not_found")


def test_no_credentials_is_401_with_a_www_authenticate_header(api, tenant_a):
    response = api.get(f"/api/v1/clients/{tenant_a.pk}")

    assert_envelope(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_access_token_is_401(tenant_a):
    user = UserFactory()
    Membership.objects.create(user=user, client=tenant_a, role=Membership.Role.OWNER)
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))

    response = api_as(str(token)).get(f"/api/v1/clients/{tenant_a.pk}")

    error = assert_envelope(response, 401, "authentication_failed")
    assert "expired" in error["message"]


def test_a_tampered_access_token_is_401(tenant_a, tenant_b):
    user = UserFactory()
    Membership.objects.create(user=user, client=tenant_a, role=Membership.Role.OWNER)
    header, payload, signature = jwt_for(user, tenant_a).split(".")
    # Flip a character of the signature, and separately sign nothing but claim another client.
    forged_signature = ("A" if signature[0] != "A" else "B") + signature[1:]
    forged_claims = AccessToken.for_user(user)
    forged_claims["client_id"] = tenant_b.pk
    _, other_payload, _ = str(forged_claims).split(".")

    for token in (
        f"{header}.{payload}.{forged_signature}",
        f"{header}.{other_payload}.{signature}",
    ):
        response = api_as(token).get(f"/api/v1/clients/{tenant_a.pk}")
        assert_envelope(response, 401, "authentication_failed")


def test_a_deactivated_user_token_is_refused(tenant_a):
    user = UserFactory()
    Membership.objects.create(user=user, client=tenant_a, role=Membership.Role.OWNER)
    api = api_as(jwt_for(user, tenant_a))
    user.is_active = False
    user.save(update_fields=["is_active"])

    assert_envelope(api.get(f"/api/v1/clients/{tenant_a.pk}"), 401, "authentication_failed")


def test_refresh_gives_a_working_access_token_for_the_same_client(api, tenant_a):
    user = UserFactory()
    Membership.objects.create(user=user, client=tenant_a, role=Membership.Role.ADMIN)
    tokens = api.post(LOGIN, {"email": user.email, "password": PASSWORD}, format="json").json()

    response = api.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["client_id"] == tenant_a.pk
    assert api_as(body["access"]).get(f"/api/v1/clients/{tenant_a.pk}").status_code == 200


def test_refresh_refuses_garbage_and_access_tokens(api, tenant_a):
    user = UserFactory()
    access = jwt_for(user)

    for token in ("not-a-token", access):
        response = api.post(REFRESH, {"refresh": token}, format="json")
        assert_envelope(response, 401, "authentication_failed")


def test_me_shows_the_user_and_their_memberships(tenant_a):
    user = UserFactory(first_name="Amal")
    Membership.objects.create(user=user, client=tenant_a, role=Membership.Role.ADMIN)

    body = api_as(jwt_for(user)).get(ME).json()

    assert body["user"]["email"] == user.email
    assert body["user"]["name"] == "Amal"
    assert body["client_id"] == tenant_a.pk
    assert [(m["role"], m["client"]["id"]) for m in body["memberships"]] == [("admin", tenant_a.pk)]


def test_me_with_an_api_key_shows_the_key_and_its_client_but_never_the_secret(tenant_a):
    _, raw_key = api_key_for(tenant_a, role="agent", name="crm")

    response = api_with_key(raw_key).get(ME)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["api_key"]["name"] == "crm"
    assert body["api_key"]["role"] == "agent"
    assert body["client"]["id"] == tenant_a.pk
    assert raw_key not in response.content.decode()


def test_an_invited_user_sets_a_password_once_then_logs_in(api, tenant_a):
    owner = UserFactory()
    Membership.objects.create(user=owner, client=tenant_a, role=Membership.Role.OWNER)
    invite = api_as(jwt_for(owner, tenant_a)).post(
        f"/api/v1/clients/{tenant_a.pk}/members",
        {"email": "new.agent@cafe.example", "role": "agent"},
        format="json",
    )
    assert invite.status_code == 201, invite.content
    token = invite.json()["set_password_token"]
    # The invited user cannot log in before setting a password.
    no_password = {"email": "new.agent@cafe.example", "password": "anything-at-all-1"}
    assert api.post(LOGIN, no_password, format="json").status_code == 401

    wrong = api.post(
        SET_PASSWORD,
        {"email": "new.agent@cafe.example", "token": "1-wrong", "password": "fresh-passphrase-7"},
        format="json",
    )
    assert "token" in assert_envelope(wrong, 400, "validation_error")["details"]

    body = {"email": "new.agent@cafe.example", "token": token, "password": "fresh-passphrase-7"}
    assert api.post(SET_PASSWORD, body, format="json").status_code == 204
    login = api.post(
        LOGIN, {"email": "new.agent@cafe.example", "password": "fresh-passphrase-7"}, format="json"
    )
    assert login.status_code == 200
    assert login.json()["client_id"] == tenant_a.pk
    # The token is spent: setting the password changed what it was made from.
    again = api.post(SET_PASSWORD, {**body, "password": "another-passphrase-8"}, format="json")
    assert_envelope(again, 400, "validation_error")


def test_set_password_refuses_a_weak_password_and_keeps_the_token_usable(api, tenant_a):
    owner = UserFactory()
    Membership.objects.create(user=owner, client=tenant_a, role=Membership.Role.OWNER)
    token = (
        api_as(jwt_for(owner, tenant_a))
        .post(
            f"/api/v1/clients/{tenant_a.pk}/members",
            {"email": "weak@cafe.example", "role": "agent"},
            format="json",
        )
        .json()["set_password_token"]
    )

    weak = api.post(
        SET_PASSWORD,
        {"email": "weak@cafe.example", "token": token, "password": "12345678"},
        format="json",
    )
    assert "password" in assert_envelope(weak, 400, "validation_error")["details"]

    ok = api.post(
        SET_PASSWORD,
        {"email": "weak@cafe.example", "token": token, "password": "fresh-passphrase-7"},
        format="json",
    )
    assert ok.status_code == 204


def test_repeated_wrong_passwords_lock_the_login_for_a_while(api, db, redis_client):
    from tests.tenants.factories import UserFactory
    from wafaa.ratelimit import LOGIN_FAILURES_ALLOWED, _login_key

    user = UserFactory(email="locked@example.com", username="locked@example.com")
    user.set_password("the-right-password-123")
    user.save()
    redis_client.delete(_login_key(user.email))
    try:
        for _ in range(LOGIN_FAILURES_ALLOWED):
            wrong = api.post(
                "/api/v1/auth/login", {"email": user.email, "password": "nope-nope"}, format="json"
            )
            assert wrong.status_code == 401
        locked = api.post(
            "/api/v1/auth/login",
            {"email": user.email, "password": "the-right-password-123"},
            format="json",
        )
        assert locked.status_code == 429
        assert locked.json()["error"]["code"] == "rate_limited" and int(locked["Retry-After"]) > 0
        redis_client.delete(_login_key(user.email))  # the window passes
        ok = api.post(
            "/api/v1/auth/login",
            {"email": user.email, "password": "the-right-password-123"},
            format="json",
        )
        assert ok.status_code == 200
    finally:
        redis_client.delete(_login_key(user.email))
