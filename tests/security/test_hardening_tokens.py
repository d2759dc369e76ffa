"""Hardening (issue 10, finding 13): a stolen refresh token is good once, and logout ends it.

Refresh is simplejwt's own TokenRefreshView with rotation and the blacklist: each refresh
answers a new refresh token and blacklists the one presented, so a copy used later (by the
thief or by the owner) is refused, and /auth/logout blacklists a refresh token on demand.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from tenants import accounts
from tenants.models import Membership
from tests.tenants.factories import PASSWORD, UserFactory, api_as

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"


@pytest.fixture
def member(tenant_a):
    user = UserFactory()
    Membership.objects.create(user=user, client=tenant_a, role=Membership.Role.ADMIN)
    return user


def login(api, user) -> dict:
    response = api.post(LOGIN, {"email": user.email, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def assert_refused(response):
    assert response.status_code == 401, response.content
    error = response.json()["error"]
    assert error["code"] == "authentication_failed"
    assert "Log in again" in error["message"]
    assert "access" not in response.json()


def test_a_refresh_token_rotates_and_a_reused_old_one_is_refused(api, member, tenant_a):
    stolen = login(api, member)["refresh"]

    first = api.post(REFRESH, {"refresh": stolen}, format="json")
    assert first.status_code == 200, first.content
    rotated = first.json()
    assert rotated["refresh"] != stolen
    assert rotated["client_id"] == tenant_a.pk
    assert RefreshToken(rotated["refresh"])["client_id"] == tenant_a.pk
    assert api_as(rotated["access"]).get(f"/api/v1/clients/{tenant_a.pk}").status_code == 200
    jti = RefreshToken(stolen, verify=False)["jti"]
    assert BlacklistedToken.objects.filter(token__jti=jti).exists()

    # The copy is spent: a second use gives nothing.
    assert_refused(api.post(REFRESH, {"refresh": stolen}, format="json"))
    # The rotated one works once in turn.
    assert api.post(REFRESH, {"refresh": rotated["refresh"]}, format="json").status_code == 200


def test_logout_blacklists_the_refresh_token(api, member):
    tokens = login(api, member)

    response = api.post(LOGOUT, {"refresh": tokens["refresh"]}, format="json")

    assert response.status_code == 204, response.content
    jti = RefreshToken(tokens["refresh"], verify=False)["jti"]
    assert BlacklistedToken.objects.filter(token__jti=jti, token__user=member).exists()
    assert_refused(api.post(REFRESH, {"refresh": tokens["refresh"]}, format="json"))
    # Logging out twice, or with garbage or an access token, is a 401, not a 500.
    assert_refused(api.post(LOGOUT, {"refresh": tokens["refresh"]}, format="json"))
    for token in ("garbage", tokens["access"]):
        assert_refused(api.post(LOGOUT, {"refresh": token}, format="json"))


def test_a_refresh_token_of_a_deleted_or_deactivated_user_is_refused(api, tenant_a):
    gone, inactive = UserFactory(), UserFactory()
    gone_refresh = login(api, gone)["refresh"]
    inactive_refresh = login(api, inactive)["refresh"]
    inactive.is_active = False
    inactive.save(update_fields=["is_active"])
    gone.delete()

    assert_refused(api.post(REFRESH, {"refresh": gone_refresh}, format="json"))
    response = api.post(REFRESH, {"refresh": inactive_refresh}, format="json")
    assert response.status_code == 401
    assert "access" not in response.json()


def test_expired_token_records_are_purged(member, api):
    login(api, member)
    OutstandingToken.objects.filter(user=member).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    counts = accounts.accounts_purge_expired()

    assert counts["tokens"] >= 1
    assert not OutstandingToken.objects.filter(user=member).exists()
