"""What a job function learns and does while it runs: its second parameter.

@job_type("import")
def import_rows(params: ImportParams, context: JobContext) -> dict:
    for done, row in enumerate(rows, 1):
        context.check()                          # stop here if a cancel was asked for
        upsert(row, key=context.idempotency_key)  # stable across this job's attempts
        context.progress(done, len(rows), "importing")
    ...
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

from jobpipe.domain.job import Progress
from jobpipe.errors import InvalidRequestError, JobCancelled

# Progress is written at most this often; the latest value is always kept (the write that ends
# the attempt carries one not yet written), and a cancel is looked for no more often.
PROGRESS_INTERVAL_SECONDS = 1.0
MAX_PROGRESS_MESSAGE_CHARS = 200


class Lifeline(Protocol):
    """How a running job's context reaches its stored record (the worker provides it)."""

    def report(self, progress: Progress) -> bool:
        """Store the job's progress; returns whether a cancel was asked for (nothing stored)."""
        ...

    def cancel_asked(self) -> bool:
        """Whether a cancel was asked for since the attempt started."""
        ...


class JobContext:
    """The running attempt: `job_id`, `attempt` (1-based), `max_attempts`, and
    `idempotency_key` — the same for every attempt of this run of the job, and a new one after
    the job is replayed from the DLQ — for the external services a job calls."""

    def __init__(
        self,
        job_id: str,
        attempt: int,
        max_attempts: int,
        *,
        idempotency_key: str | None = None,
        lifeline: Lifeline | None = None,
        clock: Callable[[], float] = time.monotonic,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.idempotency_key = idempotency_key or job_id
        self._lifeline = lifeline
        self._clock = clock
        self._now_ms = now_ms
        self._last_contact = -math.inf
        self._cancel_asked = False
        self._unsent: Progress | None = None

    def progress(
        self, current: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Report progress (e.g. `progress(40, 100, "resizing")`). Stored at most about once a
        second; the last value is always kept. Raises `JobCancelled` once a cancel was asked
        for, so a loop that reports progress stops there."""
        for name, number in (("current", current), ("total", total)):
            if number is not None and not math.isfinite(number):
                raise InvalidRequestError(f"progress {name} must be a finite number")
        if message is not None:
            message = message[:MAX_PROGRESS_MESSAGE_CHARS]
        self._unsent = Progress(current, total, message, self._now_ms())
        if self._lifeline is None or not self._due():
            if self._cancel_asked:
                raise JobCancelled(f"job {self.job_id} was asked to cancel")
            return
        sent, self._unsent = self._unsent, None
        if self._lifeline.report(sent):
            self._cancel_asked = True
            self._unsent = sent
        self.check()

    @property
    def cancel_requested(self) -> bool:
        """Whether a cancel was asked for (looked up at most about once a second)."""
        if not self._cancel_asked and self._lifeline is not None and self._due():
            self._cancel_asked = self._lifeline.cancel_asked()
        return self._cancel_asked

    def check(self) -> None:
        """Raise `JobCancelled` if a cancel was asked for."""
        if self.cancel_requested:
            raise JobCancelled(f"job {self.job_id} was asked to cancel")

    def unsent_progress(self) -> Progress | None:
        """The latest progress not stored yet (the worker's outcome write stores it)."""
        return self._unsent

    def _due(self) -> bool:
        now = self._clock()
        if now - self._last_contact < PROGRESS_INTERVAL_SECONDS:
            return False
        self._last_contact = now
        return True
