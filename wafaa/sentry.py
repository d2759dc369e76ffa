"""Error reporting to Sentry: on only when SENTRY_DSN is set, and never with customer data.

`init_sentry(...)` is called once at the end of config.settings, so web, worker and beat
processes all report. What leaves the process is limited on three levels:

- SDK options: no PII (`data_collection`, which supersedes `send_default_pii` in this SDK),
  no request bodies, no local variables, and only the integrations we list (Django, Celery
  and the SDK's defaults such as logging): the auto-enabled ones are off, so the OpenAI
  integration never records prompts or answers.
- `before_send` / `before_breadcrumb` scrub every event: request data, cookies and the
  verify token are dropped, `text`/`body` keys are removed wherever they appear (extra,
  contexts, breadcrumb data), other sensitive keys are masked, and phone numbers are masked
  in every remaining string (wafaa.logging.mask_phone).
- Each event is tagged with our trace id and request id (wafaa.context) and the client
  schema, so an issue in Sentry leads to `manage.py trace <trace_id>` and the JSON logs.

The client schema: django-tenants calls `set_tenant_tag` on every schema switch
(EXTRA_SET_TENANT_METHOD_PATH in settings), which tags the current request's or task's
Sentry scope with the last client schema it entered. An error raised inside a client's
schema is usually reported after the schema was switched back to public (a webhook's
exception leaves `tenant_context` first), so the schema at report time alone would say
"public".
"""

from __future__ import annotations

import re
from typing import Any

from wafaa import context
from wafaa.logging import SENSITIVE_KEYS, mask_phone, mask_value

# Keys whose values may hold a customer's message: removed, not masked.
DROPPED_KEYS = {
    "text",
    "body",
    "content",
    "messages",
    "prompt",
    "completion",
    "question",
    "last_customer_message",
}
FILTERED = "[Filtered]"
# Query-string parameters that carry secrets (Meta's verify handshake).
_SECRET_QUERY_RE = re.compile(r"(hub\.verify_token|access_token|token|key)=[^&]*", re.I)
_MAX_DEPTH = 10
# Request headers never sent (on top of the SDK's own list: auth, cookies, tokens, ...):
# client addresses, and Meta's signature of the body.
_HEADER_DENYLIST = ["forwarded", "-ip", "remote-", "via", "-user", "signature"]
# Contexts the SDK fills with its own ids and versions (no customer data), left as they are.
_SDK_CONTEXTS = {"trace", "runtime", "os", "device", "app", "cloud_resource"}


def init_sentry(
    *, dsn: str, environment: str, release: str, traces_sample_rate: float = 0.0
) -> bool:
    """Start the Sentry SDK when `dsn` is set. Returns whether it was started.

    Takes its values as arguments because it runs while config.settings is still being
    imported (reading django.conf.settings there would freeze a half-built settings object).
    """
    if not dsn:
        return False

    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.openai import OpenAIIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        # What integrations collect. This SDK version replaces `send_default_pii` (deprecated,
        # and ignored when this is set) with per-category settings: no user identity,
        # cookies, bodies, SQL parameters, task arguments, LLM prompts/outputs or locals.
        data_collection={
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_headers": {"request": {"mode": "denylist", "terms": _HEADER_DENYLIST}},
            "http_bodies": [],
            "url_query_params": {"mode": "denylist", "terms": ["verify_token", "challenge"]},
            "gen_ai": {"inputs": False, "outputs": False},
            "database_query_data": False,
            "queues": False,
            "stack_frame_variables": False,
        },
        max_request_body_size="never",
        include_local_variables=False,
        # Only what we list: auto-enabled integrations (openai, httpx, redis, ...) could
        # record prompts, answers, cached conversation context or Redis values.
        auto_enabling_integrations=False,
        integrations=[
            DjangoIntegration(transaction_style="url", middleware_spans=False, cache_spans=False),
            CeleryIntegration(monitor_beat_tasks=False),
        ],
        # Belt and braces: the OpenAI integration stays off even if it is ever auto-enabled.
        disabled_integrations=[OpenAIIntegration],
        traces_sample_rate=traces_sample_rate,
        before_send=before_send,
        before_send_transaction=before_send,
        before_breadcrumb=before_breadcrumb,
    )
    return True


def set_tenant_tag(connection, tenant) -> None:
    """django-tenants' EXTRA_SET_TENANT_METHOD: tag the Sentry scope with the client schema."""
    schema = getattr(tenant, "schema_name", None)
    if not schema or schema == "public":
        return  # switching back to public keeps the client the request or task worked for
    import sentry_sdk

    if sentry_sdk.get_client().is_active():
        sentry_sdk.get_isolation_scope().set_tag("client_schema", schema)


