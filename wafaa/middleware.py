"""Request context and schema hygiene for every HTTP request."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import connection

from wafaa import context, metrics
from wafaa.api.exceptions import error_response, is_statement_timeout, timeout_response

logger = logging.getLogger("wafaa.http")


class RequestContextMiddleware:
    """Gives each request a request id and a trace id, echoed as response headers.

    A caller's X-Request-ID / X-Trace-ID (or W3C traceparent) is kept when well formed and
    replaced when not, so a malformed header never reaches our logs or responses.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = context.clean_id(request.headers.get("X-Request-ID")) or context.new_id()
        trace_id = (
            context.clean_id(request.headers.get("X-Trace-ID"))
            or context.trace_id_from_traceparent(request.headers.get("traceparent"))
            or request_id
        )
        request.request_id = request_id
        request.trace_id = trace_id
        started = time.perf_counter()
        with (
            context.bound(request_id=request_id, trace_id=trace_id),
            metrics.HTTP_IN_FLIGHT.track_inprogress(),
        ):
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            response["X-Trace-ID"] = trace_id
            if not request.path.startswith(("/health", "/ready", "/metrics")):
                extra = {
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                }
                # The client the request worked for (set by the client-scoped API view); the
                # connection is back in public by now, so it cannot tell.
                client_schema = getattr(request, "client_schema", None)
                if client_schema:
                    extra["client_schema"] = client_schema
                logger.info("request", extra=extra)
        return response


class PublicSchemaMiddleware:
    """Every request starts and ends in the public schema.

    A client schema is entered only by the API's tenant resolution (after authentication) or
    by a webhook routed to its account; a persistent connection must never carry one client's
    search_path into the next request.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        _to_public()
        try:
            return self.get_response(request)
        finally:
            _to_public()


def _to_public() -> None:
    # Only when another schema is selected: switching always forgets the search_path that
    # is set, so every request would pay one more `SET search_path` round trip.
    if connection.schema_name != "public":
        connection.set_schema_to_public()


class NulCharacterMiddleware:
    """A NUL character in the path or a query parameter is a 400 in the error envelope.

    PostgreSQL cannot store or compare text holding NUL (it raises an error, a 500 here), and
    no legitimate caller sends one: `GET .../contacts?channel=%00` is refused before any view
    or query runs. Bodies are checked by their parsers (wafaa.api.parsers, DRF's and Django's
    form fields).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values)
            for key, values in request.GET.lists()
        ):
            logger.info("request with a NUL character refused", extra={"method": request.method})
            return error_response(
                "malformed_request",
                "The URL must not contain NUL (%00) characters.",
                400,
            )
        return self.get_response(request)


class RequestLimitsMiddleware:
    """The envelope for what the app can still answer itself: too long a URL (414) and a query
    cancelled by the statement timeout (503). gunicorn answers longer request lines, and a
    worker it kills at its timeout, itself (docs/security.md)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        length = len(request.get_full_path())
        if length > settings.MAX_URL_LENGTH:
            return error_response(
                "uri_too_long",
                f"The URL is {length} characters long; the limit is {settings.MAX_URL_LENGTH}. "
                "Send long input in a request body.",
                414,
            )
        return self.get_response(request)

    def process_exception(self, request, exception):
        if is_statement_timeout(exception):
            logger.warning("request stopped by the statement timeout")
            return timeout_response()
        return None
