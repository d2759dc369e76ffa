"""Conversation tasks: thin, load by id inside the client's schema, call a service."""

from __future__ import annotations

import logging

import requests
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django_tenants.utils import schema_context

from channels_app import graph
from conversations import (
    evaluation,
    fairness,
    handoff,
    inbound,
    monitoring,
    notifications,
    outbound,
    pipeline,
    sweeper,
)
from wafaa.backoff import backoff_delay
from wafaa.tasks import DB_ERRORS, ClientTask, WafaaTask

logger = logging.getLogger(__name__)


class FairReplyTask(ClientTask):
    """A reply task is sent only with one of its client's slots; otherwise its message
    waits in the client's line (conversations/fairness.py). `fair_bypass=True` sends anyway
    (a reply retried after its client's pause)."""

    abstract = True

    def apply_async(self, args=None, kwargs=None, **options):
        bypass = options.pop("fair_bypass", False)
        message_id = (kwargs or {}).get("message_id", (args or [None])[0])
        if not bypass and not fairness.reply_admit(message_id=message_id):
            return None
        return super().apply_async(args, kwargs, **options)


@shared_task(
    base=FairReplyTask,
    bind=True,
    name="conversations.tasks.handle_inbound_task",
    max_retries=None,
)
def handle_inbound_task(self, message_id):
    # Its ticket, a free slot, or a place in the client's line (conversations/fairness.py).
    slot = fairness.slot_acquire(message_id=message_id)
    if slot is None:
        return "waiting"
    retries = self.request.retries or 0
    try:
        return pipeline.reply_for_inbound(
            message_id=message_id,
            final_attempt=retries >= settings.LLM_MAX_RETRIES,
            owner=self.request.id,
        )
    except pipeline.ReplyRetryableError as exc:
        pipeline.inbound_retry_scheduled(message_id=message_id)
        countdown = backoff_delay(retries, base=2.0, cap=settings.CELERY_MAX_COUNTDOWN)
        if exc.rate_limited:  # pause this client only, as long as the provider asked
            pause = fairness.client_backoff(seconds=exc.retry_after or countdown)
            countdown = pause + backoff_delay(0)  # just after the pause, spread out
        # Sent past the line: it is this client's way out of a pause, and holds no slot.
        raise self.retry(exc=exc, countdown=countdown, fair_bypass=True) from None
    except pipeline.ConversationBusyError as exc:
        # Another run holds the conversation (its lock expires with the task time limit).
        if retries > 30:
            raise
        raise self.retry(exc=exc, countdown=backoff_delay(retries, base=2.0, cap=10.0)) from None
    except DB_ERRORS:
        raise  # WafaaTask retries these on a fresh connection
    except (SoftTimeLimitExceeded, Exception) as exc:
        # Anything else (the time limit, a bug, bad data) is retried like a transient
        # failure: the attempts counted on the message park it after REPLY_MAX_ATTEMPTS,
        # so a message that fails every time is never looped.
        pipeline.inbound_attempt_failed(message_id=message_id, error=exc)
        if retries >= 2 * settings.REPLY_MAX_ATTEMPTS:
            raise
        logger.warning(
            "reply attempt failed; retrying",
            extra={"message_id": message_id, "error": type(exc).__name__},
        )
        pipeline.inbound_retry_scheduled(message_id=message_id)
        countdown = backoff_delay(retries, base=2.0, cap=settings.CELERY_MAX_COUNTDOWN)
        raise self.retry(exc=exc, countdown=countdown) from None
    finally:
        waiting = fairness.slot_release(slot)
        if waiting:
            # Sent for the slot's own client, whatever schema the connection is in now (a
            # database failure may have reset it to public).
            with schema_context(slot.schema):
                for waiting_id in waiting:
                    handle_inbound_task.delay(waiting_id)


@shared_task(
    base=ClientTask,
    name="conversations.tasks.notification_deliver_task",
    autoretry_for=(requests.RequestException,),
    retry_backoff=True,
    retry_backoff_max=45,  # under the broker's visibility timeout (CELERY_MAX_COUNTDOWN)
    retry_jitter=True,
    max_retries=12,
)
def notification_deliver_task(webhook_id, event, conversation_id, mode, data, sent_at):
    # Ids and codes only: the payload, with the customer's text, is read at delivery.
    return notifications.notification_deliver(
        webhook_id=webhook_id,
        event=event,
        conversation_id=conversation_id,
        mode=mode,
        data=data,
        sent_at=sent_at,
    )


