"""The emails of the account flows (sign-up verification, invitations), plain text.

Sent after the database commit that created what they point to. The one-time token travels
only in the email: it is not logged, not stored (only its hash) and not put in a task.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.core.mail import send_mail

logger = logging.getLogger(__name__)


def _link(page: str, token: str) -> str:
    return f"{settings.ACCOUNT_LINKS_BASE_URL.rstrip('/')}/{page}?{urlencode({'token': token})}"


def _send(*, to: str, subject: str, body: str, kind: str) -> None:
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to])
    except Exception:
        # The row is committed; the person can ask again (register or be invited again).
        logger.exception("account email not sent", extra={"email_kind": kind})
        return
    logger.info("account email sent", extra={"email_kind": kind})


def send_signup_verification(*, to: str, token: str, client_name: str) -> None:
    hours = settings.SIGNUP_VERIFY_HOURS
    _send(
        to=to,
        kind="signup_verification",
        subject="Confirm your email to create your Wafaa account",
        body=(
            f"Someone (hopefully you) signed up to Wafaa with this address for "
            f'"{client_name}".\n\n'
            f"Confirm it within {hours} hours to create the account:\n{_link('verify-email', token)}\n\n"
            f"(Apps post this token to /api/v1/auth/verify-email.)\n"
            f"If it was not you, ignore this email: nothing is created without it.\n"
        ),
    )


def send_signup_existing_account(*, to: str) -> None:
    # Sent instead of a verification when the address already has an account, so the sign-up
    # answer is the same either way and does not tell a stranger who is registered.
    _send(
        to=to,
        kind="signup_existing_account",
        subject="You already have a Wafaa account",
        body=(
            "Someone tried to sign up to Wafaa with this address, which already has an "
            "account. Log in with your password instead.\n"
            "If it was not you, you can ignore this email; your account is unchanged.\n"
        ),
    )


def send_invitation(*, to: str, token: str, client_name: str, role: str, has_account: bool) -> None:
    days = settings.INVITATION_DAYS
    if has_account:
        how = (
            "Accept it with the link below, or log in and accept it from your pending "
            "invitations. Your login and your other teams are unchanged until you accept."
        )
    else:
        how = "Choose your password with the link below to join."
    _send(
        to=to,
        kind="invitation",
        subject=f"You are invited to join {client_name} on Wafaa",
        body=(
            f'You are invited to join "{client_name}" on Wafaa as {role}.\n{how}\n\n'
            f"{_link('accept-invitation', token)}\n\n"
            f"(Apps post this token to /api/v1/auth/invitations/accept.) The link works once "
            f"and expires in {days} days. If you do not expect this, ignore it.\n"
        ),
    )
