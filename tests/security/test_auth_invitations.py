"""Attacks (issue 10, findings 5 and 6): a client's admin abuses the invitation endpoint.

5. The admin invites an address that has no account, hoping for a set-password token to take
   the account over before its real owner registers.
6. The admin invites a user of another client, hoping to learn about them and to enrol them
   without consent (their next login token would lose its client scope).

The inviter gets the same answer whichever the case, learns nothing beyond what they typed,
no token ever reaches them, and no membership exists until the invitee accepts: through the
emailed link, or logged in as themselves.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from tenants.models import Invitation, Membership
from tests.tenants.factories import (
    PASSWORD,
    MembershipFactory,
    UserFactory,
    api_as_user,
    token_from_mail,
)

pytestmark = pytest.mark.django_db

ACCEPT = "/api/v1/auth/invitations/accept"
LOGIN = "/api/v1/auth/login"


def members_url(client) -> str:
    return f"/api/v1/clients/{client.pk}/members"


def invite(api, client, email, capture, role="agent"):
    with capture(execute=True):
        return api.post(members_url(client), {"email": email, "role": role}, format="json")


@pytest.fixture
def hostile_admin_a(tenant_a):
    return api_as_user(
        MembershipFactory(client=tenant_a, role=Membership.Role.ADMIN).user, tenant_a
    )


@pytest.fixture
def victim_of_b(tenant_b):
    """An owner of client B, with a private name and staff-like details to leak."""
    user = UserFactory(first_name="Private Name")
    Membership.objects.create(user=user, client=tenant_b, role=Membership.Role.OWNER)
    return user


def test_inviting_an_unknown_address_gives_the_inviter_no_token_and_creates_no_account(
    hostile_admin_a, tenant_a, django_capture_on_commit_callbacks, api
):
    response = invite(
        hostile_admin_a, tenant_a, "ceo@victim.example", django_capture_on_commit_callbacks
    )

    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body) == {"id", "email", "role", "created_at", "expires_at"}
    # No account exists to take over, and nothing in the answer logs anyone in.
    assert not get_user_model().objects.filter(email__iexact="ceo@victim.example").exists()
    assert not Membership.objects.filter(user__email="ceo@victim.example").exists()
    token = token_from_mail(mail.outbox[0], "accept-invitation")
    assert mail.outbox[0].to == ["ceo@victim.example"]
    assert token not in response.content.decode()
    assert token not in Invitation.objects.get(pk=body["id"]).token_hash
    # The old route that answered tokens is gone.
    gone = api.post(
        "/api/v1/auth/set-password",
        {"email": "ceo@victim.example", "token": "x", "password": "takeover-passphrase-1"},
        format="json",
    )
    assert gone.status_code == 404
    # The real person registers normally: the address is not taken.
    assert (
        api.post(
            "/api/v1/auth/register",
            {
                "email": "ceo@victim.example",
                "password": "the-real-ceo-passphrase",
                "client_name": "Victim Co",
                "client_slug": "victim-co",
            },
            format="json",
        ).status_code
        == 202
    )


def test_the_answer_is_the_same_whether_the_address_is_a_user_of_another_client_or_unknown(
    hostile_admin_a, tenant_a, victim_of_b, django_capture_on_commit_callbacks, api
):
    existing = invite(
        hostile_admin_a, tenant_a, victim_of_b.email.upper(), django_capture_on_commit_callbacks
    )
    unknown = invite(
        hostile_admin_a, tenant_a, "nobody-yet@example.com", django_capture_on_commit_callbacks
    )

    assert existing.status_code == unknown.status_code == 202
    assert set(existing.json()) == set(unknown.json())
    assert existing.json()["role"] == unknown.json()["role"]
    # What the inviter typed, nothing from the account (its stored email, name or flags).
    assert existing.json()["email"] == victim_of_b.email.lower()
    text = existing.content.decode()
    assert "Private Name" not in text
    assert "is_staff" not in text and "user" not in existing.json()
    assert str(victim_of_b.pk) not in existing.json().values()
    # Enrolled without consent? No: B's owner has no membership in A, and their login still
    # gives a token bound to B.
    assert not Membership.objects.filter(user=victim_of_b, client=tenant_a).exists()
    login = api.post(LOGIN, {"email": victim_of_b.email, "password": PASSWORD}, format="json")
    assert login.json()["client_id"] == victim_of_b.memberships.get().client_id


def test_an_existing_user_joins_only_by_accepting_and_keeps_their_password(
    hostile_admin_a, tenant_a, tenant_b, victim_of_b, django_capture_on_commit_callbacks, api
):
    invite(hostile_admin_a, tenant_a, victim_of_b.email, django_capture_on_commit_callbacks)
    token = token_from_mail(mail.outbox[0], "accept-invitation")
    assert "unchanged until you accept" in mail.outbox[0].body

    # Whoever holds the link cannot set the existing account's password through it.
    response = api.post(
        ACCEPT, {"token": token, "password": "attacker-chosen-passphrase"}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["account_created"] is False
    assert "access" not in body and "refresh" not in body
    assert Membership.objects.get(user=victim_of_b, client=tenant_a).role == "agent"
    victim_of_b.refresh_from_db()
    assert victim_of_b.check_password(PASSWORD)
    assert not victim_of_b.check_password("attacker-chosen-passphrase")
    # The link is spent.
    again = api.post(ACCEPT, {"token": token}, format="json")
    assert again.status_code == 400
    assert again.json()["error"]["details"] == {"token": ["invalid"]}


def test_a_logged_in_invitee_accepts_only_their_own_invitations(
    hostile_admin_a, tenant_a, victim_of_b, django_capture_on_commit_callbacks
):
    response = invite(
        hostile_admin_a, tenant_a, victim_of_b.email, django_capture_on_commit_callbacks
    )
    invitation_id = response.json()["id"]
    someone_else = api_as_user(UserFactory())
    victim = api_as_user(victim_of_b)

    assert someone_else.get("/api/v1/auth/invitations").json() == []
    stolen = someone_else.post(f"/api/v1/auth/invitations/{invitation_id}/accept")
    assert stolen.status_code == 404
    assert not Membership.objects.filter(client=tenant_a, user__email=victim_of_b.email).exists()

    mine = victim.get("/api/v1/auth/invitations").json()
    assert [(i["id"], i["client"]["id"]) for i in mine] == [(invitation_id, tenant_a.pk)]
    accepted = victim.post(f"/api/v1/auth/invitations/{invitation_id}/accept")
    assert accepted.status_code == 200, accepted.content
    assert Membership.objects.filter(client=tenant_a, user=victim_of_b).exists()


def test_a_new_person_sets_their_password_through_the_link_and_the_inviter_cannot(
    hostile_admin_a, tenant_a, django_capture_on_commit_callbacks, api
):
    invite(hostile_admin_a, tenant_a, "new.agent@cafe.example", django_capture_on_commit_callbacks)
    token = token_from_mail(mail.outbox[0], "accept-invitation")

    guessed = api.post(
        ACCEPT, {"token": token[:-2] + "xx", "password": "guessed-passphrase-1"}, format="json"
    )
    assert guessed.status_code == 400
    no_password = api.post(ACCEPT, {"token": token}, format="json")
    assert no_password.json()["error"]["details"] == {"password": ["required"]}
    assert not get_user_model().objects.filter(email="new.agent@cafe.example").exists()

    accepted = api.post(ACCEPT, {"token": token, "password": "fresh-passphrase-7"}, format="json")

    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["account_created"] is True
    assert accepted.json()["client_id"] == tenant_a.pk
    user = get_user_model().objects.get(email="new.agent@cafe.example")
    assert Membership.objects.get(user=user, client=tenant_a).role == "agent"
    login = api.post(
        LOGIN, {"email": "new.agent@cafe.example", "password": "fresh-passphrase-7"}, format="json"
    )
    assert login.status_code == 200


def test_a_revoked_or_expired_invitation_link_does_nothing(
    hostile_admin_a, tenant_a, django_capture_on_commit_callbacks, api
):
    first = invite(
        hostile_admin_a, tenant_a, "late@cafe.example", django_capture_on_commit_callbacks
    )
    old_token = token_from_mail(mail.outbox[0], "accept-invitation")
    # Inviting again replaces the link; the old one stops working.
    invite(hostile_admin_a, tenant_a, "late@cafe.example", django_capture_on_commit_callbacks)
    new_token = token_from_mail(mail.outbox[1], "accept-invitation")
    assert not Invitation.objects.filter(pk=first.json()["id"]).exists()
    Invitation.objects.filter(email="late@cafe.example").update(
        expires_at=Invitation.objects.get(email="late@cafe.example").created_at
    )

    for token in (old_token, new_token):
        response = api.post(
            ACCEPT, {"token": token, "password": "fresh-passphrase-7"}, format="json"
        )
        assert response.status_code == 400
    assert not get_user_model().objects.filter(email="late@cafe.example").exists()


def test_invitations_cannot_turn_our_mail_server_into_a_spam_cannon(
    hostile_admin_a, tenant_a, tenant_b, django_capture_on_commit_callbacks, settings
):
    """Each invitation sends an email: a client gets INVITATION_THROTTLE_RATE of them."""
    allowed = int(settings.INVITATION_THROTTLE_RATE.split("/")[0])
    owner_b = api_as_user(
        MembershipFactory(client=tenant_b, role=Membership.Role.OWNER).user, tenant_b
    )
    # Someone who is not a member of A cannot spend A's budget (404 before counting).
    for n in range(3):
        stranger = owner_b.post(
            members_url(tenant_a), {"email": f"x{n}@spam.example"}, format="json"
        )
        assert stranger.status_code == 404

    with django_capture_on_commit_callbacks(execute=True):
        answers = [
            hostile_admin_a.post(
                members_url(tenant_a), {"email": f"target{n}@spam.example"}, format="json"
            )
            for n in range(allowed + 5)
        ]

    assert [a.status_code for a in answers[:allowed]] == [202] * allowed
    assert {a.status_code for a in answers[allowed:]} == {429}
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert len(mail.outbox) == allowed
    assert Invitation.objects.filter(client=tenant_a).count() == allowed
    # Another client's budget is its own.
    assert (
        owner_b.post(members_url(tenant_b), {"email": "ok@b.example"}, format="json").status_code
        == 202
    )
