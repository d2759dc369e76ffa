"""OpenTelemetry tracing, optional and off by default: on only when OTEL_EXPORTER_OTLP_ENDPOINT
is set, and then only with the packages of requirements-otel.txt installed.

`init_otel()` is called by each process before it serves work (config.wsgi for gunicorn
workers, a worker_process_init handler in config.celery for Celery's pool processes). With
the variable unset it returns at once and imports nothing from opentelemetry, so the default
deployment carries no tracing code at all.

When on, spans for Django requests, Celery tasks (publish and run), psycopg queries, Redis
commands, requests' outgoing calls (the Graph API), httpx calls (the OpenAI SDK: LLM,
embeddings) and the stages of a message's way (`stage()`: inbox, retrieve, llm, send) are
exported over OTLP/HTTP, and the OpenTelemetry trace id is our trace id (wafaa.context), the
one in logs, Sentry and `manage.py trace`:

- a caller's W3C `traceparent` is parsed by both sides alike;
- a caller's `X-Trace-ID`, or the `trace_id` header of our Celery tasks, is used as the
  OpenTelemetry trace id when it has the W3C form (32 hex digits; ours always do);
- a request that brings neither gets the server span's trace id as its `traceparent`, before
  wafaa.middleware reads it, so our middleware adopts the same id;
- a new trace started where our trace id is already bound (a task publishing a task outside
  any request) takes that id;
- every span also carries `wafaa.trace_id` (and `wafaa.client_schema` inside a client's
  schema), so a caller's free-form X-Trace-ID can still be searched for.

Span contents stay free of customer data: SQL without parameters, URLs without query strings,
no request or response bodies.
"""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from wafaa import context as wafaa_context

logger = logging.getLogger("wafaa.otel")

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
_HEX_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_initialised = False


def init_otel(*, service_name: str = "wafaa", exporter=None) -> bool:
    """Start tracing when OTEL_EXPORTER_OTLP_ENDPOINT is set. Returns whether it started.

    Safe to call more than once per process (the second call does nothing). `exporter` (an
    OpenTelemetry SpanExporter, e.g. the SDK's InMemorySpanExporter) replaces the OTLP one and
    starts tracing without an endpoint: the tests use it to read the spans a process makes.
    """
    global _initialised
    if not os.environ.get(ENDPOINT_VARIABLE) and exporter is None:
        return False
    if _initialised:
        return True
    try:
        _start(service_name, exporter)
    except ImportError as exc:
        logger.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry packages are missing "
            "(pip install -r requirements-otel.txt): tracing stays off",
            extra={"missing": exc.name},
        )
        return False
    _initialised = True
    return True


def _trace_id_int(value: str | None) -> int | None:
    if value and _HEX_TRACE_ID.match(value) and value != "0" * 32:
        return int(value, 16)
    return None


@contextmanager
def stage(name: str, **attributes):
    """A span for one stage of a message's way (inbox, retrieve, llm, send), under the current
    span; nothing at all when tracing is off (no import, no object)."""
    if not _initialised:
        yield
        return
    from opentelemetry import trace

    tracer = trace.get_tracer("wafaa")
    clean = {f"wafaa.{k}": v for k, v in attributes.items() if v is not None}
    with tracer.start_as_current_span(f"wafaa.{name}", attributes=clean):
        yield


