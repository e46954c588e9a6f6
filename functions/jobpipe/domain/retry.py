"""Retry policy: exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

# SQS ChangeMessageVisibility refuses more than 12 hours.
MAX_VISIBILITY_SECONDS = 12 * 3600
# SQS shows a hidden message again on its own clock: a retry whose message arrives at most this
# much before the retry is due is started anyway; earlier, it is handed back until it is due.
EARLY_START_TOLERANCE_MS = 2000


@dataclass(frozen=True)
class Backoff:
    """Delay before attempt n+1 is uniform in [0, min(cap, base * 2**(n-1))] ("full jitter")."""

    base: float = 2.0
    cap: float = 300.0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap <= 0:
            raise ValueError("backoff base and cap must be positive")
        if self.cap < self.base:
            raise ValueError("backoff cap must be at least its base")
        if self.cap > MAX_VISIBILITY_SECONDS:
            raise ValueError(f"backoff cap must be at most {MAX_VISIBILITY_SECONDS} s (12 h)")

    def ceiling(self, attempt: int) -> float:
        """The largest delay after failed attempt number `attempt` (1-based)."""
        exponent = min(max(attempt - 1, 0), 62)
        return float(min(self.cap, self.base * (2**exponent)))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        return (rng or _rng).uniform(0.0, self.ceiling(attempt))


_rng = random.SystemRandom()
