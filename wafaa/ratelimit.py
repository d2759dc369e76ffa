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


# Login brute force is throttled by django-axes (tenants.login_throttle), not here.
