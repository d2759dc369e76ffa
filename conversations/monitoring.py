"""What customers feel, sampled for alerts: replies they wait for, windows about to close,
handoffs nobody picked up.

One beat task (`customer_waits_sample_task`, every minute) reads each active client's schema
with one aggregate query and sets gauges over all clients (so no per-client label is needed):

- the oldest inbound message neither answered nor handed to a person (seconds): a reply path
  that is stuck shows here before anyone complains;
- conversations whose customer's 24-hour window closes within the hour with their last
  message unanswered: after it closes, only a paid template can reach them;
- handoffs waiting for a person longer than HANDOFF_WAITING_ALERT_MINUTES with no reply since.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Min, Q
from django.utils import timezone
from django_tenants.utils import tenant_context

from conversations.models import Conversation, Message
from wafaa import metrics

logger = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)
WINDOW_WARNING = timedelta(hours=1)
OPEN_STATUSES = (Message.Status.RECEIVED, Message.Status.PROCESSING)


def client_waits(*, now=None) -> dict:
    """This client's figures (call inside its schema)."""
    now = now or timezone.now()
    oldest = Message.objects.filter(
        direction=Message.Direction.IN, status__in=OPEN_STATUSES
    ).aggregate(oldest=Min("created_at"))["oldest"]
    unanswered = Q(last_outbound_at__isnull=True) | Q(last_outbound_at__lt=F("last_inbound_at"))
    closing = (
        Conversation.objects.exclude(mode=Conversation.Mode.CLOSED)
        .filter(unanswered)
        .filter(
            last_inbound_at__lte=now - (WINDOW - WINDOW_WARNING),
            last_inbound_at__gt=now - WINDOW,
        )
        .count()
    )
    waiting_since = now - timedelta(minutes=settings.HANDOFF_WAITING_ALERT_MINUTES)
    handoffs_waiting = (
        Conversation.objects.filter(mode=Conversation.Mode.HANDOFF, handoff_at__lt=waiting_since)
        .filter(Q(last_outbound_at__isnull=True) | Q(last_outbound_at__lt=F("handoff_at")))
        .count()
    )
    return {
        "oldest_unanswered_seconds": (now - oldest).total_seconds() if oldest else 0.0,
        "window_closing": closing,
        "handoffs_waiting": handoffs_waiting,
    }


def customer_waits_sample() -> dict:
    """Every active client's figures, combined into the gauges (beat, once a minute)."""
    from tenants.models import Client

    totals = {"oldest_unanswered_seconds": 0.0, "window_closing": 0, "handoffs_waiting": 0}
    now = timezone.now()
    for client in Client.objects.filter(status=Client.Status.ACTIVE).only("pk", "schema_name"):
        with tenant_context(client):
            figures = client_waits(now=now)
        totals["oldest_unanswered_seconds"] = max(
            totals["oldest_unanswered_seconds"], figures["oldest_unanswered_seconds"]
        )
        totals["window_closing"] += figures["window_closing"]
        totals["handoffs_waiting"] += figures["handoffs_waiting"]
    metrics.INBOUND_OLDEST_UNANSWERED.set(totals["oldest_unanswered_seconds"])
    metrics.CONVERSATIONS_WINDOW_CLOSING.set(totals["window_closing"])
    metrics.HANDOFFS_WAITING.set(totals["handoffs_waiting"])
    return totals
