"""Celery beat's scheduler with a heartbeat: beat proves it is alive to its health check.

Beat runs no task itself, so nothing else shows that it still ticks; a hung beat means no
sweeps, no samples and no expiry. On every tick (at least every 15 s: the queue-depth sample)
it writes the time to a Redis key, read by `python -m wafaa.healthcheck beat`.
"""

from __future__ import annotations

import logging
import time

from celery.beat import PersistentScheduler

from wafaa import heartbeat

logger = logging.getLogger("wafaa.beat")


class HeartbeatScheduler(PersistentScheduler):
    _last_beat = 0.0

    def tick(self, *args, **kwargs):
        now = time.time()
        if now - self._last_beat >= heartbeat.BEAT_EVERY_SECONDS:
            try:
                from wafaa.redis import get_redis

                heartbeat.beat_scheduler(get_redis(), now)
                self._last_beat = now
            except Exception:  # Redis down: beat keeps its schedule; the check will say so
                logger.warning("could not write beat's heartbeat")
        return super().tick(*args, **kwargs)
