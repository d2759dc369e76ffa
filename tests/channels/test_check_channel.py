"""Checks on demand (`manage.py check_channel`, `POST …/channels/{id}/check`) against the fake
Graph API: the token's access to the account and its permissions."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from channels_app.models import ChannelAccount
from tenants.models import Membership
from tests.factories import ChannelAccountFactory
from tests.tenants.factories import MembershipFactory, api_as_user

TOKEN = "EAA-check-token-0001"


@pytest.fixture
def account(tenant_a, fake_graph):
    fake_graph.add_account("106540352200001", TOKEN, display_phone_number="+1 555-000-2222")
    return ChannelAccountFactory(client=tenant_a, external_id="106540352200001", access_token=TOKEN)


def _command(*args) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("check_channel", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


def test_a_working_token_with_its_permissions_is_ok(account, tenant_a, fake_graph):
    code, out = _command(tenant_a.slug)
    assert code == 0
    assert out.strip() == f"OK whatsapp 106540352200001 (id {account.pk}): access ok"
    paths = [r.path for r in fake_graph.requests]
    assert any(p.endswith("/106540352200001") for p in paths)
    assert any(p.endswith("/me/permissions") for p in paths)


def test_a_missing_permission_is_named(account, tenant_a, fake_graph):
    fake_graph.set_permissions(
        TOKEN, whatsapp_business_management="granted", whatsapp_business_messaging="declined"
    )
    code, out = _command(tenant_a.slug, "--channel", str(account.pk))
    assert code == 1
    assert "FAILED" in out and "The token lacks: whatsapp_business_messaging." in out
    account.refresh_from_db()
    assert account.status == ChannelAccount.Status.ACTIVE  # the token works; a person fixes it


def test_a_token_meta_refuses_marks_the_account(tenant_a, fake_graph):
    fake_graph.add_account("106540352200002", "EAA-the-real-token")
    account = ChannelAccountFactory(
        client=tenant_a, external_id="106540352200002", access_token="EAA-an-old-token"
    )
    code, out = _command(tenant_a.slug, "--channel", str(account.pk))
    assert code == 1 and "access denied" in out
    account.refresh_from_db()
    assert account.status == ChannelAccount.Status.CREDENTIALS_INVALID
    assert "EAA-an-old-token" not in out


def test_meta_unavailable_is_not_a_verdict_on_the_token(account, tenant_a, fake_graph):
    fake_graph.fail_next(status=503, times=3)
    code, out = _command(tenant_a.slug)
    assert code == 1 and "access unavailable" in out
    account.refresh_from_db()
    assert account.status == ChannelAccount.Status.ACTIVE


def test_the_api_action_answers_the_check_for_admins_only(account, tenant_a):
    admin = MembershipFactory(client=tenant_a, role=Membership.Role.ADMIN).user
    url = f"/api/v1/clients/{tenant_a.pk}/channels/{account.pk}/check"
    body = api_as_user(admin, tenant_a).post(url).json()
    assert body["ok"] is True and body["access"] == "ok"
    assert body["permissions_missing"] == [] and body["external_id"] == "106540352200001"
    agent = MembershipFactory(client=tenant_a, role=Membership.Role.AGENT).user
    assert api_as_user(agent, tenant_a).post(url).status_code == 403


def test_an_unknown_client_is_a_clear_error(db):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="No channel account for client 'nobody'"):
        call_command("check_channel", "nobody")
