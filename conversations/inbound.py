"""Inbound handling: drain the durable inbox (channels_app.InboxEvent) into a client's schema.

The webhook view has already verified each event and stored its raw body; here a worker, in
batches per client:

1. claims up to INBOX_BATCH_SIZE pending events with `FOR UPDATE SKIP LOCKED` and counts the
   attempt in its own short transaction (so a crash still counts it, and two drains never
   take the same event), leasing them for INBOX_LEASE_SECONDS;
2. parses them (channels_app.providers), dedupes the batch's messages by Meta's ids, stores
   each message under its own savepoint (one bad message never blocks its siblings), applies
   the batch's delivery statuses in a few statements, and marks the events done: one
   transaction per batch, so an event is done exactly when what it carried is stored;
3. enqueues replies on commit.

An event that fails (a message that cannot be stored, a body that no longer parses) stays
pending with its reason and is tried again after a pause; after INBOX_MAX_ATTEMPTS it is
parked (admin list, metric `wafaa_inbox_events_total{result="parked"}`) and never blocks the
events behind it. Redelivered and replayed events are harmless: every write is idempotent.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context, tenant_context

from channels_app import providers
from channels_app.models import ChannelAccount, InboxEvent
from channels_app.providers import StatusUpdate, status_transition_allowed
from channels_app.services import channel_accounts_seen
from conversations import notifications
from conversations.kinds import inbound_receive
from conversations.models import Message
from tenants.models import Client
from wafaa import context, metrics, otel

logger = logging.getLogger(__name__)


@dataclass
class DrainResult:
    events: int = 0  # events claimed
    done: int = 0
    accepted: int = 0  # messages stored
    duplicates: int = 0
    statuses: int = 0  # status updates applied
    failed: int = 0  # events left pending for another attempt
    parked: int = 0
    more: bool = False  # the drain stopped with events still pending (its batch budget)

    def add(self, other: DrainResult) -> None:
        for f in fields(self):
            if f.name != "more":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def inbox_drain(*, client_id: int, max_batches: int | None = None) -> DrainResult:
    """Drain one client's pending events, batch after batch, until none is left or the batch
    budget is spent (then `more` is set and the caller sends another drain: one busy client
    does not hold a worker forever)."""
    client = Client.objects.filter(pk=client_id).first()
    total = DrainResult()
    if client is None:
        return total
    for _ in range(max_batches or settings.INBOX_MAX_BATCHES_PER_DRAIN):
        with (
            schema_context(get_public_schema_name()),  # the caller's schema comes back after
            otel.stage("inbox"),
        ):
            result = inbox_drain_batch(client=client)
        total.add(result)
        if result.events < settings.INBOX_BATCH_SIZE:
            # Drained: an event stored after this claim nudges a drain of its own.
            return total
    total.more = True
    return total


# clock_timestamp(), not now(): now() is the transaction's start, a lease is wall-clock time.
_CLAIM = """
UPDATE {table}
SET attempts = attempts + 1, leased_until = clock_timestamp() + make_interval(secs => %s)
WHERE id IN (
    SELECT id FROM {table}
    WHERE client_id = %s AND state = 'pending'
      AND (leased_until IS NULL OR leased_until < clock_timestamp())
      AND {attempts}
    ORDER BY id LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING *
"""


def _claim(client: Client, *, retried: bool) -> list[InboxEvent]:
    """Claim (lease, and count an attempt for) a batch of the client's pending events: fresh
    ones, or ones that failed before. Committed at once, so a crash still counts."""
    table = connection.ops.quote_name(InboxEvent._meta.db_table)
    sql = _CLAIM.format(table=table, attempts="attempts > 0" if retried else "attempts = 0")
    params = [settings.INBOX_LEASE_SECONDS, client.pk, settings.INBOX_BATCH_SIZE]
    with transaction.atomic():
        events = list(InboxEvent.objects.raw(sql, params))
    return sorted(events, key=lambda event: event.pk)


def inbox_drain_batch(*, client: Client) -> DrainResult:
    """Claim one batch of a client's events and store what they carry (see the module).

    Fresh events are stored in one transaction. Events that failed before are stored one
    transaction each, so a poison event fails alone and never takes its siblings along."""
    fresh = _claim(client, retried=False)
    retried = _claim(client, retried=True)
    result = DrainResult(events=len(fresh) + len(retried))
    live = []
    for event in retried:
        if event.attempts > settings.INBOX_MAX_ATTEMPTS:
            _park(event)
            result.parked += 1
        else:
            live.append(event)
    if not client.is_active:
        _finish([*fresh, *live], note="client inactive: not processed")
        result.done += len(fresh) + len(live)
        return result
    groups = ([fresh] if fresh else []) + [[event] for event in live]
    while groups:
        group = groups.pop(0)
        # An event alone carries its webhook's trace id into its log lines and error reports.
        trace_id = (group[0].trace_id or None) if len(group) == 1 else None
        with context.bound(trace_id=trace_id):
            try:
                result.add(_store_group(client, group))
            except Exception as exc:
                if len(group) > 1:  # find the culprit: each event on its own
                    logger.warning("inbox batch failed; storing its events one by one")
                    groups[:0] = [[event] for event in group]
                    continue
                logger.error(
                    "inbox event failed; it will be tried again",
                    extra={"inbox_event": group[0].pk, "attempt": group[0].attempts},
                    exc_info=True,
                )
                _retry_later(group[0], f"{type(exc).__name__}: {exc}")
                result.failed += 1
    return result


def _store_group(client: Client, events: list[InboxEvent]) -> DrainResult:
    """Store a group of events in one transaction; the events that fully stored are done,
    the others wait for another attempt."""
    result = DrainResult()
    names = {name for event in events for name in event.account_ids}
    accounts = {
        a.external_id: a
        for a in ChannelAccount.objects.select_related("client").filter(
            client_id=client.pk, external_id__in=names
        )
    }
    batch = _Batch(accounts=accounts, result=result)
    with tenant_context(client), transaction.atomic():
        errors = batch.parse(events)
        for event in events:
            if not errors[event.pk]:
                errors[event.pk] = batch.store(event)
        batch.apply_statuses(errors)
        ok = [e for e in events if not errors[e.pk]]
        _finish(ok)
        for event in events:
            if errors[event.pk]:
                _retry_later(event, "; ".join(errors[event.pk]))
    result.done += len(ok)
    result.failed += len(events) - len(ok)
    metrics.INBOX_EVENTS.labels(result="done").inc(len(ok))
    if batch.seen_accounts:
        channel_accounts_seen(account_ids=sorted(batch.seen_accounts))
    return result


class _Batch:
    """What one batch stores, and where each event's errors go."""

    def __init__(self, *, accounts: dict[str, ChannelAccount], result: DrainResult):
        self.accounts = accounts
        self.result = result
        self.seen_ids: set[str] = set()
        self.seen_accounts: set[int] = set()
        self.statuses: list[tuple[int, StatusUpdate]] = []
        self.parts: dict[int, list] = {}  # event id -> [(account, its part of the event)]
        self.known: set[str] = set()  # Meta ids of the batch's messages already stored

    def parse(self, events: list[InboxEvent]) -> dict[int, list[str]]:
        """Decode and parse every event, then learn in one query which of their messages
        are stored already (Meta redelivers). Returns each event's errors so far."""
        errors: dict[int, list[str]] = {}
        for event in events:
            errors[event.pk] = []
            try:
                payload = json.loads(bytes(event.body))
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                errors[event.pk].append(f"body does not decode: {type(exc).__name__}")
                continue
            parsed = providers.parse(event.kind, payload)
            if parsed.errors:
                metrics.WEBHOOK_EVENTS.labels(channel=event.kind, result="malformed").inc(
                    len(parsed.errors)
                )
                logger.warning("webhook parts skipped", extra={"errors": parsed.errors[:10]})
            parts = []
            for external_id in event.account_ids:  # only the accounts whose signature verified
                account = self.accounts.get(external_id)
                if account is None or not account.can_receive:
                    metrics.WEBHOOK_EVENTS.labels(channel=event.kind, result="inactive").inc()
                    continue
                self.seen_accounts.add(account.pk)
                parts.append((account, parsed.for_account(external_id)))
            self.parts[event.pk] = parts
        ids = [
            m.external_id
            for parts in self.parts.values()
            for _, part in parts
            for m in part.messages
            if m.type != "deleted"
        ]
        self.known = set(
            Message.objects.filter(external_id__in=ids).values_list("external_id", flat=True)
        )
        return errors

    def store(self, event: InboxEvent) -> list[str]:
        """Store the messages of one parsed event (each under a savepoint); queue its
        statuses. Returns the event's errors (empty: everything it carried is stored)."""
        parts = self.parts.get(event.pk, [])
        single = sum(len(part.messages) for _, part in parts) == 1
        known = self.known
        errors = []
        for account, part in parts:
            for index, inbound in enumerate(part.messages):
                if inbound.type != "deleted" and (
                    inbound.external_id in known or inbound.external_id in self.seen_ids
                ):
                    self._duplicate(account)
                    continue
                # A lone message keeps the request's trace id (a caller's X-Trace-ID carries
                # on); several get one trace each, following each into every task it causes.
                trace_id = event.trace_id if single and event.trace_id else context.new_id()
                try:
                    with transaction.atomic(), context.bound(trace_id=trace_id):
                        message, created = inbound_receive(account=account, inbound=inbound)
                except Exception as exc:
                    # Rolled back alone: its siblings are stored; the event is tried again.
                    logger.warning(
                        "inbound message not stored; the event will be retried",
                        extra={"inbox_event": event.pk, "error": type(exc).__name__},
                        exc_info=True,
                    )
                    errors.append(f"message {index} of {account.external_id}: {exc!r}"[:500])
                    continue
                self.seen_ids.add(inbound.external_id)
                if not created:
                    self._duplicate(account)
                    continue
                self.result.accepted += 1
                metrics.WEBHOOK_EVENTS.labels(channel=account.kind, result="accepted").inc()
                if message.status == Message.Status.RECEIVED:
                    transaction.on_commit(_enqueue_reply(account.client, message.pk, trace_id))
            self.statuses.extend((event.pk, update) for update in part.statuses)
        return errors

    def _duplicate(self, account) -> None:
        self.result.duplicates += 1
        metrics.WEBHOOK_EVENTS.labels(channel=account.kind, result="duplicate").inc()

    def apply_statuses(self, errors: dict[int, list[str]]) -> None:
        if not self.statuses:
            return
        try:  # message_statuses_apply is atomic: a failure rolls back only the statuses
            self.result.statuses += len(
                message_statuses_apply(updates=[u for _, u in self.statuses])
            )
            return
        except Exception:
            logger.warning("bulk status update failed; applying one by one", exc_info=True)
        for event_id, update in self.statuses:  # find the one that fails, keep the others
            try:
                self.result.statuses += len(message_statuses_apply(updates=[update]))
            except Exception as exc:
                errors[event_id].append(f"status {update.external_id}: {exc!r}"[:500])


def _enqueue_reply(client, message_id, trace_id):
    # Delayed by the quiet period: a burst of customer messages is answered once, by the
    # task of the newest message (see conversations.pipeline).
    def send():
        from conversations.tasks import handle_inbound_task

        with tenant_context(client), context.bound(trace_id=trace_id):
            try:
                handle_inbound_task.apply_async(
                    (message_id,), countdown=settings.REPLY_QUIET_PERIOD_SECONDS or None
                )
            except Exception:
                # The message is committed; the sweeper enqueues it again.
                logger.exception(
                    "could not enqueue the reply task; the sweeper will retry it",
                    extra={"message_id": str(message_id)},
                )

    return send


def _finish(events: list[InboxEvent], note: str = "") -> None:
    if events:
        InboxEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            state=InboxEvent.State.DONE,
            processed_at=timezone.now(),
            leased_until=None,
            last_error=note,
        )


