"""The ports of the core: the job store, the queue and the scheduler.

Each has a real adapter (`adapters.dynamodb`, `adapters.sqs`, `adapters.scheduler`) and an
in-memory fake (`adapters.memory`); the same contract tests run against both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from jobpipe.domain.job import Job
from jobpipe.domain.record import WORKFLOW_PREFIX
from jobpipe.domain.states import JobStatus, Transition

if TYPE_CHECKING:
    from jobpipe.domain.workflow import Workflow


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


@dataclass(frozen=True)
class FollowUp:
    """An item whose follow-up is due (the outbox index): a job that ended, or a workflow whose
    creation may be unfinished. Index reads are eventually consistent: the follow-up re-checks."""

    key: str
    due: int

    @property
    def workflow_id(self) -> str | None:
        return (
            self.key.removeprefix(WORKFLOW_PREFIX) if self.key.startswith(WORKFLOW_PREFIX) else None
        )


@dataclass(frozen=True)
class JobQuery:
    """Which jobs a listing asks for: newest first, through the listing indexes (never a Scan).

    `job_type` filters the index entries (the type is projected there); `statuses` filter the
    jobs once read, so a page may come back short. At most `examine` index entries are looked
    at per page, whatever the filters match."""

    # One owner's jobs; None: every owner's (the operator's view).
    owner: str | None
    statuses: frozenset[JobStatus] = frozenset()
    job_type: str | None = None
    # Only jobs whose ids sort below this one (where the previous page ended).
    before: str | None = None
    limit: int = 50
    examine: int = 1000


@dataclass(frozen=True)
class JobPage:
    """A page of listed jobs, newest first. Listed jobs carry neither params nor result (a
    listing does not read them): `get` a job for those."""

    jobs: list[Job]
    # Where the next page starts (its `before`); None when no job is left to look at.
    next_before: str | None
    # Index entries looked at for this page.
    examined: int


class JobStore(ABC):
    """Jobs, workflows, and the Idempotency-Keys that point at them."""

    @abstractmethod
    def create(self, job: Job) -> None:
        """Write a new job; refuses to overwrite an existing id."""

    @abstractmethod
    def create_many(self, jobs: list[Job]) -> set[str]:
        """Write new jobs whose ids nobody else can know yet (fresh ULIDs, no Idempotency-Key),
        in as few requests as the store allows, without the `create` condition. Returns the ids
        of the jobs it could not be sure it wrote (any of them may or may not exist)."""

    @abstractmethod
    def list_jobs(self, query: JobQuery) -> JobPage:
        """A page of jobs, newest first (see `JobQuery`)."""

    @abstractmethod
    def get(self, job_id: str) -> Job | None:
        """The job, or None (also when its retention has expired)."""

    @abstractmethod
    def create_missing(self, jobs: Sequence[Job]) -> None:
        """Write each of `jobs` that does not exist yet, conditionally, leaving any that exists
        as it stands (a retried request writes the same jobs again). Not atomic as a whole: a
        failure part-way leaves some written, and writing them all again finishes the work."""

    @abstractmethod
    def get_many(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """The jobs among `job_ids` that exist, by id (strongly consistent reads)."""

    # --- workflows ----------------------------------------------------------------------------

    @abstractmethod
    def create_workflow(self, workflow: Workflow) -> Workflow | None:
        """Write a new workflow; if one with its id exists, return that one (unchanged)."""

    @abstractmethod
    def get_workflow(self, workflow_id: str) -> Workflow | None:
        """The workflow, or None (also when its retention has expired)."""

    @abstractmethod
    def apply_workflow(self, transition: Transition, workflow_id: str, /, **args: Any) -> Workflow:
        """One conditional write to a workflow (a transition of `WORKFLOW_TRANSITIONS`), as
        `apply` is to a job; the answer is the workflow after the write."""

    @abstractmethod
    def followups_due(self, *, before_ms: int, limit: int) -> Iterator[FollowUp]:
        """Items whose follow-up has been due since before `before_ms`, oldest first, at most
        `limit` (a query of the outbox index, never a scan)."""

    @abstractmethod
    def delete_pending(self, job_id: str) -> bool:
        """Remove a job that never got its message (submit compensation). Only while pending or
        scheduled and never started; returns whether it removed it."""

    @abstractmethod
    def claim_key(
        self, key_id: str, job_id: str, request_hash: str, now_ms: int
    ) -> KeyClaim | None:
        """Claim an Idempotency-Key for `job_id`; if already claimed, return the earlier claim."""

    @abstractmethod
    def result_budget(self, running: Job) -> int:
        """The most bytes (stored UTF-8 JSON) the running job's result may take, so that its
        item stays under DynamoDB's limit with room for its attempt history."""

    @abstractmethod
    def apply(self, transition: Transition, job: str | Job, /, **args: Any) -> Job:
        """One conditional write: `transition` (see `jobpipe.domain.states`) applied to the job,
        with the values its declaration reads (`now` always; the store adds the retention).
        It applies only if the job exists and meets the transition's condition; otherwise it
        raises `IllegalTransitionError` naming the job's current status (None when it does not
        exist) and carrying the job as it stood.

        `job` is the job's id, or the job as the caller holds it (as an earlier transition
        returned it): then the store works out the job after the write from that copy, without
        reading it back — the transition's condition fences a stale copy, and fields another
        writer changed meanwhile (a cancel asked for) are stored but not in the answer."""

    # --- stuck jobs (the reaper) ----------------------------------------------------------------

    @abstractmethod
    def expired_leases(self, job_type: str, *, before_ms: int, limit: int) -> Iterator[StuckJob]:
        """Running jobs of `job_type` whose lease expired before `before_ms`, oldest first, at
        most `limit` (an index query, never a scan)."""

    @abstractmethod
    def pending_before(self, job_type: str, *, before_ms: int, limit: int) -> Iterator[StuckJob]:
        """Jobs of `job_type` waiting to start since before `before_ms` (pending, or retrying
        with the retry due then), oldest first, at most `limit` (an index query, never a scan)."""


