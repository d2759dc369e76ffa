"""Per-request / per-task context: request id, trace id, client schema.

Held in contextvars so log lines, outgoing Celery tasks and external calls can read them
without passing them through every function.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from contextlib import contextmanager

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)
task_var: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "task", default=None
)

# What we accept from a caller: short, and only characters that are safe in logs and headers.
_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
# W3C traceparent: version-traceid-parentid-flags
_TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def new_id() -> str:
    return uuid.uuid4().hex


def clean_id(value: str | None) -> str | None:
    """The caller's id if it is well formed, else None (a bad id is replaced, never echoed)."""
    if value and _ID_RE.match(value):
        return value
    return None


def trace_id_from_traceparent(value: str | None) -> str | None:
    match = _TRACEPARENT_RE.match(value or "")
    if match and match.group(1) != "0" * 32:
        return match.group(1)
    return None


def current_trace_id() -> str | None:
    return trace_id_var.get()


def current_request_id() -> str | None:
    return request_id_var.get()


@contextmanager
def bound(*, request_id: str | None = None, trace_id: str | None = None):
    """Bind ids for the duration of a block (tasks, management commands, tests)."""
    tokens = []
    if request_id is not None:
        tokens.append((request_id_var, request_id_var.set(request_id)))
    if trace_id is not None:
        tokens.append((trace_id_var, trace_id_var.set(trace_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