def _retry_later(event: InboxEvent, error: str) -> None:
    # Backs off with the attempts; the events behind it are drained meanwhile.
    pause = min(300, settings.INBOX_RETRY_SECONDS * 2 ** (event.attempts - 1))
    InboxEvent.objects.filter(pk=event.pk).update(
        last_error=error[:2000], leased_until=timezone.now() + timedelta(seconds=pause)
    )
    metrics.INBOX_EVENTS.labels(result="retry").inc()


def _park(event: InboxEvent) -> None:
    reason = event.last_error or "the drain crashed or timed out on every attempt"
    InboxEvent.objects.filter(pk=event.pk).update(
        state=InboxEvent.State.PARKED,
        leased_until=None,
        last_error=f"parked after {event.attempts - 1} attempts: {reason}"[:2000],
    )
    metrics.INBOX_EVENTS.labels(result="parked").inc()
    logger.error(
        "inbox event parked after repeated failures",
        extra={
            "inbox_event": event.pk,
            "client_id": event.client_id,
            "attempts": event.attempts - 1,
        },
    )


# --- delivery statuses in bulk ---------------------------------------------------------------


def message_statuses_apply(*, updates: list[StatusUpdate]) -> list[Message]:
    """Apply delivery statuses to our outbound messages in a few statements (one read with
    row locks, one for split messages' later parts if needed, one UPDATE), never moving a
    status backwards: each update goes through `status_transition_allowed` in arrival order,
    so a late 'delivered' after 'read' is a no-op and 'failed' overrides only 'sent'.
    Returns the messages that changed."""
    if not updates:
        return []
    ids = {u.external_id for u in updates}
    with transaction.atomic():
        by_id = {
            m.external_id: m
            for m in Message.objects.select_for_update()
            .filter(direction=Message.Direction.OUT, external_id__in=ids)
            .order_by("pk")
        }
        missing = sorted(ids - set(by_id))
        if missing:
            # One outbound message split in parts: later parts' ids are kept in raw.
            for message in (
                Message.objects.select_for_update()
                .filter(direction=Message.Direction.OUT, raw__part_ids__has_any_keys=missing)
                .order_by("pk")
            ):
                for part_id in message.raw.get("part_ids", []):
                    by_id.setdefault(part_id, message)
        changed: dict[int, Message] = {}
        applied: list[tuple[str, str]] = []
        for update in updates:
            message = by_id.get(update.external_id)
            if message is None or not status_transition_allowed(message.status, update.status):
                continue
            _status_set(message, update)
            changed[message.pk] = message
            applied.append((update.channel, message.status))
        if changed:
            Message.objects.bulk_update(
                list(changed.values()),
                [
                    "status",
                    "sent_at",
                    "delivered_at",
                    "read_at",
                    "failure_reason",
                    "failure_detail",
                    "updated_at",
                ],
            )
    for channel, status in applied:
        metrics.MESSAGES.labels(channel=channel, direction="out", status=status).inc()
        metrics.DELIVERY_STATUSES.labels(channel=channel, status=status).inc()
    for message in changed.values():
        if message.status == Message.Status.FAILED:
            notifications.notify(
                conversation=message.conversation,
                event="delivery_failed",
                data={"message_id": message.pk, "reason": message.failure_reason},
            )
    return list(changed.values())


