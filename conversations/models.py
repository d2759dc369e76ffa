"""Contacts, conversations and messages of one client (client schema)."""

from __future__ import annotations

from django.db import models

from wafaa.models import TimeStampedModel, UUIDModel


class Contact(TimeStampedModel):
    channel = models.CharField(max_length=16)  # whatsapp | instagram
    # The key we match on: WhatsApp's business-scoped user_id when present, else wa_id;
    # the Instagram-scoped user id on Instagram.
    external_id = models.CharField(max_length=128)
    wa_id = models.CharField(max_length=32, blank=True, default="")
    user_id = models.CharField(max_length=128, blank=True, default="")
    name = models.CharField(max_length=200, blank=True, default="")
    phone = models.CharField(max_length=32, blank=True, default="")
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # WhatsApp numbers this customer had before (`user_changed_number`), oldest first, and
    # when their identity last changed (a new number or a new security identity).
    previous_wa_ids = models.JSONField(default=list, blank=True)
    identity_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "external_id"], name="unique_contact"),
        ]
        indexes = [models.Index(fields=["channel", "wa_id"])]

    def __str__(self) -> str:
        return self.name or self.external_id


class Conversation(TimeStampedModel):
    class Mode(models.TextChoices):
        BOT = "bot", "Bot answers"
        HANDOFF = "handoff", "A person answers"
        CLOSED = "closed", "Closed"

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="conversations")
    # A public-schema ChannelAccount id (no cross-schema foreign key).
    channel_account_id = models.BigIntegerField()
    channel = models.CharField(max_length=16)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.BOT, db_index=True)
    assigned_agent_email = models.CharField(max_length=254, blank=True, default="")
    handoff_reason = models.CharField(max_length=64, blank=True, default="")
    handoff_at = models.DateTimeField(null=True, blank=True)
    low_confidence_streak = models.PositiveSmallIntegerField(default=0)
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    last_outbound_at = models.DateTimeField(null=True, blank=True)
    unread_count = models.PositiveIntegerField(default=0)
    # The ad (or product) that brought the customer here, from the latest referral: what a
    # business pays for click-to-WhatsApp and Instagram ads and wants to see the return of.
    ad_source_type = models.CharField(max_length=32, blank=True, default="")
    ad_source_id = models.CharField(max_length=128, blank=True, default="", db_index=True)
    ad_source_url = models.TextField(blank=True, default="")
    ad_headline = models.CharField(max_length=300, blank=True, default="")
    ad_ctwa_clid = models.CharField(max_length=512, blank=True, default="")
    ad_referred_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["-updated_at"]),
            models.Index(fields=["mode", "handoff_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.contact} ({self.mode})"


class Message(TimeStampedModel):
    class Direction(models.TextChoices):
        IN = "in", "Inbound"
        OUT = "out", "Outbound"

    class Author(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        BOT = "bot", "Bot"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSING = "processing", "Processing"
        ANSWERED = "answered", "Answered"
        STORED = "stored", "Stored (no reply due)"
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        READ = "read", "Read"
        FAILED = "failed", "Failed"
        NOT_SENT = "not_sent", "Draft not sent"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    direction = models.CharField(max_length=4, choices=Direction.choices)
    author = models.CharField(max_length=16, choices=Author.choices)
    type = models.CharField(max_length=32, default="text")
    text = models.TextField(blank=True, default="")
    media_id = models.CharField(max_length=128, blank=True, default="")
    media_url = models.TextField(blank=True, default="")
    media_mime_type = models.CharField(max_length=100, blank=True, default="")
    # Meta's id (wamid / mid); unique, so a redelivered webhook stores nothing new.
    external_id = models.CharField(max_length=256, unique=True, null=True, blank=True)
    reply_to_external_id = models.CharField(max_length=256, blank=True, default="")
    # The machine-readable choice behind a tap (a reply button's id, a quick reply's payload).
    payload = models.CharField(max_length=1000, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, db_index=True)
    failure_reason = models.CharField(max_length=64, blank=True, default="")
    failure_detail = models.TextField(blank=True, default="")
    # The inbound messages this reply answers (a burst is answered once).
    in_reply_to = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="replies"
    )
    citations = models.JSONField(default=list, blank=True)  # [{chunk_id, document, score}]
    model = models.CharField(max_length=100, blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    trace_id = models.CharField(max_length=128, blank=True, default="", db_index=True)
    author_email = models.CharField(max_length=254, blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    # What a kind of message carries beyond text (see docs/channels.md): a catalogue order,
    # ad attribution, Meta's errors on the message, a call permission answer, every attachment.
    order = models.JSONField(null=True, blank=True)
    referral = models.JSONField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True)
    call_permission = models.JSONField(null=True, blank=True)
    attachments = models.JSONField(default=list, blank=True)
    # The customer edited (`text` is the new text; earlier versions in raw["edits"]) or unsent it.
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # A voice note's words, or what a vision model saw in a picture; answered like text.
    transcript = models.TextField(blank=True, default="")
    # Outbound: the template (name, language, parameters) or the reply buttons this message is.
    template = models.JSONField(null=True, blank=True)
    buttons = models.JSONField(default=list, blank=True)
    raw = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["conversation", "created_at"]),
            models.Index(fields=["direction", "status", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.type} {self.external_id or self.pk}"


class ConversationEvent(models.Model):
    """Who did what to a conversation: handoff, resume, close, agent reply, fallback."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32)
    actor = models.CharField(max_length=254)  # an email, "bot", "system" or "customer"
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor}"


class AnswerEvaluation(UUIDModel):
    """One run of a question set through the reply drafting (conversations.evaluation),
    started through the API and run by a worker; progress and result are kept here."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    questions = models.JSONField(default=list)  # [{question, expected: [...], language}]
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_by_email = models.CharField(max_length=254, blank=True, default="")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"evaluation {self.pk} ({self.status}, {self.done}/{self.total})"
