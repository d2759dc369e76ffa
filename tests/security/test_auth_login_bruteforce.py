"""Attacks (issue 10, finding 8): guessing passwords on every login surface.

- 30 wrong passwords for the superuser on /admin/login/, then the right one: still no session.
- The same on the API login: locked with a 429 in the envelope, no token.
- Password spraying: one wrong password for each of 20 accounts from one address is throttled.
- And none of it locks the real person out: from another address they log in at once.
"""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.management import call_command
from django.test import Client as BrowserClient
from django.test import RequestFactory
from rest_framework.test import APIClient

from tenants.login_throttle import LoginFailureHandler
from tests.tenants.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.66"
OWNER_HOME = "198.51.100.7"
LOGIN = "/api/v1/auth/login"
ADMIN_LOGIN = "/admin/login/"


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser(
        username="root@wafaa.example", email="root@wafaa.example", password=PASSWORD
    )


def admin_login(browser: BrowserClient, username: str, password: str):
    return browser.post(
        ADMIN_LOGIN,
        {"username": username, "password": password, "next": "/admin/"},
    )


def test_thirty_wrong_admin_passwords_then_the_right_one_does_not_log_in(superuser):
    attacker = BrowserClient(REMOTE_ADDR=ATTACKER)

    statuses = [
        admin_login(attacker, superuser.username, f"guess-{n}").status_code for n in range(30)
    ]
    right = admin_login(attacker, superuser.username, PASSWORD)

    # Wrong passwords show the form again (200) until the lock, then 429 only.
    limit = settings.LOGIN_FAILURES_PER_ACCOUNT_AND_IP
    assert statuses[: limit - 1] == [200] * (limit - 1)
    assert set(statuses[limit - 1 :]) == {429}
    assert right.status_code == 429
    assert "Too many failed logins" in right.content.decode()
    assert int(right["Retry-After"]) == settings.LOGIN_LOCKOUT_MINUTES * 60
    assert "_auth_user_id" not in attacker.session
    assert attacker.get("/admin/").status_code == 302  # still sent to the login page
    # The per-client admin site's login is the same surface.
    other_site = attacker.post(
        "/admin/client-data/login/", {"username": superuser.username, "password": PASSWORD}
    )
    assert other_site.status_code == 429
    assert "_auth_user_id" not in attacker.session
    superuser.refresh_from_db()
    assert superuser.last_login is None


def test_the_real_admin_logs_in_from_another_address_during_the_attack(superuser):
    attacker = BrowserClient(REMOTE_ADDR=ATTACKER)
    for n in range(30):
        admin_login(attacker, superuser.username, f"guess-{n}")

    owner = BrowserClient(REMOTE_ADDR=OWNER_HOME)
    response = admin_login(owner, superuser.username, PASSWORD)

    assert response.status_code == 302, response.content
    assert owner.session["_auth_user_id"] == str(superuser.pk)
    assert owner.get("/admin/").status_code == 200


def test_api_login_is_locked_for_the_guessing_address_and_not_for_the_owner():
    victim = UserFactory()
    attacker = APIClient(REMOTE_ADDR=ATTACKER)

    answers = [
        attacker.post(LOGIN, {"email": victim.email, "password": f"guess-{n}"}, format="json")
        for n in range(30)
    ]
    right = attacker.post(LOGIN, {"email": victim.email, "password": PASSWORD}, format="json")

    limit = settings.LOGIN_FAILURES_PER_ACCOUNT_AND_IP
    assert [a.status_code for a in answers[: limit - 1]] == [401] * (limit - 1)
    assert {a.status_code for a in answers[limit - 1 :]} == {429}
    assert right.status_code == 429
    error = right.json()["error"]
    assert error["code"] == "rate_limited"
    assert int(right["Retry-After"]) > 0
    assert "access" not in right.json() and "refresh" not in right.json()
    # Case does not make a new account name to guess under.
    upper = attacker.post(
        LOGIN, {"email": victim.email.upper(), "password": PASSWORD}, format="json"
    )
    assert upper.status_code == 429

    owner = APIClient(REMOTE_ADDR=OWNER_HOME)
    ok = owner.post(LOGIN, {"email": victim.email, "password": PASSWORD}, format="json")
    assert ok.status_code == 200, ok.content
    assert ok.json()["access"]


def test_password_spraying_across_twenty_accounts_from_one_address_is_throttled():
    accounts = [UserFactory() for _ in range(21)]
    sprayer = APIClient(REMOTE_ADDR=ATTACKER)

    answers = [
        sprayer.post(LOGIN, {"email": user.email, "password": "Summer2026!"}, format="json")
        for user in accounts[:20]
    ]
    # Even a correct password for an untouched account is refused from this address now.
    after = sprayer.post(LOGIN, {"email": accounts[20].email, "password": PASSWORD}, format="json")

    per_ip = settings.LOGIN_FAILURES_PER_IP
    assert per_ip <= 20
    assert [a.status_code for a in answers[: per_ip - 1]] == [401] * (per_ip - 1)
    assert answers[per_ip - 1].status_code == 429
    assert after.status_code == 429
    assert "access" not in after.json()
    # The admin login shares the count: spraying cannot move over there.
    admin = BrowserClient(REMOTE_ADDR=ATTACKER)
    assert admin_login(admin, accounts[20].email, PASSWORD).status_code == 429

    # Every sprayed account still logs in from its owner's address.
    home = APIClient(REMOTE_ADDR=OWNER_HOME)
    for user in (accounts[0], accounts[19]):
        response = home.post(LOGIN, {"email": user.email, "password": PASSWORD}, format="json")
        assert response.status_code == 200, response.content


