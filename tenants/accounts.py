"""How people get in: sign-up with email verification, and invitations to a client.

Neither flow trusts the person asking. A sign-up creates no user, client or schema until the
emailed link is used, and answers the same whether the address is registered or not. An
invitation creates no membership until the invitee accepts, through the emailed link or
logged in as themselves; the inviter learns nothing about the invitee beyond what they typed.
Tokens are 256-bit random, sent only in the email, stored only as SHA-256, used once.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from tenants import emails, selectors
from tenants.models import Client, Invitation, Membership, SignUp
from tenants.services import (
    ValidationFailedError,
    client_create,
    client_slug_check,
    is_owner_or_staff,
    password_check,
)
from wafaa.errors import ConflictError, NotFoundError, PermissionDeniedError

logger = logging.getLogger(__name__)
User = get_user_model()


def _new_token() -> tuple[str, str]:
    raw = secrets.token_urlsafe(32)
    return raw, _hash(raw)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _invalid_token(what: str) -> ValidationFailedError:
    return ValidationFailedError(
        f"This {what} link is invalid, already used or expired.", details={"token": ["invalid"]}
    )


# --- sign-up ---------------------------------------------------------------------------------


def signup_request(
    *,
    email: str,
    password: str,
    name: str,
    client_name: str,
    client_slug: str,
    ip_address: str | None = None,
) -> None:
    """Record a sign-up and email its verification link (or, for a registered address, a note).

    The slug and the password are checked now, so a mistake is told at once; the email's
    owner is not: the answer does not depend on whether the address is registered.
    """
    email = email.lower()
    client_slug_check(client_slug)
    password_check(password, User(username=email, email=email, first_name=name[:150]))
    if selectors.user_get_by_email(email=email) is not None:
        transaction.on_commit(lambda: emails.send_signup_existing_account(to=email))
        logger.info("sign-up for a registered address")
        return
    raw, token_hash = _new_token()
    SignUp.objects.create(
        email=email,
        name=name[:150],
        password=make_password(password),
        client_name=client_name,
        client_slug=client_slug,
        token_hash=token_hash,
        expires_at=timezone.now() + timedelta(hours=settings.SIGNUP_VERIFY_HOURS),
        ip_address=ip_address if ip_address and ip_address != "unknown" else None,
    )
    transaction.on_commit(
        lambda: emails.send_signup_verification(to=email, token=raw, client_name=client_name)
    )
    logger.info("sign-up pending verification", extra={"slug": client_slug})


def signup_verify(*, token: str):
    """Create the user, their client (with its schema) and the owner membership, once."""
    with transaction.atomic():
        signup = (
            SignUp.objects.select_for_update()
            .filter(token_hash=_hash(token), expires_at__gt=timezone.now())
            .first()
        )
        if signup is None:
            raise _invalid_token("verification")
        refusal = _signup_refusal(signup)
        if refusal is None:
            user = User(username=signup.email, email=signup.email, first_name=signup.name)
            user.password = signup.password
            user.save()
            client = client_create(name=signup.client_name, slug=signup.client_slug)
            Membership.objects.create(user=user, client=client, role=Membership.Role.OWNER)
        # Spent either way: the address is registered now, or this sign-up can never succeed.
        SignUp.objects.filter(email__iexact=signup.email).delete()
    if refusal is not None:
        raise refusal
    logger.info("sign-up verified", extra={"client": client.slug})
    return user, client


def _signup_refusal(signup: SignUp) -> ValidationFailedError | None:
    """Why a verified sign-up cannot be created any more (taken since it was made), if so."""
    if selectors.user_get_by_email(email=signup.email) is not None:
        return ValidationFailedError(
            "This address already has an account. Log in instead.",
            details={"email": ["already registered"]},
        )
    try:
        client_slug_check(signup.client_slug)
    except ValidationFailedError:
        return ValidationFailedError(
            f"The slug '{signup.client_slug}' was taken after you signed up. Sign up again "
            "with another slug.",
            details={"slug": ["already exists"]},
        )
    return None


def signups_purge(*, expired_only: bool = True, ids=None) -> int:
    queryset = SignUp.objects.all()
    if expired_only:
        queryset = queryset.filter(expires_at__lte=timezone.now())
    if ids is not None:
        queryset = queryset.filter(pk__in=list(ids))
    count, _ = queryset.delete()
    if count:
        logger.info("unverified sign-ups purged", extra={"count": count})
    return count


# --- invitations -----------------------------------------------------------------------------


def invitation_create(*, client: Client, email: str, role: str, invited_by) -> Invitation:
    """Invite an address to the client; the invitee gets a one-time link by email.

    The same answer whether or not the address has an account; inviting again replaces the
    pending invitation (a new link, the old one stops working).
    """
    if role not in Membership.Role.values:
        raise ValidationFailedError(f"Unknown role '{role}'.", details={"role": ["invalid"]})
    if role == Membership.Role.OWNER and not is_owner_or_staff(invited_by, client):
        raise PermissionDeniedError("Only an owner can add another owner.")
    email = email.lower()
    if Membership.objects.filter(client=client, user__email__iexact=email).exists():
        # Only this client's own members are told apart: its admins list them anyway.
        raise ConflictError(f"{email} is already a member of this client.")
    raw, token_hash = _new_token()
    with transaction.atomic():
        Invitation.objects.filter(client=client, email=email, accepted_at__isnull=True).delete()
        invitation = Invitation.objects.create(
            client=client,
            email=email,
            role=role,
            token_hash=token_hash,
            invited_by=invited_by if getattr(invited_by, "pk", None) else None,
            expires_at=timezone.now() + timedelta(days=settings.INVITATION_DAYS),
        )
    has_account = selectors.user_get_by_email(email=email) is not None
    transaction.on_commit(
        lambda: emails.send_invitation(
            to=email, token=raw, client_name=client.name, role=role, has_account=has_account
        )
    )
    logger.info("invitation sent", extra={"client": client.slug, "role": role})
    return invitation


def _accept(invitation: Invitation, user) -> Membership:
    membership, _ = Membership.objects.get_or_create(
        user=user, client=invitation.client, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at", "updated_at"])
    logger.info("invitation accepted", extra={"client": invitation.client.slug})
    return membership


def invitation_accept(*, token: str, password: str = "", name: str = ""):
    """Accept through the emailed link: (membership, user, whether the account is new).

    A new person chooses their password here. An existing account joins as it is: its
    password is not touched (the link proves the mailbox, not the account).
    """
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update()
            .select_related("client")
            .filter(
                token_hash=_hash(token), accepted_at__isnull=True, expires_at__gt=timezone.now()
            )
            .first()
        )
        if invitation is None:
            raise _invalid_token("invitation")
        user = selectors.user_get_by_email(email=invitation.email)
        created = user is None
        if created:
            if not password:
                raise ValidationFailedError(
                    "Choose a password to create your account.",
                    details={"password": ["required"]},
                )
            user = User(username=invitation.email, email=invitation.email, first_name=name[:150])
            password_check(password, user)
            user.set_password(password)
            user.save()
        return _accept(invitation, user), user, created


def invitation_accept_as_user(*, invitation_id: int, user) -> Membership:
    """Accept, logged in as the invitee (the invitation's address is the account's)."""
    with transaction.atomic():
        invitation = (
            selectors.invitation_pending_for_user(user=user)
            .select_for_update(of=("self",))
            .filter(pk=invitation_id)
            .first()
        )
        if invitation is None:
            raise NotFoundError("No such pending invitation for you.")
        return _accept(invitation, user)


def invitation_revoke(*, client: Client, invitation_id: int) -> None:
    deleted, _ = Invitation.objects.filter(
        client=client, pk=invitation_id, accepted_at__isnull=True
    ).delete()
    if not deleted:
        raise NotFoundError("No such pending invitation in this client.")


def invitations_purge_expired() -> int:
    count, _ = Invitation.objects.filter(
        accepted_at__isnull=True, expires_at__lte=timezone.now()
    ).delete()
    return count


def accounts_purge_expired() -> dict[str, int]:
    """Housekeeping (beat, or `manage.py accounts_purge_expired`): what nobody can use any more."""
    # Expired refresh tokens can never be presented again: their blacklist rows are dead
    # weight (simplejwt's flushexpiredtokens does the same).
    tokens, _ = OutstandingToken.objects.filter(expires_at__lte=timezone.now()).delete()
    return {
        "signups": signups_purge(expired_only=True),
        "invitations": invitations_purge_expired(),
        "tokens": tokens,
    }
