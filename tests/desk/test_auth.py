"""Signing in and out of the inbox: the real form, session, CSRF and login throttling."""

from __future__ import annotations

from django.test import Client as HttpClient

from tests.desk.conftest import sign_in
from tests.tenants.factories import PASSWORD


def test_login_page_renders_with_a_csrf_token(db):
    response = HttpClient().get("/inbox/login/")
    assert response.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in response.content
    assert b'name="username"' in response.content and b'name="password"' in response.content


def test_a_member_signs_in_and_lands_on_the_only_client(agent, tenant_a):
    http = sign_in(agent)
    response = http.get("/inbox/")
    assert response.status_code == 302 and response["Location"] == f"/inbox/{tenant_a.slug}/"
    assert http.get(response["Location"]).status_code == 200


def test_a_wrong_password_is_refused_on_the_form(agent):
    http = HttpClient()
    response = http.post("/inbox/login/", {"username": agent.email, "password": "wrong"})
    assert response.status_code == 400
    assert b'id="login-error"' in response.content
    assert "_auth_user_id" not in http.session


def test_the_email_is_case_insensitive(agent):
    http = HttpClient()
    response = http.post("/inbox/login/", {"username": agent.email.upper(), "password": PASSWORD})
    assert response.status_code == 302


def test_repeated_failures_lock_the_account_from_this_address(agent, settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT_AND_IP = 3
    http = HttpClient()
    statuses = [
        http.post("/inbox/login/", {"username": agent.email, "password": "nope"}).status_code
        for _ in range(3)
    ]
    assert statuses == [400, 400, 429]
    # Locked: even the right password is refused, on the inbox's own page.
    locked = http.post("/inbox/login/", {"username": agent.email, "password": PASSWORD})
    assert locked.status_code == 429
    assert b'id="login-locked"' in locked.content and locked["Retry-After"]
    assert "_auth_user_id" not in http.session
    # Another address is not affected (no account-wide lock).
    other = HttpClient(REMOTE_ADDR="10.0.0.9")
    assert (
        other.post("/inbox/login/", {"username": agent.email, "password": PASSWORD}).status_code
        == 302
    )


def test_login_without_a_csrf_token_is_refused(agent):
    http = HttpClient(enforce_csrf_checks=True)
    response = http.post("/inbox/login/", {"username": agent.email, "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in http.session


def test_logout_needs_post_and_ends_the_session(agent, tenant_a):
    http = sign_in(agent)
    assert http.get("/inbox/logout/").status_code == 405
    assert http.post("/inbox/logout/").status_code == 302
    response = http.get(f"/inbox/{tenant_a.slug}/")
    assert response.status_code == 302 and response["Location"].startswith("/inbox/login/")


def test_an_open_redirect_after_login_is_refused(agent):
    http = HttpClient()
    response = http.post(
        "/inbox/login/",
        {"username": agent.email, "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert response.status_code == 302 and response["Location"] == "/inbox/"
