"""The durable inbox's write side: one INSERT per verified webhook POST, then a nudge.

The webhook view stores the raw verified body here and answers 200; the database is the
record from then on. Draining (parse, store in the client's schema, enqueue replies) is the
consumer's job: conversations registers it with `set_consumer()` (this app knows no
conversations). The consumer is nudged after commit from a per-process background thread, so
a webhook never waits on the broker: when Redis is down the nudge is lost, the event is not,
and the beat sweep drains it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from django.db import connection, transaction

from channels_app.routing import Route
from wafaa import context

logger = logging.getLogger(__name__)


_INSERT = (
    "INSERT INTO channels_app_inboxevent (client_id, kind, account_ids, trace_id, body, "
    "received_at, state, attempts, last_error) "
    "VALUES (%s, %s, %s, %s, %s, now(), 'pending', 0, '')"
)


def inbox_store(*, kind: str, raw_body: bytes, routes: Iterable[Route]) -> list[int]:
    """Record one verified body for every client among `routes` (one INSERT); returns the
    client ids whose consumer is nudged after commit."""
    by_client: dict[int, list[str]] = {}
    for route in routes:
        by_client.setdefault(route.client_id, []).append(route.external_id)
    if not by_client:
        return []
    trace_id = (context.current_trace_id() or "")[:64]
    body = bytes(raw_body)
    # A plain INSERT in autocommit, not the ORM's create/bulk_create: those wrap it in a
    # transaction of their own (BEGIN and COMMIT round trips), and this is the whole cost of a
    # webhook. Several clients (app-level URL) are a few rows in one pipelined round trip; each
    # row stands alone, and a redelivery after a partial failure is harmless (idempotent drain).
    rows = [(client_id, kind, ids, trace_id, body) for client_id, ids in by_client.items()]
    with connection.cursor() as cursor:
        if len(rows) == 1:
            cursor.execute(_INSERT, rows[0])
        else:
            cursor.executemany(_INSERT, rows)
    client_ids = list(by_client)
    transaction.on_commit(lambda: nudge(client_ids))
    return client_ids


# --- nudging the consumer --------------------------------------------------------------------

_consumer: Callable[[int], None] | None = None


def set_consumer(consumer: Callable[[int], None]) -> None:
    """`consumer(client_id)` starts a drain of that client's inbox (e.g. sends a task)."""
    global _consumer
    _consumer = consumer


# A client is nudged at once, then at most once per interval while events keep coming (the
# last nudge of a burst is never skipped): under load one send covers many events, and the
# web process does not spend its CPU publishing a task per webhook.
NUDGE_INTERVAL_SECONDS = 0.05


class _Nudger:
    """Client ids to nudge, coalesced per client, sent by one daemon thread per process."""

    def __init__(self) -> None:
        self._pending: set[int] = set()
        self._last: dict[int, float] = {}
        self._ready = threading.Condition()
        self._pid = 0

    def add(self, client_ids: Iterable[int]) -> None:
        with self._ready:
            self._pending.update(client_ids)
            if self._pid != os.getpid():  # first use, or a forked child: start our thread
                self._pid = os.getpid()
                self._last.clear()
                threading.Thread(target=self._run, name="inbox-nudger", daemon=True).start()
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._pending:
                    self._ready.wait()
                now = time.monotonic()
                due = {
                    c for c in self._pending if now - self._last.get(c, 0) >= NUDGE_INTERVAL_SECONDS
                }
                if not due:
                    wait = min(
                        NUDGE_INTERVAL_SECONDS - (now - self._last.get(c, 0)) for c in self._pending
                    )
                    self._ready.wait(max(wait, 0.001))
                    continue
                self._pending -= due
                for client_id in due:
                    self._last[client_id] = now
            for client_id in due:
                _call_consumer(client_id)


def _call_consumer(client_id: int) -> None:
    if _consumer is None:
        return
    try:
        _consumer(client_id)
    except Exception:
        # The event is stored; the beat sweep drains what no nudge reached.
        logger.warning("inbox nudge failed; the sweep will drain", extra={"client": client_id})


_nudger = _Nudger()


def nudge(client_ids: Iterable[int]) -> None:
    """Ask the consumer to drain these clients' inboxes, without waiting for it."""
    from celery import current_app

    if current_app.conf.task_always_eager:  # tests' eager mode: drain right here, in order
        for client_id in client_ids:
            _call_consumer(client_id)
        return
    _nudger.add(client_ids)