def test_logging_into_an_own_account_does_not_wipe_the_address_count():
    """A hostile client with an account of its own cannot reset its address's failures by
    logging in between guesses."""
    own = UserFactory()
    targets = [UserFactory() for _ in range(settings.LOGIN_FAILURES_PER_IP)]
    sprayer = APIClient(REMOTE_ADDR=ATTACKER)

    statuses = []
    for user in targets:
        guess = {"email": user.email, "password": "nope-nope-1"}
        statuses.append(sprayer.post(LOGIN, guess, format="json").status_code)
        own_login = sprayer.post(LOGIN, {"email": own.email, "password": PASSWORD}, format="json")
        if own_login.status_code != 200:
            break

    per_ip = settings.LOGIN_FAILURES_PER_IP
    assert statuses == [401] * (per_ip - 1) + [429]
    assert own_login.status_code == 429


def test_code_that_logs_in_without_a_request_still_works(superuser, client):
    """The test client's login() and shell code call authenticate() without a request."""
    assert client.login(username=superuser.username, password=PASSWORD)
    assert client.get("/admin/").status_code == 200


def test_a_forged_x_forwarded_for_does_not_escape_the_address_limit():
    """With no trusted proxy (TRUSTED_PROXY_HOPS=0), X-Forwarded-For is the caller's own text:
    a new value per guess must not make a new address."""
    victim = UserFactory()
    sprayer = APIClient(REMOTE_ADDR=ATTACKER)

    answers = [
        sprayer.post(
            LOGIN,
            {"email": victim.email, "password": f"guess-{n}"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}",
        )
        for n in range(settings.LOGIN_FAILURES_PER_ACCOUNT_AND_IP)
    ]

    assert answers[-1].status_code == 429


def test_behind_a_trusted_proxy_the_address_the_proxy_saw_counts(settings):
    """With one trusted proxy, the right-most X-Forwarded-For entry is the caller: what the
    caller wrote to its left is ignored, and two callers behind the proxy are told apart."""
    settings.TRUSTED_PROXY_HOPS = 1
    victim = UserFactory()
    proxy = APIClient(REMOTE_ADDR="10.0.0.2")

    guesses = [
        proxy.post(
            LOGIN,
            {"email": victim.email, "password": f"guess-{n}"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, {ATTACKER}",
        )
        for n in range(settings.LOGIN_FAILURES_PER_ACCOUNT_AND_IP)
    ]
    owner = proxy.post(
        LOGIN,
        {"email": victim.email, "password": PASSWORD},
        format="json",
        HTTP_X_FORWARDED_FOR=OWNER_HOME,
    )

    assert guesses[-1].status_code == 429
    assert owner.status_code == 200, owner.content


def test_staff_can_lift_a_lock_at_once_with_axes_commands():
    """The runbook's unlock (docs/operations.md): axes' own commands clear our counters."""
    victim = UserFactory()
    attacker = APIClient(REMOTE_ADDR=ATTACKER)
    for n in range(settings.LOGIN_FAILURES_PER_ACCOUNT_AND_IP):
        attacker.post(LOGIN, {"email": victim.email, "password": f"guess-{n}"}, format="json")
    right = {"email": victim.email, "password": PASSWORD}
    assert attacker.post(LOGIN, right, format="json").status_code == 429

    call_command("axes_reset_ip_username", ATTACKER, victim.email, stdout=io.StringIO())

    assert attacker.post(LOGIN, right, format="json").status_code == 200


def test_a_lockout_is_logged_by_address_and_never_by_email(caplog):
    victim = UserFactory()
    attacker = APIClient(REMOTE_ADDR=ATTACKER)

    with caplog.at_level("INFO"):
        for n in range(settings.LOGIN_FAILURES_PER_ACCOUNT_AND_IP):
            attacker.post(LOGIN, {"email": victim.email, "password": f"guess-{n}"}, format="json")

    locked = [r for r in caplog.records if r.getMessage() == "login locked out"]
    assert locked and locked[0].ip == ATTACKER
    assert all(victim.email not in r.getMessage() for r in caplog.records)
    assert all(victim.email not in str(r.__dict__) for r in caplog.records)


def test_with_redis_down_the_throttle_fails_open(settings, caplog):
    """Fail open, as the API's rate limits do: an outage of Redis must not lock everyone out.
    (A handler on a cache whose Redis refuses connections, on loopback.)"""
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"},
    }
    handler = LoginFailureHandler()
    assert handler.cache is caches["default"]
    request = RequestFactory().post(LOGIN, REMOTE_ADDR=ATTACKER)
    request.axes_ip_address, request.axes_user_agent, request.axes_path_info = ATTACKER, "", LOGIN
    request.axes_locked_out = False
    credentials = {"username": "someone@example.com"}

    with caplog.at_level("WARNING"):
        handler.user_login_failed(None, credentials, request)
        locked = handler.is_locked(request, credentials)

    assert locked is False
    assert "login failure not counted: Redis unavailable" in caplog.text
    assert "login throttle not checked: Redis unavailable" in caplog.text
