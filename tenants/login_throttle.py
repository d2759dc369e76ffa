"""Brute-force protection for every login surface, on django-axes.

django-axes hooks into django.contrib.auth's authenticate(): its backend refuses a locked-out
caller before any password is checked, and its signal handlers count failures. It covers the
admin login form and our API login alike (both call authenticate()).

Two counters per failed login, in Redis (the default cache), each kept for
LOGIN_LOCKOUT_MINUTES after its latest failure:

- (account, IP): locked after LOGIN_FAILURES_PER_ACCOUNT_AND_IP failures. Guessing one
  person's password from one place stops; the person themselves, from anywhere else, still
  logs in. There is deliberately no account-wide lock: it would let anyone lock anyone out.
- IP: locked after LOGIN_FAILURES_PER_IP failures over any accounts (password spraying).

A successful login clears only its own (account, IP) counter: a caller who owns an account
cannot wipe its address's count by logging into it between guesses.
"""

from __future__ import annotations

import hashlib
import logging

from axes.backends import AxesStandaloneBackend
from axes.handlers.cache import AxesCacheHandler
from axes.helpers import get_client_cache_keys, get_credentials
from django.conf import settings
from django.http import HttpResponse
from redis.exceptions import RedisError

from wafaa.api.exceptions import error_response

logger = logging.getLogger(__name__)


def username_of(request, credentials) -> str | None:
    """The account name tried, lower-cased (emails are our usernames, case does not matter)."""
    if credentials:
        name = credentials.get("username")
    else:
        name = getattr(request, "POST", {}).get("username")
    return name.strip().lower() if isinstance(name, str) else None


def _digest(username: str | None) -> str:
    # Logs name an account by a short digest, never by its email.
    return hashlib.sha256((username or "").encode()).hexdigest()[:10]


def describe_client(username, ip_address, user_agent, path_info, request) -> str:
    """For axes' own log lines: the address and the account's digest."""
    return f"account={_digest(username)} ip={ip_address} path={path_info}"


def lockout_seconds() -> int:
    return settings.LOGIN_LOCKOUT_MINUTES * 60


LOCKED_MESSAGE = (
    "Too many failed logins from this address. Try again in {minutes} minutes; other "
    "addresses are not affected."
)


def lockout_response(request, original_response=None, credentials=None):
    """What a locked-out login gets: the API's error envelope, or plain text for the admin."""
    if getattr(original_response, "lockout_answered", False):
        # A login page that answered the lockout itself (the inbox's form, in the person's
        # language, status 429) keeps its answer.
        return original_response
    minutes = settings.LOGIN_LOCKOUT_MINUTES
    message = LOCKED_MESSAGE.format(minutes=minutes)
    if request.path.startswith("/api/"):
        response = error_response("rate_limited", message, 429, {"retry_after": lockout_seconds()})
    else:
        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(lockout_seconds())
    return response


class LoginFailureHandler(AxesCacheHandler):
    """axes' cache handler with a limit per counter instead of one limit for all.

    AXES_LOCKOUT_PARAMETERS is [["username", "ip_address"], "ip_address"], so axes keeps the two
    counters in that order; AXES_FAILURE_LIMIT is the IP limit (the larger), which axes applies
    to both, and the (account, IP) limit is added here.
    """

    def _counts(self, request, credentials) -> tuple[int, int]:
        pair_key, ip_key = get_client_cache_keys(request, credentials)
        try:
            return self.cache.get(pair_key, 0), self.cache.get(ip_key, 0)
        except RedisError:
            # Redis down: logins keep working unthrottled (as the API's rate limits do) rather
            # than every login failing; /health reports Redis.
            logger.warning("login throttle not checked: Redis unavailable")
            return 0, 0

    def is_locked(self, request, credentials=None) -> bool:
        pair, per_ip = self._counts(request, credentials)
        return (
            pair >= settings.LOGIN_FAILURES_PER_ACCOUNT_AND_IP
            or per_ip >= settings.LOGIN_FAILURES_PER_IP
        )

    def get_failures(self, request, credentials=None) -> int:
        return self._counts(request, credentials)[0]

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        try:
            super().user_login_failed(sender, credentials, request, **kwargs)
        except RedisError:
            logger.warning("login failure not counted: Redis unavailable")
            return
        if request is not None and self.is_locked(request, credentials):
            # The failure that reaches a limit is already answered as locked out.
            request.axes_locked_out = True
            request.axes_credentials = credentials
            logger.warning(
                "login locked out",
                extra={
                    "ip": request.axes_ip_address,
                    "account": _digest(username_of(request, credentials)),
                },
            )

    def user_logged_in(self, sender, request, user, **kwargs):
        pair_key = get_client_cache_keys(request, get_credentials(user.get_username()))[0]
        try:
            self.cache.delete(pair_key)
        except RedisError:
            logger.warning("login failures not cleared: Redis unavailable")


class LoginThrottleBackend(AxesStandaloneBackend):
    """axes' backend, letting through authenticate() calls made without a request.

    Every HTTP login surface passes its request (Django's admin form, DRF, our API login);
    a call without one comes from code (the test client's login(), a shell) and has no caller
    address to count. axes itself would raise for it.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