@shared_task(base=ClientTask, name="conversations.tasks.handoffs_expire_task")
def handoffs_expire_task():
    return handoff.handoffs_expire()


@shared_task(base=ClientTask, name="conversations.tasks.inbound_sweep_task")
def inbound_sweep_task():
    return sweeper.inbound_sweep() + sweeper.outbound_sweep() + sweeper.failed_sends_sweep()


@shared_task(base=WafaaTask, name="conversations.tasks.fan_out_to_clients_task")
def fan_out_to_clients_task(task_name):
    """Beat sends this once; it enqueues `task_name` inside every active client's schema."""
    return sweeper.fan_out(task_name)


# --- messages out ----------------------------------------------------------------------------


@shared_task(
    base=ClientTask,
    bind=True,
    name="conversations.tasks.message_send_task",
    max_retries=None,
    acks_late=True,
)
def message_send_task(self, message_id):
    try:
        return outbound.message_send(message_id=message_id)
    except (outbound.SendRetryableError, SoftTimeLimitExceeded) as exc:
        if isinstance(exc, SoftTimeLimitExceeded):  # transient like any other: retried
            exc = outbound.SendRetryableError("the send ran out of time")
        countdown = outbound.send_retry_countdown(
            message_id=message_id, error=exc, retries=self.request.retries or 0
        )
        if countdown is None:
            return "failed"
        raise self.retry(exc=exc, countdown=countdown) from None


@shared_task(base=ClientTask, name="conversations.tasks.message_typing_task")
def message_typing_task(message_id):
    return outbound.message_typing_start(message_id=message_id)


@shared_task(base=ClientTask, name="conversations.tasks.message_mark_read_task")
def message_mark_read_task(message_id):
    outbound.message_mark_read(message_id=message_id)


@shared_task(
    base=ClientTask,
    name="conversations.tasks.media_fetch_task",
    autoretry_for=(
        graph.GraphRateLimitError,
        graph.GraphServerError,
        graph.GraphTimeoutError,
        graph.GraphConnectionError,
    ),
    retry_backoff=True,
    retry_backoff_max=45,  # under the broker's visibility timeout (CELERY_MAX_COUNTDOWN)
    retry_jitter=True,
    max_retries=5,
)
def media_fetch_task(message_id):
    return len(outbound.media_fetch(message_id=message_id))


# The same tasks under the names they had when sending lived in channels_app: messages already
# in the broker during a deploy (queued sends, their retries) still find a task to run them.
@shared_task(
    base=ClientTask,
    bind=True,
    name="channels_app.tasks.message_send_task",
    max_retries=None,
    acks_late=True,
)
def legacy_message_send_task(self, message_id):
    return message_send_task.apply_async((message_id,)).id


@shared_task(base=ClientTask, name="channels_app.tasks.message_mark_read_task")
def legacy_message_mark_read_task(message_id):
    outbound.message_mark_read(message_id=message_id)


@shared_task(base=WafaaTask, name="conversations.tasks.customer_waits_sample_task")
def customer_waits_sample_task():
    """Beat: what customers wait for, over every client, into the gauges alerts read."""
    return monitoring.customer_waits_sample()


@shared_task(
    base=ClientTask,
    name="conversations.tasks.answer_evaluation_run_task",
    soft_time_limit=30 * 60,
    time_limit=31 * 60,
)
def answer_evaluation_run_task(evaluation_id):
    """Run a stored answer evaluation (queue `default`: long, not a customer's reply)."""
    return evaluation.evaluation_run(evaluation_id=evaluation_id)


@shared_task(
    base=WafaaTask,
    name="conversations.tasks.inbox_drain_task",
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=5,
)
def inbox_drain_task(client_id):
    """Drain one client's webhook inbox; sends itself again while events remain."""
    result = inbound.inbox_drain(client_id=client_id)
    if result.more:
        inbox_drain_task.delay(client_id)
    return {"events": result.events, "accepted": result.accepted, "statuses": result.statuses}


@shared_task(base=WafaaTask, name="conversations.tasks.inbox_sweep_task")
def inbox_sweep_task():
    """Beat: drain the inboxes no nudge reached (Redis was down), prune old events."""
    waiting = inbound.inbox_clients_waiting()
    for client_id in waiting:
        inbox_drain_task.delay(client_id)
    return {"drained": len(waiting), "pruned": inbound.inbox_prune()}
