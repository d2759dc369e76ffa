"""The one backoff formula: doubles, stays under its cap, spreads by jitter."""

from __future__ import annotations

from wafaa.backoff import backoff_delay


def test_backoff_doubles_and_never_exceeds_the_cap():
    assert [backoff_delay(n, base=1.0, jitter=0) for n in range(5)] == [1, 2, 4, 8, 16]
    assert backoff_delay(50, base=2.0, cap=45.0, jitter=0) == 45.0
    delays = [backoff_delay(10, base=1.0, cap=30.0) for _ in range(200)]
    assert all(15.0 <= d <= 30.0 for d in delays)
    assert len({round(d, 3) for d in delays}) > 50  # spread, not one herd


def test_a_huge_attempt_number_does_not_overflow():
    assert backoff_delay(10**6, base=1.0, cap=60.0, jitter=0) == 60.0
