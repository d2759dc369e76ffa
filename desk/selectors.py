"""What the inbox reads, in the current client's schema: the list in its working order, one
conversation's transcript arranged for reading, and the cheap change stamps the live polls
compare (docs/inbox.md, "Live updates")."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Case, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.utils import timezone

from conversations import pipeline
from conversations.models import Conversation, ConversationEvent, Message

PAGE_SIZE = 50
WINDOW = timedelta(hours=24)
# Inbound kinds shown on the message they point at rather than as messages of their own.
REACTION = "reaction"


@dataclass(frozen=True)
class InboxFilters:
    """The list's filters, from the query string (unknown values are ignored, not errors)."""

    mode: str = ""  # "" = the open ones (waiting for a person, then the bot's)
    channel: str = ""
    mine: bool = False
    ad: str = ""  # "" | "any" (came from an ad) | an ad/source id
    unread: bool = False
    q: str = ""

    @classmethod
    def from_query(cls, query) -> InboxFilters:
        mode = query.get("mode", "")
        channel = query.get("channel", "")
        return cls(
            mode=mode if mode in {*Conversation.Mode.values, "all"} else "",
            channel=channel if channel in {"whatsapp", "instagram"} else "",
            mine=query.get("mine") in {"1", "on", "true"},
            ad=query.get("ad", "").strip()[:128],
            unread=query.get("unread") in {"1", "on", "true"},
            q=query.get("q", "").strip()[:100],
        )

    def as_query(self) -> dict[str, str]:
        """The filters as query parameters (the poll and the pages keep them)."""
        values = {
            "mode": self.mode,
            "channel": self.channel,
            "mine": "1" if self.mine else "",
            "ad": self.ad,
            "unread": "1" if self.unread else "",
            "q": self.q,
        }
        return {key: value for key, value in values.items() if value}


def conversation_inbox(*, filters: InboxFilters, agent_email: str) -> QuerySet[Conversation]:
    """Waiting for a person first (longest wait first), then the bot's (latest first); each
    with its contact and the text of its latest message (one statement)."""
    latest = Message.objects.filter(conversation=OuterRef("pk")).order_by("-created_at", "-pk")
    queryset = Conversation.objects.select_related("contact").annotate(
        waiting_first=Case(
            When(mode=Conversation.Mode.HANDOFF, then=Value(0)),
            When(mode=Conversation.Mode.BOT, then=Value(1)),
            default=Value(2),
            output_field=IntegerField(),
        ),
        last_text=Subquery(latest.values("text")[:1]),
        last_type=Subquery(latest.values("type")[:1]),
    )
    if filters.mode in Conversation.Mode.values:
        queryset = queryset.filter(mode=filters.mode)
    elif filters.mode != "all":
        queryset = queryset.exclude(mode=Conversation.Mode.CLOSED)
    if filters.channel:
        queryset = queryset.filter(channel=filters.channel)
    if filters.mine:
        queryset = queryset.filter(assigned_agent_email=agent_email)
    if filters.ad == "any":
        queryset = queryset.exclude(ad_source_type="")
    elif filters.ad:
        queryset = queryset.filter(ad_source_id=filters.ad)
    if filters.unread:
        queryset = queryset.filter(unread_count__gt=0)
    if filters.q:
        match = Q(contact__name__icontains=filters.q)
        digits = re.sub(r"\D", "", filters.q)
        if digits:
            match |= Q(contact__phone__contains=digits) | Q(contact__wa_id__contains=digits)
        match |= Q(contact__external_id=filters.q)
        queryset = queryset.filter(match)
    return queryset.order_by(
        "waiting_first", F("handoff_at").asc(nulls_last=True), "-updated_at", "-pk"
    )


def inbox_page(*, filters: InboxFilters, agent_email: str, page: str | int | None) -> Page:
    paginator = Paginator(conversation_inbox(filters=filters, agent_email=agent_email), PAGE_SIZE)
    return paginator.get_page(page)