def _status_set(message: Message, update: StatusUpdate) -> None:
    status = Message.Status.READ if update.status == "played" else update.status
    stamp = update.timestamp or timezone.now()
    message.status = status
    message.updated_at = timezone.now()
    if status == Message.Status.SENT:
        message.sent_at = message.sent_at or stamp
    elif status == Message.Status.DELIVERED:
        message.delivered_at = stamp
    elif status == Message.Status.READ:
        message.read_at = stamp
    elif status == Message.Status.FAILED:
        error = update.errors[0] if update.errors else {}
        message.failure_reason = str(error.get("code", "failed"))
        message.failure_detail = " ".join(
            str(error.get(k, "")) for k in ("title", "message", "details") if error.get(k)
        )[:2000]


# --- sweep, prune, replay --------------------------------------------------------------------


def inbox_clients_waiting() -> list[int]:
    """Clients with pending events no drain has taken for a while (their nudge was lost,
    e.g. Redis was down) or whose retry pause is over."""
    stale = timezone.now() - timedelta(seconds=settings.INBOX_SWEEP_AFTER_SECONDS)
    pending = InboxEvent.objects.filter(state=InboxEvent.State.PENDING)
    metrics.INBOX_PENDING.set(pending.count())
    oldest = pending.aggregate(oldest=Min("received_at"))["oldest"]
    # The age of the oldest event still waiting: a backlog shows here even when depth is small.
    metrics.INBOX_OLDEST_PENDING.set((timezone.now() - oldest).total_seconds() if oldest else 0)
    waiting = pending.filter(received_at__lt=stale).exclude(leased_until__gt=timezone.now())
    return sorted(set(waiting.values_list("client_id", flat=True)))


def inbox_prune() -> int:
    """Delete processed events older than the retention (parked ones stay for staff)."""
    cutoff = timezone.now() - timedelta(hours=settings.INBOX_RETENTION_HOURS)
    deleted, _ = InboxEvent.objects.filter(
        state=InboxEvent.State.DONE, received_at__lt=cutoff
    ).delete()
    return deleted


def inbox_replay(*, client: Client, since, until) -> int:
    """Make a client's events received in [since, until) pending again (done or parked), for
    a drain to process once more; stored messages are not duplicated. Returns the count."""
    return InboxEvent.objects.filter(
        client=client, received_at__gte=since, received_at__lt=until
    ).update(state=InboxEvent.State.PENDING, attempts=0, leased_until=None, last_error="")