def _start(service_name: str, exporter=None) -> None:
    from django.conf import settings
    from opentelemetry import propagate, trace
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.httpx import (
        HTTPX2ClientInstrumentor,
        HTTPXClientInstrumentor,
    )
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    class WafaaTraceIdPropagator(TraceContextTextMapPropagator):
        """Makes our trace id (X-Trace-ID on HTTP, `trace_id` on Celery tasks) the
        OpenTelemetry trace id when it has the W3C form; runs after the W3C propagator."""

        def extract(self, carrier, context=None, getter=None):
            from opentelemetry.propagators.textmap import default_getter
            from opentelemetry.trace import (
                NonRecordingSpan,
                SpanContext,
                TraceFlags,
                get_current_span,
                set_span_in_context,
            )

            getter = getter or default_getter
            values = getter.get(carrier, "x-trace-id") or getter.get(carrier, "trace_id") or []
            wanted = _trace_id_int(values[0] if values else None)
            if wanted is None:
                return context
            parent = get_current_span(context).get_span_context()
            if parent.is_valid and parent.trace_id == wanted:
                return context
            remote = SpanContext(
                trace_id=wanted,
                span_id=int.from_bytes(os.urandom(8), "big") or 1,
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            return set_span_in_context(NonRecordingSpan(remote), context)

        def inject(self, carrier, context=None, setter=None):
            return None  # the W3C propagator writes traceparent; our ids travel on their own

        @property
        def fields(self):
            return {"x-trace-id", "trace_id"}

    class WafaaIdGenerator(RandomIdGenerator):
        """A new trace started where our trace id is bound (a task sending a task, a
        management command) gets our trace id."""

        def generate_trace_id(self) -> int:
            return _trace_id_int(wafaa_context.current_trace_id()) or super().generate_trace_id()

    class WafaaAttributesProcessor(SpanProcessor):
        def on_start(self, span, parent_context=None):
            trace_id = wafaa_context.current_trace_id()
            if trace_id:
                span.set_attribute("wafaa.trace_id", trace_id)
            schema = _current_schema()
            if schema and schema != "public":
                span.set_attribute("wafaa.client_schema", schema)

    def django_request_hook(span, request):
        span_context = span.get_span_context()
        meta = request.META
        ours = wafaa_context.clean_id(
            meta.get("HTTP_X_TRACE_ID")
        ) or wafaa_context.trace_id_from_traceparent(meta.get("HTTP_TRACEPARENT"))
        if ours is None and span_context.is_valid:
            # Our middleware runs next and takes its trace id from this traceparent.
            meta["HTTP_TRACEPARENT"] = (
                f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
                f"{int(span_context.trace_flags):02x}"
            )
            request.__dict__.pop("headers", None)  # rebuilt from META when next read

    def django_response_hook(span, request, response):
        if span.is_recording():
            for name in ("trace_id", "request_id"):
                if getattr(request, name, None):
                    span.set_attribute(f"wafaa.{name}", getattr(request, name))

    def requests_hook(span, request):
        # Media URLs carry signed query strings; keep the path only.
        if not span.is_recording():
            return
        for key in ("url.full", "http.url"):
            value = (getattr(span, "attributes", None) or {}).get(key)
            if value:
                span.set_attribute(key, _without_query(value))

    def httpx_request_hook(span, request):
        if span.is_recording():
            for key in ("url.full", "http.url"):
                value = (getattr(span, "attributes", None) or {}).get(key)
                if value:
                    span.set_attribute(key, _without_query(value))

    resource_attributes = {
        "service.version": settings.RELEASE,
        "deployment.environment": settings.ENVIRONMENT,
    }
    if not os.environ.get("OTEL_SERVICE_NAME"):
        resource_attributes["service.name"] = service_name
    provider = TracerProvider(
        resource=Resource.create(resource_attributes), id_generator=WafaaIdGenerator()
    )
    provider.add_span_processor(WafaaAttributesProcessor())
    if exporter is None:
        # Endpoint, headers and timeouts come from the standard OTEL_EXPORTER_OTLP_* variables.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    propagate.set_global_textmap(
        CompositePropagator(
            [TraceContextTextMapPropagator(), W3CBaggagePropagator(), WafaaTraceIdPropagator()]
        )
    )

    DjangoInstrumentor().instrument(
        request_hook=django_request_hook,
        response_hook=django_response_hook,
        excluded_urls="health,ready,metrics",
    )
    CeleryInstrumentor().instrument()
    PsycopgInstrumentor().instrument(enable_commenter=False, capture_parameters=False)
    RequestsInstrumentor().instrument(request_hook=requests_hook)
    # The OpenAI SDK speaks httpx (httpx2 in the SDK we pin): LLM, embedding and
    # transcription calls get their spans, whichever of the two is installed.
    for instrumentor in (HTTPXClientInstrumentor(), HTTPX2ClientInstrumentor()):
        if getattr(instrumentor, "_module", None) is not None:
            instrumentor.instrument(request_hook=httpx_request_hook)
    # Redis: locks, pacing, caches and the broker's own commands (arguments shown as "?").
    RedisInstrumentor().instrument()
    logger.info(
        "OpenTelemetry tracing on",
        extra={"endpoint": os.environ.get(ENDPOINT_VARIABLE), "service": service_name},
    )


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _current_schema() -> str | None:
    try:
        from django.db import connection

        return getattr(connection, "schema_name", None)
    except Exception:  # tracing must never fail because the database layer is not ready
        return None
