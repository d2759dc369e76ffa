"""WafaaTask: the base class of every Celery task in Wafaa.

On top of tenant-schemas-celery's TenantTask (the task runs in the schema it was sent from):
- the trace id and request id of the sender travel in the task headers and are bound while
  the task runs, so log lines and further tasks carry them;
- a task marked `requires_client = True` refuses to run in the public schema (a client task
  sent without a client is a bug that must be loud, not a silent write to `public`);
- what Celery shows of a task's arguments (argsrepr/kwargsrepr: worker log lines, events) is
  masked: tasks take ids, and a text or token passed by mistake still never reaches a log;
- deliveries of one task message are counted in Redis; a message delivered more than
  CELERY_MAX_DELIVERIES times (it keeps killing its worker, so late acks redeliver it) is parked:
  logged as an error, counted, recorded in `wafaa:tasks:parked`, and not run again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import contextmanager

from celery.utils.saferepr import saferepr
from django.conf import settings
from django.db import connection
from tenant_schemas_celery.task import TenantTask

from wafaa import context
from wafaa.logging import mask_repr

logger = logging.getLogger("wafaa.tasks")
PARKED_KEY = "wafaa:tasks:parked"


def _header(request, name: str):
    headers = getattr(request, "headers", None) or {}
    if name in headers:
        return headers[name]
    return request.get(name)


class ClientRequiredError(RuntimeError):
    pass


class WafaaTask(TenantTask):
    abstract = True
    requires_client = False

    def apply_async(self, args=None, kwargs=None, **options):
        headers = dict(options.get("headers") or {})
        headers.setdefault("trace_id", context.current_trace_id())
        headers.setdefault("request_id", context.current_request_id())
        options["headers"] = headers
        # What Celery shows of the arguments (worker log lines, events, `inspect`, Flower):
        # tasks take ids, and anything else in them is masked (wafaa.logging.mask_repr).
        options.setdefault("argsrepr", mask_repr(saferepr(tuple(args or ()))))
        options.setdefault("kwargsrepr", mask_repr(saferepr(dict(kwargs or {}))))
        return super().apply_async(args, kwargs, **options)

    def __call__(self, *args, **kwargs):
        request = self.request
        trace_id = _header(request, "trace_id") or context.current_trace_id() or context.new_id()
        request_id = _header(request, "request_id")
        token = context.task_var.set((self.name, request.id))
        try:
            with context.bound(trace_id=trace_id, request_id=request_id):
                if self.requires_client and connection.schema_name == "public":
                    raise ClientRequiredError(
                        f"task {self.name} needs a client schema but was sent from public"
                    )
                if not request.is_eager and request.id and self._over_delivery_cap(request):
                    return None
                return self._run_measured(*args, **kwargs)
        finally:
            context.task_var.reset(token)

    def _run_measured(self, *args, **kwargs):
        from celery.exceptions import Retry

        from wafaa import metrics

        started = time.perf_counter()
        state = "succeeded"
        try:
            return super().__call__(*args, **kwargs)
        except Retry:
            state = "retried"
            raise
        except Exception:
            state = "failed"
            raise
        finally:
            metrics.TASKS.labels(task=self.name, state=state).inc()
            metrics.TASK_DURATION.labels(task=self.name).observe(time.perf_counter() - started)

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