class JobQueue(Protocol):
    def send(self, body: str, *, delay_seconds: int = 0) -> str:
        """Send a message to the jobs queue (hidden for up to 900 s); returns its message id."""
        ...

    def send_many(self, bodies: list[str]) -> set[int]:
        """Send messages to the jobs queue in as few requests as SQS allows, retrying every entry
        it did not take; returns the indexes (into `bodies`) of those it could not send."""
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


@dataclass(frozen=True)
class ReceivedLetter:
    """A message read from the dead-letter queue (hidden from other readers until released)."""

    message_id: str
    receipt_handle: str
    body: str
    # Its string attributes (the worker writes the job, its type and the error there; SQS moves
    # a message with none).
    attributes: dict[str, str]
    sent_at_ms: int
    receive_count: int


class DeadLetters(Protocol):
    """The dead-letter queue, as the operator tools read and replay it."""

    def receive(self, *, visibility_seconds: int, wait_seconds: int) -> list[ReceivedLetter]:
        """Up to a batch of messages, each hidden for `visibility_seconds`."""
        ...

    def release(self, receipt_handles: list[str]) -> None:
        """Make messages read earlier visible again."""
        ...

    def delete(self, receipt_handle: str) -> None: ...

    def send_back(self, body: str) -> None:
        """Send a message body to the jobs queue."""
        ...

    def active_move_task(self) -> dict[str, Any] | None:
        """SQS's message move task running on the DLQ (or about to, or being cancelled)."""
        ...

    def start_move_task(self, rate: int | None) -> str:
        """Let SQS move every message back to the jobs queue; returns the task's handle."""
        ...


@dataclass(frozen=True)
class OneTimeSchedule:
    """A delayed job's message, held until its time (`at_ms`, to the second)."""

    job_id: str
    at_ms: int
    body: str


class Scheduler(Protocol):
    """One-time schedules that send a delayed job's message to the jobs queue at its time
    (EventBridge Scheduler on AWS): for delays beyond what SQS can hold a message for."""

    def schedule_once(self, job_id: str, at_ms: int, body: str) -> None:
        """Send `body` to the jobs queue at `at_ms` (rounded up to the second), once; the
        schedule deletes itself after it fires. A second call for the same job leaves the
        first schedule as it is."""
        ...

    def cancel_once(self, job_id: str) -> bool:
        """Delete the job's schedule; False when it has none (it fired, or never was)."""
        ...

    def once(self, job_id: str) -> OneTimeSchedule | None:
        """The job's schedule, if it has one."""
        ...
