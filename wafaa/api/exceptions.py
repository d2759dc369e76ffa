"""One error envelope for every API error: {"error": {code, message, details, request_id}}."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import OperationalError
from django.http import Http404, JsonResponse
from psycopg.errors import QueryCanceled
from rest_framework import exceptions, status
from rest_framework.response import Response

from wafaa import context
from wafaa.errors import ApplicationError, RateLimitedError

logger = logging.getLogger(__name__)

_DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "validation_error",
    exceptions.Throttled: "rate_limited",
}


def envelope(code: str, message: str, details: dict | None = None) -> dict:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details or {},
            "request_id": context.current_request_id(),
        }
    }


def error_response(code: str, message: str, status_code: int, details: dict | None = None):
    """A plain Django JSON response in the envelope (for views outside DRF)."""
    return JsonResponse(envelope(code, message, details), status=status_code)


def _validation_message(detail) -> str:
    if isinstance(detail, dict):
        fields = ", ".join(sorted(str(key) for key in detail))
        return f"Invalid input in: {fields}."
    if isinstance(detail, list) and detail:
        return str(detail[0])
    return "Invalid input."


def is_statement_timeout(exc: BaseException) -> bool:
    """A query PostgreSQL cancelled at DB_STATEMENT_TIMEOUT_MS (web requests only)."""
    cause = exc.__cause__ if isinstance(exc, OperationalError) else exc
    return isinstance(cause, QueryCanceled)


def timeout_response():
    response = error_response(
        "timeout",
        "The request took too long and was stopped. Retry in a moment; quote the request id to "
        "support if it keeps happening.",
        503,
    )
    response["Retry-After"] = "5"
    return response


def exception_handler(exc, context_):
    headers = {}
    if is_statement_timeout(exc):
        logger.warning("request stopped by the statement timeout")
        return timeout_response()
    if isinstance(exc, ApplicationError):
        if isinstance(exc, RateLimitedError):
            headers["Retry-After"] = str(exc.retry_after)
        logger.info("application error", extra={"code": exc.code, "status": exc.status_code})
        return Response(
            envelope(exc.code, exc.message, exc.details), status=exc.status_code, headers=headers
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RecursionError):
        # A view whose own parser list lets json's RecursionError out (deeply nested input):
        # the caller's input is at fault, not the server. The default parser handles it itself.
        exc = exceptions.ParseError("The request body is nested too deeply.")
    elif isinstance(exc, RequestDataTooBig):
        return Response(
            envelope("payload_too_large", "The request body is larger than the server accepts."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None)
        code = code or (exc.get_codes() if isinstance(exc.get_codes(), str) else "error")
        if isinstance(exc, exceptions.ValidationError):
            details = (
                exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            )
            message = _validation_message(exc.detail)
        else:
            details = {}
            message = str(exc.detail)
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        logger.info("api error", extra={"code": code, "status": exc.status_code})
        return Response(envelope(code, message, details), status=exc.status_code, headers=headers)
    logger.exception("unhandled error in API view")
    return Response(
        envelope(
            "server_error", "Something went wrong on our side. Quote the request id to support."
        ),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
