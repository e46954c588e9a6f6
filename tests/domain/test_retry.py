"""Exponential backoff with full jitter."""

import random

import pytest

from jobpipe.domain.retry import MAX_VISIBILITY_SECONDS, Backoff


def test_the_ceiling_doubles_per_attempt_up_to_the_cap() -> None:
    backoff = Backoff(base=1, cap=10)
    assert [backoff.ceiling(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_delays_are_jittered_between_zero_and_the_ceiling() -> None:
    # Given a seeded generator, when we draw many delays for attempt 3
    rng = random.Random(7)
    delays = [Backoff(base=2, cap=300).delay(3, rng) for _ in range(500)]
    # Then every delay is within [0, 8] and they spread out (full jitter, not a constant)
    assert all(0 <= d <= 8 for d in delays)
    assert max(delays) - min(delays) > 6


def test_a_huge_attempt_number_stays_at_the_cap() -> None:
    assert Backoff(base=1, cap=60).ceiling(10_000) == 60


@pytest.mark.parametrize(
    ("base", "cap"), [(0, 10), (-1, 10), (5, 1), (1, MAX_VISIBILITY_SECONDS + 1)]
)
def test_invalid_backoffs_are_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(base=base, cap=cap)
