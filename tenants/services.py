"""Writes for clients, users, memberships and API keys."""

from __future__ import annotations

import logging
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_exists

from tenants import selectors
from tenants.authentication import hash_api_key
from tenants.models import (
    SLUG_RE,
    APIKey,
    Client,
    Domain,
    Membership,
    new_callback_secret,
    schema_name_for,
    validate_callback_url,
)
from wafaa.errors import ApplicationError, ConflictError, NotFoundError, PermissionDeniedError

logger = logging.getLogger(__name__)
User = get_user_model()

CLIENT_UPDATABLE_FIELDS = {
    "name",
    "bot_name",
    "persona",
    "languages",
    "llm_model",
    "handoff_keywords",
    "confidence_threshold",
    "fallback_message",
    "unsupported_media",
    "callback_url",
}
STAFF_ONLY_FIELDS = {
    "status",
    "api_requests_per_minute",
    "messages_per_day",
    "max_documents",
    "max_upload_bytes",
    "max_chunks_per_document",
    "max_chunks",
}


class ValidationFailedError(ApplicationError):
    code = "validation_error"
    status_code = 400


def client_slug_check(slug: str) -> None:
    if not SLUG_RE.match(slug):
        raise ValidationFailedError(
            "The slug must be 1-42 lowercase letters, digits or '-', not starting or ending "
            "with '-'.",
            details={"slug": ["invalid"]},
        )
    # A schema of that name without a client (left by hand, or a failed restore) takes the slug
    # too: django-tenants would silently adopt it without migrating, and a rollback drop it.
    if Client.objects.filter(slug=slug).exists() or schema_exists(schema_name_for(slug)):
        raise ValidationFailedError(
            f"A client with slug '{slug}' already exists. Pick another slug.",
            details={"slug": ["already exists"]},
        )


def _check_callback_url(url: str) -> None:
    """Refuse a callback URL the outbound guard refuses (wafaa.netguard); blank is fine."""
    if not url:
        return
    try:
        validate_callback_url(url)
    except DjangoValidationError as exc:
        raise ValidationFailedError(
            " ".join(exc.messages), details={"callback_url": exc.messages}
        ) from exc


def client_create(*, name: str, slug: str, **fields) -> Client:
    """Create a client and its schema (cloned from the template schema when it exists).

    If any step fails, the client row and its schema are removed: no half-created client.
    """
    client_slug_check(slug)
    unknown = set(fields) - CLIENT_UPDATABLE_FIELDS - STAFF_ONLY_FIELDS
    if unknown:
        raise ValidationFailedError(f"Unknown client fields: {', '.join(sorted(unknown))}.")
    _check_callback_url(fields.get("callback_url", ""))
    client = Client(name=name, slug=slug, schema_name=schema_name_for(slug), **fields)
    try:
        with transaction.atomic():
            # Creates and migrates the schema (auto_create_schema); quietly, as this runs in
            # web requests whose stdout is the JSON log stream.
            client.save(verbosity=0)
            Domain.objects.create(
                domain=f"{slug}.{settings.TENANT_DOMAIN_SUFFIX}", tenant=client, is_primary=True
            )
    except Exception:
        logger.exception("client creation failed; rolling back", extra={"slug": slug})
        if client.pk and schema_exists(client.schema_name):
            client.delete(force_drop=True)
        connection.set_schema_to_public()
        raise
    connection.set_schema_to_public()
    logger.info("client created", extra={"client": slug})
    return client


def client_update(*, client: Client, data: dict, by_staff: bool) -> Client:
    allowed = CLIENT_UPDATABLE_FIELDS | (STAFF_ONLY_FIELDS if by_staff else set())
    forbidden = set(data) - allowed
    if forbidden:
        raise PermissionDeniedError(
            f"Only platform staff can change: {', '.join(sorted(forbidden))}.",
            details={field: ["staff only"] for field in forbidden},
        )
    fields = [*data.keys(), "updated_at"]
    if "callback_url" in data:
        _check_callback_url(data["callback_url"])
        if data["callback_url"] and not client.callback_secret:
            # A client made before secrets were made with it: never sign with an empty key.
            client.callback_secret = new_callback_secret()
            fields.append("callback_secret")
    for field, value in data.items():
        setattr(client, field, value)
    client.save(update_fields=fields)
    selectors.client_cache_forget(client_id=client.pk)
    return client


