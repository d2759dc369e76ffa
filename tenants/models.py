"""Clients (the tenants), their domains, users' memberships and API keys. All in `public`."""

from __future__ import annotations

import base64
import re
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

from wafaa import netguard
from wafaa.crypto import EncryptedTextField
from wafaa.models import TimeStampedModel

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,40}[a-z0-9])?$")


def schema_name_for(slug: str) -> str:
    # Schema names allow no '-'; a prefix keeps client schemas apart from ours (public, template).
    return "c_" + slug.replace("-", "_")


def new_callback_secret() -> str:
    """A Standard Webhooks signing secret: "whsec_" and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def validate_callback_url(value: str) -> None:
    """Save-time check of a callback URL by the outbound guard (checked again when called)."""
    try:
        netguard.outbound_url_check(value)
    except netguard.OutboundURLRefusedError as exc:
        raise ValidationError(exc.message, code=exc.code) from exc


def default_languages() -> list[str]:
    return ["en", "ar"]


def default_handoff_keywords() -> list[str]:
    return [
        "human",
        "agent",
        "person",
        "representative",
        "speak to someone",
        "موظف",
        "انسان",
        "إنسان",
        "خدمة العملاء",
        "شخص حقيقي",
        "humain",
        "conseiller",
        "persona",
        "agente",
    ]


class Client(TenantMixin, TimeStampedModel):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    class UnsupportedMedia(models.TextChoices):
        REPLY = "reply", "Reply that only text is understood"
        HANDOFF = "handoff", "Hand over to a person"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=42, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)

    # Plan limits.
    api_requests_per_minute = models.PositiveIntegerField(default=120)
    messages_per_day = models.PositiveIntegerField(default=2000)
    max_documents = models.PositiveIntegerField(default=200)
    max_upload_bytes = models.PositiveIntegerField(default=10 * 1024 * 1024)
    # Replies of this client generated at the same moment (LLM calls in flight); more wait in
    # the client's own line (conversations/fairness.py), so one client's burst never takes
    # the whole reply worker.
    llm_concurrency = models.PositiveIntegerField(default=20)
    # Chunks indexed from one document (a CSV row is one chunk) and in all documents: they
    # bound ingestion's time and the worker's memory, and the index's size.
    max_chunks_per_document = models.PositiveIntegerField(default=10_000)
    max_chunks = models.PositiveIntegerField(default=100_000)

    # The bot's settings.
    bot_name = models.CharField(max_length=80, default="Wafaa")
    persona = models.TextField(
        blank=True,
        default="You are a friendly, concise customer-service assistant for this business.",
    )
    languages = models.JSONField(default=default_languages, blank=True)
    llm_model = models.CharField(max_length=100, blank=True, default="")
    handoff_keywords = models.JSONField(default=default_handoff_keywords, blank=True)
    confidence_threshold = models.FloatField(
        default=0.6,
        help_text="Minimum calibrated confidence (0..1) to answer from the knowledge.",
    )
    # Blank: a built-in message in the customer's language (wafaa.ai.answerer).
    fallback_message = models.TextField(blank=True, default="")
    unsupported_media = models.CharField(
        max_length=16, choices=UnsupportedMedia.choices, default=UnsupportedMedia.REPLY
    )

    # Notifications to the client's own systems.
    callback_url = models.URLField(blank=True, default="", validators=[validate_callback_url])
    # Made with the client, so callbacks are never signed with an empty key.
    callback_secret = EncryptedTextField(blank=True, default=new_callback_secret)

    auto_create_schema = True
    auto_drop_schema = True

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    def effective_model(self) -> str:
        return self.llm_model or settings.LLM_MODEL

    def create_schema(self, check_if_exists=False, sync_schema=True, verbosity=1):
        """Copy the migrated template schema when it is ready (fast), else run the migrations."""
        from django.db import transaction
        from django_tenants.utils import schema_exists

        from tenants import cloning

        if sync_schema and cloning.template_ready():
            if check_if_exists and schema_exists(self.schema_name):
                return False
            with transaction.atomic():
                cloning.clone_template_into(self.schema_name)
            return True
        return super().create_schema(check_if_exists, sync_schema, verbosity)


class Domain(DomainMixin):
    pass


class Membership(TimeStampedModel):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        AGENT = "agent", "Agent"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "client"], name="unique_membership"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.client.slug} ({self.role})"


class APIKey(TimeStampedModel):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    # SHA-256 of the whole key: keys are 256-bit random, so a slow hash adds nothing.
    hashed_key = models.CharField(max_length=64, unique=True)
    role = models.CharField(
        max_length=16, choices=Membership.Role.choices, default=Membership.Role.ADMIN
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class DailyUsage(models.Model):
    """Per client and day: messages in/out, bot answers, handoffs, tokens (public schema)."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="usage")
    day = models.DateField()
    messages_in = models.PositiveIntegerField(default=0)
    messages_out = models.PositiveIntegerField(default=0)
    bot_answers = models.PositiveIntegerField(default=0)
    handoffs = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "day"], name="unique_usage_day")]
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"{self.client_id} {self.day}"


class SignUp(TimeStampedModel):
    """A registration waiting for its email to be verified: no user, client or schema yet.

    Verifying the emailed link creates all three (tenants.accounts.signup_verify). Rows that
    are never verified are purged when they expire (admin action, command, beat task).
    """

    email = models.EmailField()
    name = models.CharField(max_length=150, blank=True, default="")
    # A Django password hash, copied onto the user on verification; the password is never kept.
    password = models.CharField(max_length=128)
    client_name = models.CharField(max_length=200)
    client_slug = models.CharField(max_length=42)
    # SHA-256 of the emailed one-time token (256-bit random, so a slow hash adds nothing).
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField(db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        verbose_name = "unverified sign-up"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} → {self.client_slug}"


class Invitation(TimeStampedModel):
    """An invitation to join a client, emailed to the invitee; no membership until accepted."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(
        max_length=16, choices=Membership.Role.choices, default=Membership.Role.AGENT
    )
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(db_index=True)
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Inviting someone again replaces their pending invitation (a new link).
            models.UniqueConstraint(
                fields=["client", "email"],
                condition=models.Q(accepted_at__isnull=True),
                name="one_pending_invitation_per_email",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.client_id} ({self.role})"