# --- scrubbing -------------------------------------------------------------------------------


def scrub(value: Any, depth: int = 0) -> Any:
    """A copy of `value` with message texts removed and phones and secrets masked."""
    if depth > _MAX_DEPTH:
        return FILTERED
    if isinstance(value, dict):
        cleaned = {}
        for key, item in value.items():
            name = str(key).lower()
            if name in DROPPED_KEYS:
                continue
            if name in SENSITIVE_KEYS and isinstance(item, str | int):
                cleaned[key] = mask_value(name, str(item))
            else:
                cleaned[key] = scrub(item, depth + 1)
        return cleaned
    if isinstance(value, list | tuple):
        return [scrub(item, depth + 1) for item in value]
    if isinstance(value, str):
        return mask_phone(value)
    return value


def _scrub_request(request: dict) -> dict:
    for key in ("data", "cookies", "env"):
        request.pop(key, None)
    if isinstance(request.get("query_string"), str):
        request["query_string"] = _SECRET_QUERY_RE.sub(rf"\1={FILTERED}", request["query_string"])
    if isinstance(request.get("headers"), dict):
        request["headers"] = scrub(request["headers"])
    return request


def _scrub_data(data: dict) -> dict:
    # Outgoing HTTP calls: media URLs carry signed query strings.
    return scrub({k: v for k, v in data.items() if k not in {"http.query", "http.fragment"}})


def _scrub_breadcrumb(crumb: dict) -> dict:
    if isinstance(crumb.get("message"), str):
        crumb["message"] = mask_phone(crumb["message"])
    if isinstance(crumb.get("data"), dict):
        crumb["data"] = _scrub_data(crumb["data"])
    return crumb


def _scrub_exception_values(event: dict) -> None:
    for exception in (event.get("exception") or {}).get("values") or []:
        if isinstance(exception.get("value"), str):
            exception["value"] = mask_phone(exception["value"])
        for frame in (exception.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    for thread in (event.get("threads") or {}).get("values") or []:
        for frame in (thread.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)


def before_breadcrumb(crumb: dict, hint: dict | None = None) -> dict:
    return _scrub_breadcrumb(crumb)


def before_send(event: dict, hint: dict | None = None) -> dict:
    """Scrub an event, then tag it with our trace id, request id and client schema."""
    if isinstance(event.get("request"), dict):
        event["request"] = _scrub_request(event["request"])
    extra = event.get("extra")
    if isinstance(extra, dict):
        # The command line of a management command may hold a text (simulate_message).
        if isinstance(extra.get("sys.argv"), list):
            extra["sys.argv"] = extra["sys.argv"][:2]
        event["extra"] = scrub(extra)
    contexts = event.get("contexts")
    if isinstance(contexts, dict):
        event["contexts"] = {
            name: value if name in _SDK_CONTEXTS else scrub(value)
            for name, value in contexts.items()
        }
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        logentry.pop("params", None)  # log arguments may be a customer's text
        for key in ("message", "formatted"):
            if isinstance(logentry.get(key), str):
                logentry[key] = mask_phone(logentry[key])
    if isinstance(event.get("message"), str):
        event["message"] = mask_phone(event["message"])
    _scrub_exception_values(event)
    breadcrumbs = event.get("breadcrumbs")
    if isinstance(breadcrumbs, dict):
        breadcrumbs["values"] = [_scrub_breadcrumb(c) for c in breadcrumbs.get("values") or []]
    for span in event.get("spans") or []:  # transactions, when tracing is on
        if isinstance(span, dict):
            if isinstance(span.get("description"), str):
                span["description"] = mask_phone(span["description"])
            if isinstance(span.get("data"), dict):
                span["data"] = _scrub_data(span["data"])
    event.pop("user", None)

    tags = event.setdefault("tags", {})
    if isinstance(tags, dict):
        if context.current_trace_id():
            tags["trace_id"] = context.current_trace_id()
        if context.current_request_id():
            tags["request_id"] = context.current_request_id()
        schema = _current_schema()
        if schema and (schema != "public" or "client_schema" not in tags):
            tags["client_schema"] = schema
    return event


def _current_schema() -> str | None:
    try:
        from django.db import connection

        return getattr(connection, "schema_name", None)
    except Exception:  # reporting must never fail because the database layer is not ready
        return None
