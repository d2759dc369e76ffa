"""Sign-up with email verification, login, tokens and /auth/me (invitations: test_invitations)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone
from django_tenants.utils import schema_exists
from rest_framework_simplejwt.tokens import AccessToken

from tenants.models import Client, Membership, SignUp
from tests.tenants.factories import (
    PASSWORD,
    UserFactory,
    api_as,
    api_key_for,
    api_with_key,
    jwt_for,
    register_and_verify,
    token_from_mail,
)

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"
VERIFY = "/api/v1/auth/verify-email"

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


def _register(api, django_capture_on_commit_callbacks, **overrides):
    with django_capture_on_commit_callbacks(execute=True):
        return api.post(REGISTER, register_body(**overrides), format="json")


def test_register_emails_a_link_and_verifying_it_makes_the_owner_of_a_new_client_with_its_schema(
    api, django_capture_on_commit_callbacks
):
    response = _register(api, django_capture_on_commit_callbacks)

    assert response.status_code == 202, response.content
    assert response.json()["email"] == "founder@cafe.example"
    assert "access" not in response.json()
    # Nothing exists before the email is verified.
    assert not Client.objects.filter(slug="cafe-atlas").exists()
    assert not schema_exists("c_cafe_atlas")
    assert not get_user_model().objects.filter(email="founder@cafe.example").exists()
    assert SignUp.objects.get(email="founder@cafe.example").client_slug == "cafe-atlas"
    assert [m.to for m in mail.outbox] == [["founder@cafe.example"]]
    token = token_from_mail(mail.outbox[0], "verify-email")
    # Only the token's hash is stored; the password only as a Django hash.
    signup = SignUp.objects.get(email="founder@cafe.example")
    assert token not in signup.token_hash
    assert "a-long-unusual-passphrase" not in signup.password

    verified = api.post(VERIFY, {"token": token}, format="json")

    assert verified.status_code == 201, verified.content
    body = verified.json()
    client = Client.objects.get(slug="cafe-atlas")
    assert body["client_id"] == client.pk
    assert body["client"]["slug"] == "cafe-atlas"
    assert body["client"]["status"] == "active"
    assert body["access"] and body["refresh"]
    user = get_user_model().objects.get(email="founder@cafe.example")
    assert user.first_name == "Salma"
    assert Membership.objects.get(user=user, client=client).role == Membership.Role.OWNER
    assert client.schema_name == "c_cafe_atlas"
    assert schema_exists(client.schema_name)
    assert not SignUp.objects.filter(email="founder@cafe.example").exists()
    # The access token works at once, for the new client; the chosen password logs in.
    me = api_as(body["access"]).get(f"/api/v1/clients/{client.pk}")
    assert me.status_code == 200
    assert me.json()["name"] == "Cafe Atlas"
    login = {"email": "founder@cafe.example", "password": "a-long-unusual-passphrase"}
    assert api.post(LOGIN, login, format="json").status_code == 200
    # The link works once.
    again = api.post(VERIFY, {"token": token}, format="json")
    assert "token" in assert_envelope(again, 400, "validation_error")["details"]


def test_verify_refuses_an_unknown_or_expired_token(api, django_capture_on_commit_callbacks):
    _register(api, django_capture_on_commit_callbacks)
    token = token_from_mail(mail.outbox[0], "verify-email")
    SignUp.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    for candidate in (token, "not-a-token"):
        response = api.post(VERIFY, {"token": candidate}, format="json")
        assert "token" in assert_envelope(response, 400, "validation_error")["details"]
    assert not Client.objects.filter(slug="cafe-atlas").exists()
    assert not get_user_model().objects.filter(email="founder@cafe.example").exists()


def test_register_with_a_taken_email_answers_the_same_and_emails_the_owner_instead(
    api, django_capture_on_commit_callbacks
):
    UserFactory(email="founder@cafe.example", username="founder@cafe.example")

    taken = _register(api, django_capture_on_commit_callbacks, email="Founder@Cafe.example")
    fresh = _register(
        api, django_capture_on_commit_callbacks, email="new@cafe.example", client_slug="cafe-b"
    )

    assert taken.status_code == fresh.status_code == 202
    assert taken.json()["detail"].replace("founder@", "new@") == fresh.json()["detail"]
    assert set(taken.json()) == set(fresh.json())
    assert not SignUp.objects.filter(email="founder@cafe.example").exists()
    assert not Client.objects.filter(slug="cafe-atlas").exists()
    note = next(m for m in mail.outbox if m.to == ["founder@cafe.example"])
    assert "already has an account" in note.body
    assert "token=" not in note.body


def test_register_with_a_taken_slug_is_400_naming_slug_and_creates_nothing(api, tenant_a):
    response = api.post(REGISTER, register_body(client_slug=tenant_a.slug), format="json")

    error = assert_envelope(response, 400, "validation_error")
    assert "slug" in error["details"]
    assert tenant_a.slug in error["message"]
    assert not get_user_model().objects.filter(email="founder@cafe.example").exists()
    assert not SignUp.objects.exists()
    assert mail.outbox == []


def test_register_with_an_invalid_slug_or_weak_password_names_the_field(api):
    bad_slug = api.post(REGISTER, register_body(client_slug="Cafe Atlas!"), format="json")
    assert "slug" in assert_envelope(bad_slug, 400, "validation_error")["details"]

    weak = api.post(REGISTER, register_body(password="password123"), format="json")
    error = assert_envelope(weak, 400, "validation_error")
    assert "password" in error["details"]
    assert not SignUp.objects.exists()
    assert not Client.objects.filter(slug="cafe-atlas").exists()


def test_a_slug_taken_between_sign_up_and_verification_is_told_and_creates_no_user(
    api, django_capture_on_commit_callbacks
):
    _register(api, django_capture_on_commit_callbacks)
    token = token_from_mail(mail.outbox[0], "verify-email")
    register_and_verify(client_slug="cafe-atlas")  # someone else verified first

    response = api.post(VERIFY, {"token": token}, format="json")

    error = assert_envelope(response, 400, "validation_error")
    assert "slug" in error["details"]
    assert "Sign up again" in error["message"]
    assert not get_user_model().objects.filter(email="founder@cafe.example").exists()
    assert not SignUp.objects.filter(email="founder@cafe.example").exists()


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
