"""Outbound pacing in Redis (transport): how long to wait before the next Graph API send.

A token bucket per phone number id keeps to Meta's throughput for that number, and a minimum
spacing between consecutive messages to the same customer keeps multi-part answers in order
on the customer's phone. The callers (the outbound state machine in conversations) decide
what to do with the wait: sleep a little, or retry the task later.
"""

from __future__ import annotations

import time

from django.conf import settings

from wafaa.redis import get_redis

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
