"""The two ports of the core: the job store and the queue.

Each has a real adapter (`adapters.dynamodb`, `adapters.sqs`) and an in-memory fake
(`adapters.memory`); the same contract tests run against both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from jobpipe.domain.job import ErrorInfo, Job
from jobpipe.domain.states import JobStatus


@dataclass(frozen=True)
class KeyClaim:
    """An Idempotency-Key already claimed by an earlier request."""

    job_id: str
    request_hash: str


@dataclass(frozen=True)
class StuckJob:
    """A job the reaper's index query found: `running` with a lease that expired at `since`, or
    waiting to start since `since` (epoch ms) — `pending`, or `retrying` with its retry due then;
    both come as PENDING from the index. Index reads are eventually consistent: `claim`
    re-checks."""

    job_id: str
    status: JobStatus
    since: int
    attempts: int = 0
    max_attempts: int = 0

    @property
    def attempts_left(self) -> bool:
        return self.status is JobStatus.PENDING or self.attempts < self.max_attempts


class JobStore(ABC):
    """Jobs, and the Idempotency-Keys that point at them.

    Every transition is one conditional write: it applies only if the job exists and is in one of
    the transition's source statuses (plus the guard named per method), and otherwise raises
    `IllegalTransitionError` naming the job's current status (None when it does not exist).
    """

    @abstractmethod
    def create(self, job: Job) -> None:
        """Write a new `pending` job; refuses to overwrite an existing id."""

    @abstractmethod
    def get(self, job_id: str) -> Job | None:
        """The job, or None (also when its retention has expired)."""

    @abstractmethod
    def delete_pending(self, job_id: str) -> bool:
        """Remove a job that never got its message (submit compensation). Only while pending
        and never started; returns whether it removed it."""

    @abstractmethod
    def claim_key(
        self, key_id: str, job_id: str, request_hash: str, now_ms: int
    ) -> KeyClaim | None:
        """Claim an Idempotency-Key for `job_id`; if already claimed, return the earlier claim."""

    @abstractmethod
    def result_budget(self, running: Job) -> int:
        """The most bytes (stored UTF-8 JSON) the running job's result may take, so that its
        item stays under DynamoDB's limit with room for its attempt history."""

    # --- transitions (see jobpipe.domain.states) ---------------------------------------------

    @abstractmethod
    def start(self, job_id: str, *, payload_hash: str, lease_expires_at: int, now_ms: int) -> Job:
        """START: pending/retrying with attempts < max_attempts and the same payload hash, or
        running with an expired lease (its runner died). Counts the attempt."""

    # The transitions out of `running` take the running job as its START returned it: the
    # write is guarded by that attempt number, and the job after it is known without a read.

    @abstractmethod
    def succeed(self, running: Job, *, result: Any, now_ms: int) -> Job:
        """SUCCEED: running, guarded by the attempt number that started it."""

    @abstractmethod
    def retry(self, running: Job, *, error: ErrorInfo, next_attempt_at: int, now_ms: int) -> Job:
        """RETRY: running → retrying, guarded by the attempt number."""

    @abstractmethod
    def fail(self, running: Job, *, error: ErrorInfo, dead_lettered: bool, now_ms: int) -> Job:
        """FAIL: running → failed, guarded by the attempt number."""

    @abstractmethod
    def abandon(
        self,
        job_id: str,
        *,
        error: ErrorInfo,
        now_ms: int,
        lease_expires_at: int | None = None,
        dead_letter_sent: bool = False,
    ) -> Job:
        """ABANDON: any non-terminal → failed and dead-lettered (the job can never run). With
        `lease_expires_at`, only the running attempt holding that very lease. With
        `dead_letter_sent`, the DLQ already holds its message (SQS moved it there)."""

    @abstractmethod
    def mark_dead_letter_sent(self, job_id: str, *, replays: int) -> None:
        """Record that the DLQ holds the message of this dead-lettering of the job (the one of
        its `replays`-th replay). Does nothing if the job moved on since."""

    @abstractmethod
    def replay(self, job_id: str, *, now_ms: int) -> Job:
        """REPLAY: failed → pending with a fresh set of attempts; counts the replay."""

    # --- stuck jobs (the reaper) ----------------------------------------------------------------

    @abstractmethod
    def expired_leases(self, job_type: str, *, before_ms: int, limit: int) -> Iterator[StuckJob]:
        """Running jobs of `job_type` whose lease expired before `before_ms`, oldest first, at
        most `limit` (an index query, never a scan)."""

    @abstractmethod
    def pending_before(self, job_type: str, *, before_ms: int, limit: int) -> Iterator[StuckJob]:
        """Jobs of `job_type` waiting to start since before `before_ms` (pending, or retrying
        with the retry due then), oldest first, at most `limit` (an index query, never a scan)."""

    @abstractmethod
    def claim_stuck(self, stuck: StuckJob, *, now_ms: int) -> Job:
        """Claim a stuck job for re-enqueueing: one conditional write that moves its marker (the
        expired lease, or `pending_since`) to `now_ms`, only if it is still as `stuck` saw it
        (and, if running, has attempts left). So two reapers never both claim it, and the job
        leaves the reaper's view until the grace period passes again; a worker can still start
        it. Raises IllegalTransitionError when the job has moved on."""


class JobQueue(Protocol):
    def send(self, body: str, *, delay_seconds: int = 0) -> str:
        """Send a message to the jobs queue (hidden for up to 900 s); returns its message id."""
        ...

    def send_to_dlq(self, body: str, attributes: dict[str, str]) -> str:
        """Send a message to the dead-letter queue with string attributes."""
        ...

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        """Hide (or show, with 0) a received jobs-queue message."""
        ...

    def oldest_message_age_seconds(self) -> float | None:
        """How long the oldest message in the jobs queue has waited (0 when it holds none; None
        when the queue cannot say). Costs no write."""
        ...
