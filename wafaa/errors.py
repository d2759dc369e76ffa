"""Typed application errors with stable codes, rendered by wafaa.api.exceptions."""

from __future__ import annotations


class ApplicationError(Exception):
    """Base for errors a service raises on purpose; the message is shown to the caller."""

    code = "error"
    status_code = 400

    def __init__(self, message: str, *, details: dict | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code


class NotFoundError(ApplicationError):
    code = "not_found"
    status_code = 404


class PermissionDeniedError(ApplicationError):
    code = "permission_denied"
    status_code = 403


class ConflictError(ApplicationError):
    code = "conflict"
    status_code = 409


class ClientSuspendedError(ApplicationError):
    code = "client_suspended"
    status_code = 403


class RateLimitedError(ApplicationError):
    code = "rate_limited"
    status_code = 429

    def __init__(self, message: str, *, retry_after: int, details: dict | None = None):
        super().__init__(message, details=details)
        self.retry_after = retry_after


class PlanLimitError(ApplicationError):
    code = "plan_limit"
    status_code = 403


class PayloadTooLargeError(ApplicationError):
    code = "payload_too_large"
    status_code = 413