def window_left(conversation: Conversation, now: datetime | None = None) -> timedelta | None:
    """What is left of the customer's 24-hour window (None: closed, or never opened)."""
    if conversation.last_inbound_at is None:
        return None
    left = conversation.last_inbound_at + WINDOW - (now or timezone.now())
    return left if left > timedelta(0) else None


# --- the live polls' stamps -----------------------------------------------------------------


def inbox_stamp() -> str:
    """Changes when any conversation changes (a message in or out, a mode change) or the
    number waiting for a person does; and once a minute, so waited times and windows move.
    One statement, served from two indexes (updated_at; mode, handoff_at)."""
    table = Conversation._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT max(updated_at) FROM {table}),"  # noqa: S608 - our table name
            f" (SELECT count(*) FROM {table} WHERE mode = %s)",
            [Conversation.Mode.HANDOFF],
        )
        last, waiting = cursor.fetchone()
    return _stamp(last, waiting)


def conversation_stamp(*, conversation_id: int) -> str | None:
    """Changes when the conversation or any of its messages changes (a status, an edit, a
    deletion, a new message), when the number waiting for a person changes, and once a
    minute. One statement; None when there is no such conversation."""
    conversations = Conversation._meta.db_table
    messages = Message._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.updated_at, c.unread_count,"  # noqa: S608 - our table names
            f" (SELECT max(m.updated_at) FROM {messages} m WHERE m.conversation_id = c.id),"
            f" (SELECT count(*) FROM {conversations} WHERE mode = %s)"
            f" FROM {conversations} c WHERE c.id = %s",
            [Conversation.Mode.HANDOFF, conversation_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    updated, unread, last_message, waiting = row
    return _stamp(updated, unread, last_message, waiting)


def _stamp(*parts) -> str:
    minute = int(timezone.now().timestamp() // 60)
    values = [p.isoformat() if isinstance(p, datetime) else str(p) for p in parts]
    # Short and opaque in the poll's URL; only equality matters.
    return hashlib.blake2b("|".join([*values, str(minute)]).encode(), digest_size=8).hexdigest()


def handoff_count() -> int:
    return Conversation.objects.filter(mode=Conversation.Mode.HANDOFF).count()


# --- one conversation -----------------------------------------------------------------------


@dataclass
class Entry:
    """One line of the transcript: a message (with the reactions on it) or an event."""

    at: datetime
    message: Message | None = None
    event: ConversationEvent | None = None
    reactions: list[str] = field(default_factory=list)


def transcript(conversation: Conversation) -> list[Entry]:
    """Messages and events in time order; a reaction is shown on the message it reacts to
    (the latest reaction counts, an empty one removed it), not as a message of its own."""
    messages = list(conversation.messages.all())
    by_external = {m.external_id: m for m in messages if m.external_id}
    reactions: dict[int, str] = {}
    entries: list[Entry] = []
    for message in messages:
        target = by_external.get(message.reply_to_external_id)
        if message.type == REACTION and target is not None:
            reactions[target.pk] = message.text
            continue
        entries.append(Entry(at=message.created_at, message=message))
    for entry in entries:
        emoji = reactions.get(entry.message.pk)
        if emoji:
            entry.reactions.append(emoji)
    entries.extend(Entry(at=e.created_at, event=e) for e in conversation.events.all())
    entries.sort(key=lambda entry: entry.at)
    return entries


def customer_language(*, client, conversation: Conversation) -> str:
    """The language of the customer's latest words (the same detection the bot answers by);
    empty when they wrote none."""
    texts = [
        m.text or m.transcript
        for m in conversation.messages.all()
        if m.direction == Message.Direction.IN and (m.text or m.transcript) and m.type != REACTION
    ][-3:]
    return pipeline.question_language(client, " ".join(texts)) if texts else ""


def ad_sources(*, limit: int = 50) -> list[dict]:
    """The ads (or products) conversations came from, for the list's filter."""
    return list(
        Conversation.objects.exclude(ad_source_id="")
        .values("ad_source_id", "ad_headline")
        .order_by("ad_source_id", "ad_headline")
        .distinct()[:limit]
    )
