"""Structured logging: JSON lines (python-json-logger) or a console format, with context.

Every record gets the request id, trace id, client schema and task from wafaa.context, and
message texts and phone numbers are masked before they are written.
"""

from __future__ import annotations

import logging
import re

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from wafaa import context

# International phone numbers (7-15 digits, optional +): keep the last 3 digits for support.
_PHONE_RE = re.compile(r"(?<![\w.])\+?\d[\d -]{5,16}\d(?![\w.])")
SENSITIVE_KEYS = {
    "text",
    "body",
    "phone",
    "wa_id",
    "from",
    "to",
    "recipient",
    "access_token",
    "app_secret",
    "password",
    "token",
    "api_key",
    "authorization",
}


# Python string literals inside a repr (Celery's argsrepr, a task's return value).
_STRING_LITERAL = re.compile(r"'(?:[^'\\\n]|\\.)*'" r'|"(?:[^"\\\n]|\\.)*"')
# What a string argument may show in a log line: a UUID, a webhook id, a lowercase code or a
# dotted task name (letters and '_' only: hex tokens and phone numbers have digits). Anything
# else (a customer's text, a token, a number in quotes) is replaced by '…'.
_SAFE_STRING = re.compile(
    r"^(?:[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
    r"|msg_[0-9a-f]{32}"
    r"|[a-z_]{1,32}(?:\.[a-z_]{1,64}){0,6})$"
)
MASKED = "'…'"
# Keys of Celery's log-record context that hold task arguments and results.
TASK_CONTEXT_KEYS = ("args", "kwargs", "return_value")


def mask_repr(text: str) -> str:
    """`text` (a repr of task arguments or of a result) with unsafe string literals masked."""

    def repl(match: re.Match) -> str:
        literal = match.group(0)
        return literal if _SAFE_STRING.match(literal[1:-1]) else MASKED

    return _STRING_LITERAL.sub(repl, text)


def mask_task_context(values: dict) -> dict:
    """A copy of Celery's log context ("Task received", "succeeded", failures) made safe."""
    from celery.utils.saferepr import saferepr

    masked = dict(values)
    for key in TASK_CONTEXT_KEYS:
        if key in masked and masked[key] is not None:
            value = masked[key]
            masked[key] = mask_repr(value if isinstance(value, str) else saferepr(value))
    return masked


def mask_phone(value: str) -> str:
    def repl(match: re.Match) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return "***" + digits[-3:] if len(digits) >= 7 else match.group(0)

    return _PHONE_RE.sub(repl, value)


def mask_value(key: str, value):
    if key.lower() in SENSITIVE_KEYS and value not in (None, ""):
        if key.lower() in {"text", "body"}:
            return f"<{len(str(value))} chars>"
        if key.lower() in {"phone", "wa_id", "from", "to", "recipient"}:
            return mask_phone(str(value)) if str(value)[-3:].isdigit() else "***"
        return "***"
    return value


def _schema_name() -> str | None:
    try:
        from django.db import connection

        return getattr(connection, "schema_name", None)
    except Exception:  # logging must never fail because the database layer is not ready
        return None


class ContextFilter(logging.Filter):
    """Adds ids and the client schema to each record and masks sensitive extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = context.request_id_var.get()
        record.trace_id = context.trace_id_var.get()
        # A caller may name the schema it worked in (the request log line is written after
        # the connection went back to public); otherwise the connection's current schema.
        if not getattr(record, "client_schema", None):
            record.client_schema = _schema_name()
        task = context.task_var.get()
        record.task_name, record.task_id = task if task else (None, None)
        for key in list(record.__dict__):
            if key.lower() in SENSITIVE_KEYS:
                record.__dict__[key] = mask_value(key, record.__dict__[key])
        # Celery logs task arguments and results ("Task received", "Task succeeded", failures)
        # from a context dict passed as the format args and as `data`: our tasks carry ids
        # only (their argsrepr is masked when sent), and this masks what any sender put there.
        if isinstance(record.args, dict) and any(k in record.args for k in TASK_CONTEXT_KEYS):
            record.args = mask_task_context(record.args)
        data = record.__dict__.get("data")
        if isinstance(data, dict) and any(k in data for k in TASK_CONTEXT_KEYS):
            record.data = mask_task_context(data)
        if isinstance(record.msg, str):
            record.msg = mask_phone(record.msg)
        return True


class JsonFormatter(_JsonFormatter):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault(
            "fmt",
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(trace_id)s "
            "%(client_schema)s %(task_name)s %(task_id)s",
        )
        kwargs.setdefault(
            "rename_fields",
            {"asctime": "timestamp", "levelname": "level", "name": "logger", "message": "event"},
        )
        kwargs.setdefault("timestamp", False)
        super().__init__(*args, **kwargs)

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging's API
        from datetime import UTC, datetime

        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class ConsoleFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(trace_id)s] %(message)s")
