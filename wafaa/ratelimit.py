"""Per-client API rate limits, counted in Redis in fixed one-minute windows."""

from __future__ import annotations

import logging
import time

from wafaa.errors import RateLimitedError
from wafaa.redis import get_redis

logger = logging.getLogger(__name__)


def check_rate_limit(*, client_id: int, limit: int, now: float | None = None) -> None:
    now = time.time() if now is None else now
    window = int(now // 60)
    key = f"wafaa:ratelimit:api:{client_id}:{window}"
    try:
        pipe = get_redis().pipeline()
        pipe.incr(key)
        pipe.expire(key, 61)
        count = pipe.execute()[0]
    except Exception:
        # Redis down: serve rather than refuse everyone; /health reports Redis.
        logger.warning("rate limit not checked: Redis unavailable")
        return
    if count > limit:
        retry_after = max(1, int(60 - (now % 60)))
        raise RateLimitedError(
            f"This client's plan allows {limit} API requests per minute. "
            f"Retry after {retry_after} s.",
            retry_after=retry_after,
            details={"limit": limit, "window_seconds": 60},
        )


LOGIN_FAILURES_ALLOWED = 10
LOGIN_WINDOW_SECONDS = 15 * 60


def _login_key(email: str) -> str:
    return f"wafaa:ratelimit:login:{email.lower()}"


def check_login_allowed(*, email: str) -> None:
    """Refuse logins for an account after repeated wrong passwords (brute force), for a while."""
    try:
        client = get_redis()
        failures = int(client.get(_login_key(email)) or 0)
        ttl = client.ttl(_login_key(email))
    except Exception:
        logger.warning("login throttle not checked: Redis unavailable")
        return
    if failures >= LOGIN_FAILURES_ALLOWED:
        retry_after = max(1, ttl if ttl and ttl > 0 else LOGIN_WINDOW_SECONDS)
        logger.warning("login refused after repeated failures")
        raise RateLimitedError(
            f"Too many wrong passwords for this account. Try again in {retry_after // 60 + 1} "
            "minutes, or reset the password.",
            retry_after=retry_after,
        )


def record_login_failure(*, email: str) -> None:
    try:
        pipe = get_redis().pipeline()
        pipe.incr(_login_key(email))
        pipe.expire(_login_key(email), LOGIN_WINDOW_SECONDS, nx=True)
        pipe.execute()
    except Exception:
        logger.warning("login failure not counted: Redis unavailable")


def clear_login_failures(*, email: str) -> None:
    try:
        get_redis().delete(_login_key(email))
    except Exception:
        logger.warning("login failures not cleared: Redis unavailable")
