"""The outbox sweeper: the database is the record, the queue only a trigger.

Inbound messages stored but neither answered nor being processed for longer than
SWEEP_AFTER_SECONDS (their task was lost, e.g. Redis restarted) are enqueued again. Messages
stuck in `processing` for far longer than a task can run are re-enqueued too (a worker died
between marking and answering). Re-enqueueing is safe: the reply task is idempotent.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_tenants.utils import tenant_context

from conversations.models import Message

logger = logging.getLogger(__name__)


def inbound_sweep() -> int:
    from conversations.pipeline import inbound_park
    from conversations.tasks import handle_inbound_task

    now = timezone.now()
    stale_received = now - timedelta(seconds=settings.SWEEP_AFTER_SECONDS)
    # A run marks its messages `processing` when it starts and touches them when it schedules
    # a retry; it lasts at most CELERY_TASK_TIME_LIMIT and a retry waits at most
    # CELERY_MAX_COUNTDOWN: a message untouched for longer has lost its task.
    stale_processing = now - timedelta(
        seconds=max(settings.CELERY_TASK_TIME_LIMIT, settings.CELERY_MAX_COUNTDOWN) + 10
    )
    lost = list(
        Message.objects.filter(
            direction=Message.Direction.IN,
            status=Message.Status.RECEIVED,
            updated_at__lt=stale_received,
        ).values_list("pk", "attempts", "conversation_id")[:500]
    ) + list(
        Message.objects.filter(
            direction=Message.Direction.IN,
            status=Message.Status.PROCESSING,
            updated_at__lt=stale_processing,
        ).values_list("pk", "attempts", "conversation_id")[:500]
    )
    # Messages out of attempts are parked here, not run once more (no LLM call for them).
    exhausted = [row for row in lost if row[1] >= settings.REPLY_MAX_ATTEMPTS]
    for conversation_id in {row[2] for row in exhausted}:
        messages = list(
            Message.objects.filter(pk__in=[r[0] for r in exhausted if r[2] == conversation_id])
        )
        inbound_park(conversation=messages[0].conversation, messages=messages)
    retry = [row[0] for row in lost if row[1] < settings.REPLY_MAX_ATTEMPTS]
    for message_id in retry:
        handle_inbound_task.delay(message_id)
    if retry:
        # Touch them so the next sweep waits again instead of piling up duplicates.
        Message.objects.filter(pk__in=retry).update(updated_at=now)
        logger.warning("sweeper re-enqueued inbound messages", extra={"count": len(retry)})
    return len(lost)


def outbound_sweep() -> int:
    """Outbound messages still `queued` long after they were stored (their send task was
    lost) are handed to the sender again; a send is idempotent, so this never doubles one."""
    from conversations.tasks import message_send_task

    # A send being retried touches its message when it schedules the next attempt, which
    # waits at most CELERY_MAX_COUNTDOWN and lasts at most a Graph timeout: a message quiet
    # for longer has lost its task.
    quiet = max(
        settings.SWEEP_AFTER_SECONDS,
        settings.CELERY_MAX_COUNTDOWN + settings.GRAPH_API_READ_TIMEOUT + 5,
    )
    stale = timezone.now() - timedelta(seconds=quiet)
    lost = list(
        Message.objects.filter(
            direction=Message.Direction.OUT, status=Message.Status.QUEUED, updated_at__lt=stale
        ).values_list("pk", flat=True)[:500]
    )
    for message_id in lost:
        message_send_task.delay(message_id)
    if lost:
        Message.objects.filter(pk__in=lost).update(updated_at=timezone.now())
        logger.warning("sweeper re-enqueued outbound messages", extra={"count": len(lost)})
    return len(lost)


# A long Meta incident can outlast a send's own retries: its reply is sent again by the sweep
# while the customer's window is open, this many times at most.
SEND_SWEEP_ROUNDS = 3


def failed_sends_sweep() -> int:
    """Replies failed as `retries_exhausted` whose customer window (24 h) is still open are
    queued and sent again, up to SEND_SWEEP_ROUNDS times each (a round gets the whole retry
    window again). Sending is idempotent, so a round never doubles a reply."""
    from django.db import transaction
    from django.db.models import Q

    from conversations.tasks import message_send_task

    now = timezone.now()
    candidates = list(
        Message.objects.filter(
            direction=Message.Direction.OUT,
            status=Message.Status.FAILED,
            failure_reason="retries_exhausted",
            updated_at__lt=now - timedelta(seconds=settings.SWEEP_AFTER_SECONDS),
            conversation__last_inbound_at__gt=now - timedelta(hours=24),
        )
        .filter(Q(raw__send_rounds__isnull=True) | Q(raw__send_rounds__lt=SEND_SWEEP_ROUNDS))
        .only("pk", "raw")[:200]
    )
    requeued = []
    for message in candidates:
        rounds = int(message.raw.get("send_rounds", 0)) + 1
        raw = {**message.raw, "send_rounds": rounds, "round_started_at": now.isoformat()}
        if Message.objects.filter(
            pk=message.pk, status=Message.Status.FAILED, failure_reason="retries_exhausted"
        ).update(
            status=Message.Status.QUEUED,
            failure_reason="",
            failure_detail="",
            raw=raw,
            updated_at=now,
        ):
            requeued.append(message.pk)
    for message_id in requeued:
        transaction.on_commit(lambda message_id=message_id: message_send_task.delay(message_id))
    if requeued:
        logger.warning("sweeper re-queued failed sends", extra={"count": len(requeued)})
    return len(requeued)


def fan_out(task_name: str) -> int:
    from config.celery import app
    from tenants.models import Client

    task = app.tasks[task_name]
    count = 0
    for client in Client.objects.filter(status=Client.Status.ACTIVE).only("pk", "schema_name"):
        with tenant_context(client):
            task.delay()
        count += 1
    return count
