"""Factories and helpers for the tenants tests (and the isolation suite).

Tokens come from the real login endpoint and API keys from the real service, so a test uses
credentials exactly as a caller would get them.
"""

from __future__ import annotations

import re
import uuid

import factory
from django.contrib.auth import get_user_model
from factory.django import DjangoModelFactory
from rest_framework.test import APIClient

from tenants import selectors, services
from tenants.models import Client, Membership

PASSWORD = "pw-correct-horse-9"
RATE_LIMIT_KEYS = "wafaa:ratelimit:api:*"
# Sign-up and invitation throttles (DRF) and failed-login counters (django-axes), in the default cache.
THROTTLE_KEYS = ("*throttle_signup_*", "*throttle_invite_*", "*axes-*")


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()

    # Unique across runs too: a committed test that failed half-way may leave a user behind.
    email = factory.Sequence(lambda n: f"user{n}-{uuid.uuid4().hex[:8]}@example.com")
    username = factory.SelfAttribute("email")
    first_name = factory.Faker("first_name")
    password = PASSWORD

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return model_class.objects.create_user(*args, **kwargs)


class StaffUserFactory(UserFactory):
    is_staff = True


class MembershipFactory(DjangoModelFactory):
    """A membership; pass `client=` (the test clients come from tests/conftest.py)."""

    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    role = Membership.Role.AGENT


def jwt_for(user, client: Client | None = None) -> str:
    """An access token from the real /auth/login (bound to `client` when given)."""
    body = {"email": user.email, "password": PASSWORD}
    if client is not None:
        body["client"] = client.pk
    response = APIClient().post("/api/v1/auth/login", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()["access"]


def api_as(token: str) -> APIClient:
    """An API client sending a JWT."""
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def api_as_user(user, client: Client | None = None) -> APIClient:
    return api_as(jwt_for(user, client))


def api_key_for(client: Client, role: str = Membership.Role.ADMIN, name: str = "test key"):
    """(APIKey, raw key) made by the real service."""
    return services.api_key_create(client=client, name=name, role=role, created_by=None)


def api_with_key(raw_key: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return api


def reset_api_state(redis) -> None:
    """Forget per-process client cache entries and this minute's rate-limit counters.

    They (and the sign-up and login throttles' counters) outlive a test's rolled-back transaction: a client cached with a test's low limit, or
    requests counted by earlier tests, must not leak into the next test.
    """
    selectors.client_cache_clear()
    keys = [
        key for pattern in (RATE_LIMIT_KEYS, *THROTTLE_KEYS) for key in redis.scan_iter(pattern)
    ]
    if keys:
        redis.delete(*keys)


def token_from_mail(message, page: str) -> str:
    """The one-time token of the link to `page` in an account email (django.core.mail.outbox)."""
    match = re.search(rf"/{page}\?token=([A-Za-z0-9_\-]+)", message.body)
    assert match, message.body
    return match.group(1)


def register_and_verify(api: APIClient | None = None, **overrides) -> dict:
    """Sign up through the real API and open the emailed link: the body of /auth/verify-email
    (tokens and the new client). Needs the email to be sent, so it runs the commit callbacks."""
    from django.core import mail
    from django.db import connection

    api = api or APIClient()
    suffix = uuid.uuid4().hex[:8]
    body = {
        "email": f"founder-{suffix}@example.com",
        "password": "a-long-unusual-passphrase",
        "name": "Founder",
        "client_name": f"Shop {suffix}",
        "client_slug": f"shop-{suffix}",
        **overrides,
    }
    sent = len(mail.outbox)
    with _run_on_commit(connection):
        response = api.post("/api/v1/auth/register", body, format="json")
    assert response.status_code == 202, response.content
    token = token_from_mail(mail.outbox[sent], "verify-email")
    verified = api.post("/api/v1/auth/verify-email", {"token": token}, format="json")
    assert verified.status_code == 201, verified.content
    return verified.json()


def _run_on_commit(connection):
    """Commit callbacks run at once inside a test's transaction (like pytest-django's
    django_capture_on_commit_callbacks(execute=True), usable outside a fixture)."""
    from django.test import TestCase

    return TestCase.captureOnCommitCallbacks(using=connection.alias, execute=True)
