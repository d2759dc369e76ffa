"""Attack (issue 10, finding 9): an anonymous caller floods sign-up to make schemas.

25 registrations from one address once made 25 client schemas (1,525 relations). Now a
sign-up makes no schema until its email is verified, sign-ups are throttled per address, and
staff see the unverified ones and purge them (admin action, command, beat task).
"""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client as BrowserClient
from django.utils import timezone
from rest_framework.test import APIClient

from config.celery import app
from tenants.models import Client, SignUp
from tests.tenants.factories import register_and_verify

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
FLOODER = "203.0.113.99"


def schema_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'c\\_%'")
        return cursor.fetchone()[0]


def signup_body(n: int, run: str) -> dict:
    return {
        "email": f"flood-{run}-{n}@example.com",
        "password": "a-long-unusual-passphrase",
        "client_name": f"Flood {n}",
        "client_slug": f"flood-{run}-{n}",
    }


def test_twenty_five_signups_from_one_address_create_no_schema_and_are_throttled(
    django_capture_on_commit_callbacks,
):
    flooder = APIClient(REMOTE_ADDR=FLOODER)
    run = uuid.uuid4().hex[:6]
    schemas_before = schema_count()
    clients_before = Client.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        answers = [flooder.post(REGISTER, signup_body(n, run), format="json") for n in range(25)]

    allowed = int(settings.SIGNUP_THROTTLE_RATE.split("/")[0])
    assert allowed < 25
    assert [a.status_code for a in answers[:allowed]] == [202] * allowed
    assert {a.status_code for a in answers[allowed:]} == {429}
    throttled = answers[-1]
    assert throttled.json()["error"]["code"] == "rate_limited"
    assert int(throttled["Retry-After"]) > 0
    # Nothing but pending rows for the allowed ones; no schema, no client, no user at all.
    assert schema_count() == schemas_before
    assert Client.objects.count() == clients_before
    assert not get_user_model().objects.filter(email__startswith=f"flood-{run}-").exists()
    assert SignUp.objects.filter(email__startswith=f"flood-{run}-").count() == allowed
    assert {s.ip_address for s in SignUp.objects.filter(email__startswith=f"flood-{run}-")} == {
        FLOODER
    }
    assert len(mail.outbox) == allowed
    # Another address is not affected by this one's flood.
    other = APIClient(REMOTE_ADDR="198.51.100.20")
    assert other.post(REGISTER, signup_body(99, run), format="json").status_code == 202


def test_an_unverified_signup_has_no_schema_and_a_verified_one_has(
    django_capture_on_commit_callbacks,
):
    run = uuid.uuid4().hex[:6]
    with django_capture_on_commit_callbacks(execute=True):
        response = APIClient().post(REGISTER, signup_body(1, run), format="json")
    assert response.status_code == 202

    assert not Client.objects.filter(slug=f"flood-{run}-1").exists()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", [f"c_flood_{run}_1".replace("-", "_")]
        )
        assert cursor.fetchone() is None

    verified = register_and_verify(client_slug=f"ok-{run}")
    assert Client.objects.get(pk=verified["client_id"]).slug == f"ok-{run}"


def test_staff_see_unverified_signups_in_the_admin_and_purge_them(
    django_capture_on_commit_callbacks,
):
    run = uuid.uuid4().hex[:6]
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(3):
            APIClient().post(REGISTER, signup_body(n, run), format="json")
    stale = SignUp.objects.get(email=f"flood-{run}-0@example.com")
    SignUp.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    staff = get_user_model().objects.create_superuser(
        username=f"staff-{run}@wafaa.example", email=f"staff-{run}@wafaa.example", password="x"
    )
    browser = BrowserClient()
    browser.force_login(staff)

    page = browser.get("/admin/tenants/signup/")
    assert page.status_code == 200
    text = page.content.decode()
    assert all(f"flood-{run}-{n}@example.com" in text for n in range(3))
    # The stored password hash and token hash are not shown.
    detail = browser.get(f"/admin/tenants/signup/{stale.pk}/change/").content.decode()
    assert stale.password not in detail and stale.token_hash not in detail

    # The command (and the hourly beat task, which calls the same service) purges expired ones.
    out = io.StringIO()
    call_command("accounts_purge_expired", stdout=out)
    assert "signups: 1" in out.getvalue()
    assert not SignUp.objects.filter(pk=stale.pk).exists()
    assert SignUp.objects.filter(email__startswith=f"flood-{run}-").count() == 2

    # The admin action purges the selected ones, expired or not.
    chosen = SignUp.objects.filter(email=f"flood-{run}-1@example.com").get()
    purged = browser.post(
        "/admin/tenants/signup/",
        {"action": "purge_selected", "_selected_action": [chosen.pk]},
        follow=True,
    )
    assert purged.status_code == 200
    assert "1 unverified sign-up(s) purged" in purged.content.decode()
    assert list(
        SignUp.objects.filter(email__startswith=f"flood-{run}-").values_list("email", flat=True)
    ) == [f"flood-{run}-2@example.com"]


def test_the_hourly_beat_entry_purges_expired_signups(eager_tasks, settings):
    """The beat schedule names a registered task, and running it purges (eager wiring)."""
    entry = settings.CELERY_BEAT_SCHEDULE["accounts-purge"]
    app.loader.import_default_modules()  # what a worker does at start (autodiscovery)
    assert entry["task"] in app.tasks
    run = uuid.uuid4().hex[:6]
    SignUp.objects.create(
        email=f"stale-{run}@example.com",
        password="!",
        client_name="Stale",
        client_slug=f"stale-{run}",
        token_hash=uuid.uuid4().hex * 2,
        expires_at=timezone.now() - timedelta(seconds=1),
    )

    result = app.tasks[entry["task"]].delay()

    assert result.get()["signups"] == 1
    assert not SignUp.objects.filter(email=f"stale-{run}@example.com").exists()
