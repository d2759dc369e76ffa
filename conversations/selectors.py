"""Reads of contacts, conversations and messages (current client's schema)."""

from __future__ import annotations

from datetime import date, datetime

from django.db.models import Prefetch, QuerySet

from conversations.models import (
    AnswerEvaluation,
    Contact,
    Conversation,
    ConversationEvent,
    Message,
)


def conversation_list(
    *,
    mode: str | None = None,
    channel: str | None = None,
    contact_id: int | None = None,
    updated_since: datetime | None = None,
) -> QuerySet[Conversation]:
    queryset = Conversation.objects.select_related("contact").order_by("-updated_at", "-pk")
    if mode:
        queryset = queryset.filter(mode=mode)
    if channel:
        queryset = queryset.filter(channel=channel)
    if contact_id:
        queryset = queryset.filter(contact_id=contact_id)
    if updated_since:
        queryset = queryset.filter(updated_at__gte=updated_since)
    return queryset


def conversation_get_plain(*, conversation_id: int) -> Conversation | None:
    """The conversation and its contact only (for actions that do not show the transcript)."""
    return Conversation.objects.select_related("contact").filter(pk=conversation_id).first()


def conversation_get(*, conversation_id: int) -> Conversation | None:
    """The conversation with its whole transcript and events (the detail view)."""
    return (
        Conversation.objects.select_related("contact")
        .prefetch_related(
            Prefetch("messages", queryset=Message.objects.order_by("created_at", "pk")),
            Prefetch("events", queryset=ConversationEvent.objects.order_by("created_at")),
        )
        .filter(pk=conversation_id)
        .first()
    )


def contact_list(*, channel: str | None = None) -> QuerySet[Contact]:
    queryset = Contact.objects.order_by("-last_seen_at", "-pk")
    return queryset.filter(channel=channel) if channel else queryset


def contact_get(*, contact_id: int) -> Contact | None:
    return Contact.objects.filter(pk=contact_id).first()


def usage_list(*, client, start: date, end: date):
    from tenants.models import DailyUsage

    return DailyUsage.objects.filter(client=client, day__gte=start, day__lte=end).order_by("day")


def answer_evaluation_get(*, evaluation_id) -> AnswerEvaluation | None:
    return AnswerEvaluation.objects.filter(pk=evaluation_id).first()
