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
    ad_source_id: str | None = None,
    from_ad: bool | None = None,
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
    if ad_source_id:
        queryset = queryset.filter(ad_source_id=ad_source_id)
    if from_ad is not None:
        queryset = (
            queryset.exclude(ad_source_type="") if from_ad else queryset.filter(ad_source_type="")
        )
    return queryset


def order_list(*, conversation_id: int | None = None) -> QuerySet[Message]:
    """Orders customers placed (newest first), with their conversation's contact."""
    queryset = (
        Message.objects.filter(direction=Message.Direction.IN, order__isnull=False)
        .select_related("conversation__contact")
        .order_by("-created_at", "-pk")
    )
    return queryset.filter(conversation_id=conversation_id) if conversation_id else queryset


def ad_usage_list(*, start: date, end: date) -> list[dict]:
    """Per ad (or product): inbound messages that came from it and conversations they opened,
    between two days (inclusive), most messages first."""
    from django.db.models import Count
    from django.db.models.fields.json import KT

    rows = (
        Message.objects.filter(
            direction=Message.Direction.IN,
            referral__isnull=False,
            created_at__date__gte=start,
            created_at__date__lte=end,
        )
        .annotate(
            source_id=KT("referral__source_id"),
            product=KT("referral__product_retailer_id"),
            source_type=KT("referral__source_type"),
            headline=KT("referral__headline"),
        )
        .values("source_id", "product", "source_type", "headline")
        .annotate(messages=Count("pk"), conversations=Count("conversation", distinct=True))
        .order_by("-messages")
    )
    return [
        {
            "source_id": row["source_id"] or row["product"] or "",
            "source_type": row["source_type"] or "",
            "headline": row["headline"] or "",
            "messages": row["messages"],
            "conversations": row["conversations"],
        }
        for row in rows
    ]


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
