"""Fair sharing of the reply worker between clients: a cap per client, a line per client.

One `replies` worker runs ~100 replies at once (threads). Without a rule, a client whose
2,000 customers write at the same moment would fill every thread for minutes and every other
client's customers would wait behind them. So:

- **A cap per client.** A reply takes one of its client's slots before it starts
  (`Client.llm_concurrency`, from the plan; in-flight LLM calls, in practice). The slots are a
  Redis sorted set per client (holder token → start time), taken and counted in one Lua
  script; a holder older than the task's time limit (its worker died) no longer counts.
- **A line per client.** A reply that finds its client's slots full does not wait in a
  thread, nor go back to the broker to spin: its message id joins the client's own waiting
  line (a sorted set by first arrival, so a message re-sent by the sweeper keeps its place and
  is never in line twice) and the task ends. Each reply of that client, when it finishes,
  gives its slot back and sends the oldest waiting replies of that client (as many as there
  are free slots) to the back of the `replies` queue. Other clients' replies are never in
  that line: they go straight through, interleaved with the ones released.
- **A 429 backs off that client only.** When the LLM answers 429 for a client's call, the
  client is paused for the provider's Retry-After (at most the longest countdown a task may
  have, CELERY_MAX_COUNTDOWN): its replies wait in its line, the reply that was refused
  retries after the pause and, finishing, releases the line. Other clients are untouched.

Nothing here is the record: if Redis loses the lines, the messages are still `received` in
the database and the sweeper sends them again.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from wafaa import metrics
from wafaa.redis import get_redis

_ACQUIRE = """
local slots, backoff, line = KEYS[1], KEYS[2], KEYS[3]
local now, stale_before, cap, token, message = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
if redis.call('EXISTS', backoff) == 0 then
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', stale_before)
  if redis.call('ZCARD', slots) < cap then
    redis.call('ZADD', slots, now, token)
    redis.call('EXPIRE', slots, 3600)
    redis.call('ZREM', line, message)
    return 1
  end
end
redis.call('ZADD', line, 'NX', now, message)
redis.call('EXPIRE', line, 86400)
return 0
"""

_RELEASE = """
local slots, backoff, line = KEYS[1], KEYS[2], KEYS[3]
local stale_before, cap, token = ARGV[1], tonumber(ARGV[2]), ARGV[3]
redis.call('ZREM', slots, token)
if redis.call('EXISTS', backoff) == 1 then
  return {}
end
redis.call('ZREMRANGEBYSCORE', slots, '-inf', stale_before)
local free = cap - redis.call('ZCARD', slots)
if free <= 0 then
  return {}
end
local popped = redis.call('ZPOPMIN', line, free)
local ids = {}
for i = 1, #popped, 2 do
  ids[#ids + 1] = popped[i]
end
return ids
"""


@dataclass(frozen=True)
class Slot:
    schema: str
    token: str
    cap: int


def _keys(schema: str) -> list[str]:
    return [
        f"wafaa:replies:slots:{schema}",
        f"wafaa:replies:backoff:{schema}",
        f"wafaa:replies:waiting:{schema}",
    ]


def _cap() -> int:
    return max(1, int(getattr(connection.tenant, "llm_concurrency", 0) or 20))


def _stale_before(now: float) -> float:
    return now - settings.CELERY_TASK_TIME_LIMIT


def slot_acquire(*, message_id) -> Slot | None:
    """A slot of the current client for answering `message_id`, or None: the client is at
    its cap or paused, and the message now waits in the client's line."""
    schema = connection.schema_name
    slot = Slot(schema=schema, token=uuid.uuid4().hex, cap=_cap())
    now = time.time()
    taken = get_redis().eval(
        _ACQUIRE,
        3,
        *_keys(schema),
        now,
        _stale_before(now),
        slot.cap,
        slot.token,
        str(message_id),
    )
    if taken:
        return slot
    metrics.REPLIES_WAITING.inc()
    return None


def slot_release(slot: Slot) -> list[str]:
    """Give `slot` back; the ids of this client's oldest waiting messages that now have a
    free slot (the caller sends their tasks again)."""
    return list(
        get_redis().eval(
            _RELEASE, 3, *_keys(slot.schema), _stale_before(time.time()), slot.cap, slot.token
        )
    )


def client_backoff(*, seconds: float) -> float:
    """Pause the current client's replies for `seconds` (a 429 for its key); returns the
    pause applied (bounded, so a retried task always outlives it)."""
    seconds = min(max(1.0, seconds), float(settings.CELERY_MAX_COUNTDOWN - 2))
    get_redis().set(_keys(connection.schema_name)[1], "1", px=int(seconds * 1000))
    metrics.LLM_BACKOFFS.inc()
    return seconds


def waiting_count(schema: str) -> int:
    return int(get_redis().zcard(_keys(schema)[2]))
