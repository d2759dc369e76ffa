"""WafaaTask: the base class of every Celery task in Wafaa.

On top of tenant-schemas-celery's TenantTask (the task runs in the schema it was sent from):
- the trace id and request id of the sender travel in the task headers and are bound while
  the task runs, so log lines and further tasks carry them;
- a task marked `requires_client = True` refuses to run in the public schema (a client task
  sent without a client is a bug that must be loud, not a silent write to `public`);
- every run is counted by state (succeeded, retried, failed, parked), failures raised before
  the task's own code included;
- a task whose database connection is dead (OperationalError/InterfaceError) is retried on a
  fresh connection with backoff (config.celery checks connections before every task);
- what Celery shows of a task's arguments (argsrepr/kwargsrepr: worker log lines, events) is
  masked: tasks take ids, and a text or token passed by mistake still never reaches a log;
- deliveries of one task message are counted in Redis; a message delivered more than
  CELERY_MAX_DELIVERIES times (it keeps killing its worker, so late acks redeliver it) is parked:
  logged as an error, counted, recorded in `wafaa:tasks:parked`, and not run again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from contextlib import contextmanager

from celery.utils.saferepr import saferepr
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, connections
from kombu.exceptions import EncodeError
from tenant_schemas_celery.task import TenantTask

from wafaa import context
from wafaa.logging import mask_repr

logger = logging.getLogger("wafaa.tasks")
PARKED_KEY = "wafaa:tasks:parked"
# A dead or broken database connection: retried (on a fresh connection), never a final failure.
DB_ERRORS = (OperationalError, InterfaceError)
# Set on a task's request by the pre-run hook (config.celery) when the schema switch could not
# reach the database; the task raises it inside its measured, retrying call.
DB_ERROR_ATTR = "wafaa_database_error"
# With backoff capped at CELERY_MAX_COUNTDOWN (45 s by default), about 20 minutes of outage;
# what is left after that comes back through the sweepers (the database is the record).
DATABASE_MAX_RETRIES = 30


def close_all_connections() -> None:
    """Drop every database connection of this process without raising (it may be dead)."""
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except Exception:  # closing a dead connection can fail; it is gone either way
            conn.connection = None


def _header(request, name: str):
    headers = getattr(request, "headers", None) or {}
    if name in headers:
        return headers[name]
    return request.get(name)


class ClientRequiredError(RuntimeError):
    pass


class BrokerUnavailableError(ConnectionError):
    """A web process did not publish a task: the broker failed moments ago."""


# Set in worker processes (config.celery): workers publish with Celery's usual retries.
IN_WORKER = False
BROKER_BACKOFF_SECONDS = 5.0
_broker_down_until = [0.0]


class WafaaTask(TenantTask):
    abstract = True
    requires_client = False

    def retry(self, *args, **kwargs):
        """A retry runs in the schema its task was sent for, whatever the connection says now
        (after a database failure before the task switched schema, it still says public)."""
        from tenant_schemas_celery.app import get_schema_name_from_task

        schema = get_schema_name_from_task(self, {})
        if schema:
            headers = dict(kwargs.get("headers") or {})
            headers.setdefault("_schema_name", schema)
            kwargs["headers"] = headers
        return super().retry(*args, **kwargs)

    def apply_async(self, args=None, kwargs=None, **options):
        headers = dict(options.get("headers") or {})
        headers.setdefault("trace_id", context.current_trace_id())
        headers.setdefault("request_id", context.current_request_id())
        options["headers"] = headers
        public = connection.schema_name == "public" and "_schema_name" not in headers
        if self.requires_client and public:
            # The worker will refuse it (ClientRequiredError): name the sender here, where the
            # mistake is, with its stack.
            logger.error(
                "client task sent from the public schema",
                extra={"task": self.name},
                stack_info=True,
            )
        # What Celery shows of the arguments (worker log lines, events, `inspect`, Flower):
        # tasks take ids, and anything else in them is masked (wafaa.logging.mask_repr).
        options.setdefault("argsrepr", mask_repr(saferepr(tuple(args or ()))))
        options.setdefault("kwargsrepr", mask_repr(saferepr(dict(kwargs or {}))))
        if IN_WORKER or self.app.conf.task_always_eager:
            return super().apply_async(args, kwargs, **options)
        # In a web process a request waits for this publish: one quick try, and for a few
        # seconds after a failure none at all (the database holds the work; the sweeper
        # enqueues it again), so a broker outage never makes every request slow.
        if time.monotonic() < _broker_down_until[0]:
            raise BrokerUnavailableError("the broker failed a moment ago; not trying again yet")
        options.setdefault("retry_policy", {"max_retries": 0})
        try:
            return super().apply_async(args, kwargs, **options)
        except EncodeError:
            raise  # our arguments, not the broker
        except Exception:
            _broker_down_until[0] = time.monotonic() + BROKER_BACKOFF_SECONDS
            raise

    def __call__(self, *args, **kwargs):
        from celery.exceptions import Retry

        from wafaa import metrics

        request = self.request
        trace_id = _header(request, "trace_id") or context.current_trace_id() or context.new_id()
        request_id = _header(request, "request_id")
        token = context.task_var.set((self.name, request.id))
        started = time.perf_counter()
        state = "succeeded"
        # Everything is measured, the checks before the task's own code too: a task that
        # fails before it starts (database gone, no client) must show in the failure counter.
        try:
            with context.bound(trace_id=trace_id, request_id=request_id):
                try:
                    prerun_error = getattr(request, DB_ERROR_ATTR, None)
                    if prerun_error is not None:
                        raise prerun_error
                    if self.requires_client and connection.schema_name == "public":
                        raise ClientRequiredError(
                            f"task {self.name} needs a client schema but was sent from public"
                        )
                    if not request.is_eager and request.id and self._over_delivery_cap(request):
                        state = "parked"
                        return None
                    return super().__call__(*args, **kwargs)
                except DB_ERRORS as exc:
                    raise self._retry_database_error(exc) from None
        except Retry as exc:
            state = "retried"
            exc.wafaa_counted = True  # not counted again as an internal error (eager tasks)
            raise
        except BaseException as exc:
            state = "failed"
            with contextlib.suppress(Exception):
                exc.wafaa_counted = True
            raise
        finally:
            context.task_var.reset(token)
            metrics.TASKS.labels(task=self.name, state=state).inc()
            metrics.TASK_DURATION.labels(task=self.name).observe(time.perf_counter() - started)

    def _retry_database_error(self, exc: Exception):
        """The database connection died (PostgreSQL restarted, network cut): drop every
        connection so the next attempt opens a fresh one, and retry this task with backoff
        instead of failing it. Returns the exception to raise."""
        from wafaa.backoff import backoff_delay

        close_all_connections()
        retries = self.request.retries or 0
        if retries >= DATABASE_MAX_RETRIES:
            logger.error(
                "task failed: the database stayed unreachable",
                extra={"task": self.name, "retries": retries, "error": type(exc).__name__},
            )
            return exc
        countdown = backoff_delay(retries, base=1.0, cap=settings.CELERY_MAX_COUNTDOWN)
        logger.warning(
            "database unreachable; task will be retried",
            extra={"task": self.name, "retries": retries, "error": type(exc).__name__},
        )
        try:
            return self.retry(exc=exc, countdown=countdown, max_retries=None)
        except Exception as retry_exc:  # self.retry raises the Retry (or, eager, the result)
            return retry_exc

    def _over_delivery_cap(self, request) -> bool:
        from wafaa import metrics
        from wafaa.redis import get_redis

        client = get_redis()
        # Retries are new messages with the same id: count deliveries per retry number.
        key = f"wafaa:tasks:deliveries:{request.id}:{request.retries or 0}"
        try:
            pipe = client.pipeline()
            pipe.incr(key)
            pipe.expire(key, 24 * 3600)
            count = pipe.execute()[0]
        except Exception:  # Redis trouble must not stop work; the broker is Redis anyway
            return False
        if count <= settings.CELERY_MAX_DELIVERIES:
            return False
        logger.error(
            "task parked after too many deliveries",
            extra={
                "task": self.name,
                "deliveries": count,
                "task_args": mask_repr(saferepr(request.args))[:200],
            },
        )
        metrics.TASKS_PARKED.labels(task=self.name).inc()
        client.lpush(
            PARKED_KEY,
            json.dumps(
                {
                    "task": self.name,
                    "id": request.id,
                    "args": request.args,
                    "schema": connection.schema_name,
                    "deliveries": count,
                    "at": time.time(),
                },
                default=str,
            ),
        )
        client.ltrim(PARKED_KEY, 0, 999)
        return True


@contextmanager
def lease_kept(task, every: float | None = None):
    """Keep a long task's broker message from being handed out again while it makes progress.

    Redis hands an unacked message to another worker once it is older than the visibility
    timeout, whether or not its worker is still busy with it. That timeout is short on
    purpose (a dead worker's task comes back within a minute), so a task that may run longer
    renews its delivery's timestamp in kombu's unacked index from a background thread. If the
    worker dies, the renewals stop and the message comes back as usual.
    """
    delivery_tag = (getattr(task.request, "delivery_info", None) or {}).get("delivery_tag")
    if task.request.is_eager or not delivery_tag:
        yield
        return
    from wafaa.redis import get_redis

    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    key = options.get("global_keyprefix", "") + "unacked_index"
    interval = every or max(1.0, options.get("visibility_timeout", 60) / 3)
    stop = threading.Event()

    def renew():
        while not stop.wait(interval):
            try:
                # XX: only renew a delivery the broker still holds as unacked.
                get_redis().zadd(key, {delivery_tag: time.time()}, xx=True)
            except Exception:  # a missed renewal only risks a duplicate run (idempotent)
                logger.warning("could not renew the task's broker lease")

    thread = threading.Thread(target=renew, name=f"lease-{delivery_tag}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


class ClientTask(WafaaTask):
    """A task that works on one client's data: must run inside that client's schema."""

    abstract = True
    requires_client = True
