"""Channel accounts (public schema): a WhatsApp number or Instagram account of a client.

They live in `public` so a webhook can be routed to its client before any schema is chosen.
Access tokens and app secrets are encrypted at rest (wafaa.crypto) and never returned.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from tenants.models import Client
from wafaa.crypto import EncryptedTextField
from wafaa.models import TimeStampedModel


def new_verify_token() -> str:
    return secrets.token_urlsafe(24)


class ChannelAccount(TimeStampedModel):
    class Kind(models.TextChoices):
        WHATSAPP = "whatsapp", "WhatsApp"
        INSTAGRAM = "instagram", "Instagram"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        INACTIVE = "inactive", "Inactive"
        SUSPENDED = "suspended", "Suspended"
        CREDENTIALS_INVALID = "credentials_invalid", "Credentials invalid"

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="channel_accounts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=100, blank=True, default="")
    # WhatsApp: phone number id; Instagram: the Instagram account id (entry id in webhooks).
    external_id = models.CharField(max_length=64)
    business_account_id = models.CharField(max_length=64, blank=True, default="")
    display_phone_number = models.CharField(max_length=32, blank=True, default="")
    access_token = EncryptedTextField()
    app_secret = EncryptedTextField()
    verify_token = models.CharField(max_length=128, default=new_verify_token)
    graph_api_version = models.CharField(max_length=16, default=settings.GRAPH_API_VERSION)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.ACTIVE)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    silent_flagged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "external_id"], name="unique_channel_external_id"
            ),
        ]
        indexes = [models.Index(fields=["client", "kind"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.display_phone_number or self.external_id}"

    @property
    def can_receive(self) -> bool:
        return self.status in {self.Status.ACTIVE, self.Status.CREDENTIALS_INVALID}


class InboxEvent(models.Model):
    """One verified webhook POST for one client, as Meta sent it (the durable inbox).

    The webhook view writes it in one INSERT and answers 200; workers drain it into the
    client's schema (conversations.inbound). `account_ids` are the channel accounts (Meta ids)
    whose signature verified this body: only their entries are ever processed. An app-level
    POST that serves several clients is stored as one row per client. Rows are kept for
    INBOX_RETENTION_HOURS after processing (replay, debugging), then pruned.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        PARKED = "parked", "Parked (failed every attempt)"

    id = models.BigAutoField(primary_key=True)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=16, choices=ChannelAccount.Kind.choices)
    account_ids = ArrayField(models.CharField(max_length=64))
    received_at = models.DateTimeField(default=timezone.now)
    trace_id = models.CharField(max_length=64, blank=True, default="")
    body = models.BinaryField()
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # A claimed event is not claimed again before this (a crashed drain's lease runs out).
    leased_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The drain's claim: a client's pending events in order.
            models.Index(
                fields=["client", "id"],
                name="inbox_pending_by_client",
                condition=models.Q(state="pending"),
            ),
            models.Index(fields=["state", "received_at"], name="inbox_state_received"),
            models.Index(fields=["client", "received_at"], name="inbox_client_received"),
        ]

    def __str__(self) -> str:
        return f"inbox {self.pk} ({self.kind}, {self.state})"