def client_set_status(*, client: Client, status: str) -> Client:
    client.status = status
    client.save(update_fields=["status", "updated_at"])
    selectors.client_cache_forget(client_id=client.pk)
    logger.info("client status changed", extra={"client": client.slug, "status": status})
    return client


def password_check(password: str, user=None) -> None:
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationFailedError(
            " ".join(exc.messages), details={"password": exc.messages}
        ) from exc


def user_create(*, email: str, password: str | None, name: str = "") -> User:
    if selectors.user_get_by_email(email=email):
        raise ValidationFailedError(
            "An account with this email already exists. Log in instead.",
            details={"email": ["already registered"]},
        )
    user = User(username=email.lower(), email=email.lower(), first_name=name[:150])
    if password:
        password_check(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    return user


def is_owner_or_staff(user, client: Client) -> bool:
    if getattr(user, "is_staff", False):
        return True
    if getattr(user, "api_key", None) is not None:
        return False
    return Membership.objects.filter(user=user, client=client, role=Membership.Role.OWNER).exists()


@transaction.atomic
def membership_remove(*, client: Client, membership_id: int, removed_by) -> None:
    membership = Membership.objects.filter(client=client, pk=membership_id).first()
    if membership is None:
        raise NotFoundError("No such member in this client.")
    if membership.role == Membership.Role.OWNER:
        if not is_owner_or_staff(removed_by, client):
            raise PermissionDeniedError("Only an owner can remove an owner.")
        # Lock the owners: two owners removing each other at once must not leave none.
        owners = Membership.objects.select_for_update().filter(
            client=client, role=Membership.Role.OWNER
        )
        if len(owners) <= 1:
            raise ConflictError("A client keeps at least one owner. Add another owner first.")
    membership.delete()


def api_key_create(*, client: Client, name: str, role: str, created_by) -> tuple[APIKey, str]:
    """Create an API key; the raw key is returned once and only its hash is stored."""
    if role not in Membership.Role.values or role == Membership.Role.OWNER:
        raise ValidationFailedError(
            "An API key's role is 'admin' or 'agent'.", details={"role": ["invalid"]}
        )
    prefix = secrets.token_hex(4)
    raw_key = f"{settings.API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = APIKey.objects.create(
        client=client,
        name=name,
        prefix=prefix,
        hashed_key=hash_api_key(raw_key),
        role=role,
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )
    logger.info("api key created", extra={"client": client.slug, "prefix": prefix})
    return api_key, raw_key


def api_key_revoke(*, client: Client, key_id: int) -> APIKey:
    api_key = APIKey.objects.filter(client=client, pk=key_id).first()
    if api_key is None:
        raise NotFoundError("No such API key in this client.")
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at", "updated_at"])
        logger.info("api key revoked", extra={"client": client.slug, "prefix": api_key.prefix})
    return api_key


USAGE_COUNTERS = (
    "messages_in",
    "messages_out",
    "bot_answers",
    "handoffs",
    "prompt_tokens",
    "completion_tokens",
)


def usage_add(*, client_id: int, **counts: int) -> None:
    """Add to today's usage counters of a client (atomic increments, safe under concurrency)."""
    from django.db.models import F

    from tenants.models import DailyUsage

    unknown = set(counts) - set(USAGE_COUNTERS)
    if unknown:
        raise ValueError(f"unknown usage counters: {sorted(unknown)}")
    counts = {name: value for name, value in counts.items() if value}
    if not counts:
        return
    day = timezone.localdate()
    increments = {name: F(name) + value for name, value in counts.items()}
    # One UPDATE in the common case; the day's row is created on its first count.
    if not DailyUsage.objects.filter(client_id=client_id, day=day).update(**increments):
        DailyUsage.objects.get_or_create(client_id=client_id, day=day)
        DailyUsage.objects.filter(client_id=client_id, day=day).update(**increments)


def callback_secret_rotate(*, client: Client) -> str:
    """A new signing secret for the client's event callbacks; the old one stops working."""
    client = Client.objects.get(pk=client.pk)
    client.callback_secret = new_callback_secret()
    client.save(update_fields=["callback_secret", "updated_at"])
    selectors.client_cache_forget(client_id=client.pk)
    return client.callback_secret
