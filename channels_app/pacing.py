"""Outbound pacing in Redis (transport): how long to wait before the next Graph API send.

A token bucket per phone number id keeps to Meta's throughput for that number, and a minimum
spacing between consecutive messages to the same customer keeps multi-part answers in order
on the customer's phone. The callers (the outbound state machine in conversations) decide
what to do with the wait: sleep a little, or retry the task later.

When Meta throttles a number (or fails for it), the whole number pauses: `number_trouble`
sets a pause key for that phone number id, which `pace` honours for every message of the
number, so one throttled number makes one request per pause instead of one per queued
message. Consecutive troubles lengthen the pause (the one backoff formula, wafaa.backoff);
a successful send ends the streak (`number_ok`).
"""

from __future__ import annotations

import time

from django.conf import settings

from wafaa.backoff import backoff_delay
from wafaa.redis import get_redis

# Meta's throttling: start at a few seconds, up to a minute while it keeps throttling (Meta
# asks to back off; its per-number limits reset within minutes, and Retry-After, when sent,
# wins). Server errors and timeouts: from 2 s up to 20 s, a probe now and then rather than a
# request per queued message, and back to full speed soon after Meta recovers.
PAUSE_ON = {"throttled": (4.0, 60.0), "unavailable": (2.0, 20.0)}
STREAK_TTL_SECONDS = 600


def _pause_key(account) -> str:
    return f"wafaa:pace:pause:{account.external_id}"


def _streak_key(account) -> str:
    return f"wafaa:pace:streak:{account.external_id}"


def number_trouble(*, account, kind: str, retry_after: float | None = None) -> float:
    """Pause every send of this phone number; returns the pause in seconds. `kind` is
    "throttled" (Meta's rate limits) or "unavailable" (5xx, timeouts, connection errors)."""
    base, cap = PAUSE_ON[kind]
    client = get_redis()
    pipe = client.pipeline()
    pipe.incr(_streak_key(account))
    pipe.expire(_streak_key(account), STREAK_TTL_SECONDS)
    streak = int(pipe.execute()[0])
    pause = max(retry_after or 0.0, backoff_delay(streak - 1, base=base, cap=cap, jitter=0.25))
    # Never shorten a pause another worker set a moment ago.
    current = client.pttl(_pause_key(account))
    if current is None or current < pause * 1000:
        client.set(_pause_key(account), kind, px=max(1, int(pause * 1000)))
    return pause


def number_ok(*, account) -> None:
    """A send went through: the number's trouble streak is over."""
    client = get_redis()
    if client.exists(_streak_key(account)):
        client.delete(_streak_key(account), _pause_key(account))


def number_paused_for(*, account) -> float:
    """Seconds left of this number's pause (0 when it may send)."""
    remaining = get_redis().pttl(_pause_key(account))
    return max(0.0, remaining / 1000) if remaining and remaining > 0 else 0.0


_BUCKET_LUA = """
local key, rate, now, cost = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 1
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1]) or rate
local ts = tonumber(state[2]) or now
tokens = math.min(rate, tokens + (now - ts) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = (cost - tokens) / rate end
redis.call('HSET', key, 'tokens', tokens, 'ts', now)
redis.call('EXPIRE', key, 60)
return tostring(wait)
"""


def pace(*, account, recipient: str) -> float:
    """Seconds to wait before sending: a token bucket per phone number id (Meta's throughput)
    and a minimum spacing between consecutive messages to the same customer."""
    paused = number_paused_for(account=account)
    if paused > 0:
        return paused  # the number is paused: take no token, make no request
    client = get_redis()
    now = time.time()
    wait = float(
        client.eval(
            _BUCKET_LUA,
            1,
            f"wafaa:pace:account:{account.external_id}",
            settings.WHATSAPP_MESSAGES_PER_SECOND,
            now,
        )
    )
    spacing_ms = settings.SAME_CUSTOMER_SPACING_MS
    if spacing_ms > 0:
        key = f"wafaa:pace:recipient:{account.external_id}:{recipient}"
        if not client.set(key, "1", px=spacing_ms, nx=True):
            wait = max(wait, (client.pttl(key) or 0) / 1000)
            client.set(key, "1", px=spacing_ms + int(wait * 1000))
    return wait
