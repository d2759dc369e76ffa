"""The one backoff formula of the code base: exponential, capped, with jitter.

Every retry schedule (Celery task retries, the send path, ingestion, the process supervisor
of `make run`) takes its delays from `backoff_delay`, so they agree on what "back off" means.
Pure Python, no Django: scripts use it too.
"""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int, *, base: float = 1.0, cap: float | None = None, jitter: float = 0.5
) -> float:
    """Seconds to wait before attempt `attempt + 1` (`attempt` counts from 0).

    `base * 2**attempt`, capped at `cap`, then multiplied by a random factor in
    [1 - jitter, 1]: waiting clients spread out instead of coming back as one herd, and the
    cap still holds (the factor never exceeds 1).
    """
    delay = base * 2 ** min(max(attempt, 0), 32)
    if cap is not None:
        delay = min(delay, cap)
    return delay * random.uniform(1.0 - jitter, 1.0) if jitter else delay
