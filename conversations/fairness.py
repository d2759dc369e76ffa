"""Fair sharing of the reply worker between clients: a cap per client, a line per client.

One `replies` worker runs ~100 replies at once (threads). Without a rule, a client whose
2,000 customers write at the same moment would fill the `replies` queue and every thread
for minutes, and every other client's customers would wait behind them. So:

- **A cap per client, taken when the task is sent.** A reply task is sent to the broker only
  with one of its client's slots (`Client.llm_concurrency`, from the plan: replies, hence
  LLM calls, in flight). The slots are a Redis sorted set per client (member: the message
  id, score: when taken), counted and taken in one Lua script (`reply_admit`, called by the
  task's `apply_async`, so every sender goes through it: webhook, inbox, sweeper, retries).
  A ticket older than the visibility timeout plus the task time limit (its task was lost)
  no longer counts.
- **A line per client, outside the broker.** Without a free slot, or with others of the same
  client already waiting, the message joins the client's own line (a sorted set by first
  arrival: a message sent again by the sweeper keeps its place and is never in line twice)
  and nothing is sent. So the `replies` queue holds at most `llm_concurrency` tasks per
  client, and another client's reply never waits behind a burst: it is next in the queue.
- **Released by the client's own replies.** When a reply task ends (`slot_release`), its
  slot goes to the oldest waiting messages of the same client, whose tasks are sent then, at
  the back of the queue, interleaved with everyone else's. A task that starts without a
  ticket (a redelivery after its ticket went stale, a task sent before this scheme) takes a
  free slot or joins the line (`slot_acquire`).
- **A 429 pauses that client only.** When the LLM answers 429 for a client's call, the
  client is paused for the provider's Retry-After (bounded by the longest countdown a task
  may have): its new replies wait in its line, the refused reply retries after the pause
  (sent past the line) and, ending, releases the line. Other clients are untouched.

Nothing here is the record: if Redis loses the lines, or a worker dies between giving a
waiting message a slot and sending its task, the message is still `received` in the database
and the sweeper sends it again (its slot, if still held, lets it straight through).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from wafaa import metrics
from wafaa.redis import get_redis

# A message's ticket in `slots` (member: the message id, score: when taken) is its client's
# slot, from the moment its reply task is sent until that task ends.
_ADMIT = """
local slots, backoff, line = KEYS[1], KEYS[2], KEYS[3]
local now, stale_before, cap, message = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if redis.call('EXISTS', backoff) == 0 then
  if redis.call('ZSCORE', slots, message) then
    return 1
  end
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', stale_before)
  if redis.call('ZCARD', slots) < cap and redis.call('ZCARD', line) == 0 then
    redis.call('ZADD', slots, now, message)
    redis.call('EXPIRE', slots, 3600)
    return 1
  end
end
redis.call('ZADD', line, 'NX', now, message)
redis.call('EXPIRE', line, 86400)
return 0
"""

_ACQUIRE = """
local slots, backoff, line = KEYS[1], KEYS[2], KEYS[3]
local now, stale_before, cap, message = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if redis.call('EXISTS', backoff) == 0 then
  local held = redis.call('ZSCORE', slots, message)
  if not held then
    redis.call('ZREMRANGEBYSCORE', slots, '-inf', stale_before)
  end
  if held or redis.call('ZCARD', slots) < cap then
    redis.call('ZADD', slots, now, message)
    redis.call('EXPIRE', slots, 3600)
    redis.call('ZREM', line, message)
    return 1
  end
end
redis.call('ZREM', slots, message)
redis.call('ZADD', line, 'NX', now, message)
redis.call('EXPIRE', line, 86400)
return 0
"""

_RELEASE = """
local slots, backoff, line = KEYS[1], KEYS[2], KEYS[3]
local now, stale_before, cap, message = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
redis.call('ZREM', slots, message)
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
  redis.call('ZADD', slots, now, popped[i])
end
return ids
"""


@dataclass(frozen=True)
class Slot:
    schema: str
    message: str
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
    # A ticket is taken when the task is sent: it may wait in a busy queue, then run up to the
    # time limit. Older than both, its task was lost (the sweeper sends the message again).
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 60)
    return now - visibility - settings.CELERY_TASK_TIME_LIMIT


def _run(script: str, schema: str, cap: int, message_id) -> object:
    now = time.time()
    return get_redis().eval(
        script, 3, *_keys(schema), now, _stale_before(now), cap, str(message_id)
    )


def reply_admit(*, message_id) -> bool:
    """Whether the reply task of `message_id` may be sent to the broker now: the current
    client has a free slot and nobody waiting before it (the message takes the slot), or
    False: the message joins the client's line and is sent when a slot frees."""
    admitted = bool(_run(_ADMIT, connection.schema_name, _cap(), message_id))
    if not admitted:
        metrics.REPLIES_WAITING.inc()
    return admitted


def slot_acquire(*, message_id) -> Slot | None:
    """The slot of `message_id`'s reply as its task starts: the ticket taken when it was sent,
    or a free slot (a task sent without one: the sweeper, a redelivery after a ticket went
    stale), or None: the client is full or paused, and the message waits in its line."""
    slot = Slot(schema=connection.schema_name, message=str(message_id), cap=_cap())
    if _run(_ACQUIRE, slot.schema, slot.cap, slot.message):
        return slot
    metrics.REPLIES_WAITING.inc()
    return None


def slot_release(slot: Slot) -> list[str]:
    """Give `slot` back; the ids of this client's oldest waiting messages that now have a
    slot (taken for them here): the caller sends their tasks."""
    return list(_run(_RELEASE, slot.schema, slot.cap, slot.message))


def client_backoff(*, seconds: float) -> float:
    """Pause the current client's replies for `seconds` (a 429 for its key); returns the
    pause applied (bounded, so a retried task always outlives it)."""
    seconds = min(max(1.0, seconds), float(settings.CELERY_MAX_COUNTDOWN - 2))
    get_redis().set(_keys(connection.schema_name)[1], "1", px=int(seconds * 1000))
    metrics.LLM_BACKOFFS.inc()
    return seconds


def waiting_count(schema: str) -> int:
    return int(get_redis().zcard(_keys(schema)[2]))
