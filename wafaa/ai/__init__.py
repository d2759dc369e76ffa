"""Clients for the AI providers Wafaa talks to: embeddings, chat, and the offline answerer.

Everything under wafaa.ai is plain Python (no Django): configuration comes in as arguments,
and `wafaa.ai_config` builds the clients from settings. This module holds what the OpenAI
clients share: turning an SDK exception into a classification and a message a person can
act on, without ever repeating the API key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# OpenAI's 401 message echoes part of the key ("Incorrect API key provided: sk-pro***abcd").
_KEY_LIKE = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-*.]{4,}")


@dataclass(frozen=True)
class ProviderFailure:
    """What went wrong in a call to an AI provider, already scrubbed of secrets."""

    transient: bool
    code: str
    message: str
    status_code: int | None = None


class AIServiceError(Exception):
    """A call to an AI provider failed; `code` is stable, `message` is safe to show and log.

    `transient` says whether retrying later may succeed; each client (embeddings, chat) has
    its own subclasses so callers can tell which service failed.
    """

    transient = False
    default_code = "ai_failed"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.status_code = status_code
        # Seconds the provider asked us to wait (Retry-After on a 429 or 503), if it said.
        self.retry_after = retry_after


def scrub_secrets(text: str, *secrets: str | None) -> str:
    """Remove API keys (given, and anything shaped like one) from a provider's message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


def classify_openai_error(
    exc: Exception,
    *,
    service: str,
    model: str,
    api_key: str | None,
    timeout: float | None = None,
    key_setting: str = "OPENAI_API_KEY",
) -> ProviderFailure:
    """Classify an openai SDK exception as transient (retry later) or permanent (fix config).

    Transient: timeouts, connection errors, 408/409/429 and 5xx, matching what OpenAI itself
    documents as retryable. A 429 for an exhausted quota is permanent: retrying cannot fix
    billing.
    """
    import openai

    if isinstance(exc, openai.APITimeoutError):
        after = f" within {timeout:g}s" if timeout else ""
        return ProviderFailure(True, "timeout", f"The {service} did not answer{after}.")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderFailure(
            True,
            "connection_error",
            f"Could not reach the {service}. Check the network and OPENAI_BASE_URL.",
        )
    if not isinstance(exc, openai.APIStatusError):
        return ProviderFailure(
            False, "provider_error", f"The {service} failed: {scrub_secrets(str(exc), api_key)}"
        )

    status = exc.status_code
    provider_code, provider_message = _error_body(exc)
    detail = scrub_secrets(provider_message, api_key)[:300]
    if status == 401:
        return ProviderFailure(
            False,
            "invalid_api_key",
            f"The {service} rejected the API key (401). Check {key_setting}.",
            status,
        )
    if status == 403:
        return ProviderFailure(
            False,
            "permission_denied",
            f"The {service} refused access to model '{model}' (403). Check that the API key's "
            "project may use this model.",
            status,
        )
    if status == 404:
        return ProviderFailure(
            False,
            "model_not_found",
            f"The {service} does not know model '{model}' (404). Check the model name and "
            "OPENAI_BASE_URL.",
            status,
        )
    if status == 429:
        if provider_code == "insufficient_quota":
            return ProviderFailure(
                False,
                "quota_exceeded",
                f"The {service} account has run out of quota (429 insufficient_quota). "
                "Check the OpenAI plan and billing.",
                status,
            )
        return ProviderFailure(
            True, "rate_limited", f"The {service} is rate limiting requests (429).", status
        )
    if status in (408, 409) or status >= 500:
        return ProviderFailure(
            True, "provider_unavailable", f"The {service} failed ({status}): {detail}", status
        )
    return ProviderFailure(
        False, "bad_request", f"The {service} rejected the request ({status}): {detail}", status
    )


def retry_after_seconds(exc) -> float | None:
    """The wait an OpenAI(-compatible) error response asks for: `retry-after-ms` (OpenAI's
    own) or `Retry-After` in seconds; None when absent or not a number (an HTTP date is
    ignored: the caller's backoff applies)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def _error_body(exc) -> tuple[str | None, str]:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return error.get("code"), str(error.get("message") or "")
    return None, str(getattr(exc, "message", "") or exc)
