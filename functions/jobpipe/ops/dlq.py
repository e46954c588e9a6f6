"""The dead-letter queue, for operators: list what is in it, and replay it.

Replaying a message, one at a time (`method="receive"`, the default and the only one moto has):
1. the job is reset first — `failed` → `pending` with a fresh set of attempts (REPLAY: the earlier
   attempts stay on record as `prior_attempts`, and `replays` counts) — so that the worker never
   finds the job still failed and dead-letters it again;
2. the job's message is sent to the jobs queue;
3. only then is it deleted from the DLQ.
An interruption between two steps loses nothing: the next run finds the job `pending` and sends
it again, and a duplicate message is harmless (the worker runs a job once per attempt). A job
that already succeeded is not run again: its message is only deleted. So a replay is safe to run
twice, and concurrently with the worker.

With no filter, `method="move-task"` lets SQS move the messages itself (`StartMessageMoveTask`,
at up to 500 messages/s) after resetting the jobs in the same way; it refuses to start while a
move task is RUNNING, SCHEDULED or CANCELLING.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from jobpipe.domain.expressions import apply_changes
from jobpipe.domain.job import ErrorInfo, Job, check_job_id
from jobpipe.domain.record import from_record, to_record
from jobpipe.domain.states import ABANDON_ATTEMPT, REPLAY, JobStatus
from jobpipe.errors import IllegalTransitionError, InvalidJobIdError, JobError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from jobpipe.ports import DeadLetters, JobStore, ReceivedLetter

MAX_MOVE_TASK_RATE = 500
ABANDONED = ErrorInfo("DeadLetteredError", "the message was moved to the dead-letter queue")


class DlqError(JobError):
    """A DLQ operation could not run."""


class MoveTaskActiveError(DlqError):
    """A message move task is already active on the DLQ (SQS allows one per queue)."""

    def __init__(self, status: str, handle: str) -> None:
        super().__init__(f"a message move task is already {status} on the DLQ ({handle})")
        self.status = status
        self.handle = handle


class Action(StrEnum):
    REPLAYED = "replayed"  # failed job reset to pending, message back on the jobs queue
    REQUEUED = "requeued"  # job was not terminal (e.g. moved by SQS): message sent back as is
    ALREADY_SUCCEEDED = "already_succeeded"  # nothing to run: the message is only deleted
    BUSY = "busy"  # the job is running right now: left in the DLQ
    STALE = "stale"  # a copy from before the job's latest replay: only deleted
    UNREPLAYABLE = "unreplayable"  # no job behind the message (poison): left in the DLQ


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ message, with what the worker wrote on it (absent when SQS moved it itself)."""

    message_id: str
    receipt_handle: str
    body: str
    job_id: str | None
    job_type: str | None
    error_type: str | None
    error_message: str | None
    attempts: int | None
    sent_at_ms: int
    receive_count: int
    # Which dead-lettering of the job this copy is (its replay count then); None when SQS moved
    # the message itself.
    replays: int | None = None

    @classmethod
    def from_received(cls, letter: ReceivedLetter) -> DeadLetter:
        attributes: dict[str, str | None] = dict(letter.attributes)
        job_id, job_type = _identity_from_body(letter.body)
        job_id = _attribute(attributes, "job_id") or job_id
        try:
            job_id = check_job_id(job_id) if job_id else None
        except InvalidJobIdError:
            job_id = None
        attempts = _attribute(attributes, "attempts")
        replays = _attribute(attributes, "replays")
        return cls(
            message_id=letter.message_id,
            receipt_handle=letter.receipt_handle,
            body=letter.body,
            job_id=job_id,
            job_type=_attribute(attributes, "job_type") or job_type,
            error_type=_attribute(attributes, "error_type")
            or (None if attributes else "MaxReceiveCountExceeded"),
            error_message=_attribute(attributes, "error_message"),
            attempts=int(attempts) if attempts and attempts.isdigit() else None,
            sent_at_ms=letter.sent_at_ms,
            receive_count=letter.receive_count,
            replays=int(replays) if replays and replays.isdigit() else None,
        )

    def age_seconds(self, now: float) -> float:
        return max(0.0, now - self.sent_at_ms / 1000) if self.sent_at_ms else 0.0

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "job_id": self.job_id,
            "job_type": self.job_type,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "attempts": self.attempts,
            "age_seconds": round(self.age_seconds(now), 1),
        }


def _attribute(attributes: dict[str, str | None], name: str) -> str | None:
    value = attributes.get(name)
    # The worker writes "-" for an empty attribute (SQS refuses empty strings).
    return None if value in (None, "", "-") else value


def _identity_from_body(body: str) -> tuple[str | None, str | None]:
    try:
        data = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    job_id, job_type = data.get("job_id"), data.get("type")
    return (
        job_id if isinstance(job_id, str) else None,
        job_type if isinstance(job_type, str) else None,
    )


@dataclass(frozen=True)
class ReplayFilter:
    """Which DLQ messages to act on; an empty filter matches all."""

    job_types: frozenset[str] = frozenset()
    error_types: frozenset[str] = frozenset()
    job_ids: frozenset[str] = frozenset()
    min_age_seconds: float | None = None
    max_age_seconds: float | None = None

    @property
    def is_empty(self) -> bool:
        return not (
            self.job_types
            or self.error_types
            or self.job_ids
            or self.min_age_seconds is not None
            or self.max_age_seconds is not None
        )

    def matches(self, letter: DeadLetter, now: float) -> bool:
        age = letter.age_seconds(now)
        return (
            (not self.job_types or letter.job_type in self.job_types)
            and (not self.error_types or letter.error_type in self.error_types)
            and (not self.job_ids or letter.job_id in self.job_ids)
            and (self.min_age_seconds is None or age >= self.min_age_seconds)
            and (self.max_age_seconds is None or age <= self.max_age_seconds)
        )


@dataclass(frozen=True)
class Outcome:
    message_id: str
    job_id: str | None
    job_type: str | None
    action: Action
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "job_id": self.job_id,
            "job_type": self.job_type,
            "action": self.action.value,
            "detail": self.detail,
        }


@dataclass
class ReplayReport:
    dry_run: bool
    method: str
    outcomes: list[Outcome] = field(default_factory=list)
    task_handle: str | None = None

    def counts(self) -> dict[str, int]:
        counts = {action.value: 0 for action in Action}
        for outcome in self.outcomes:
            counts[outcome.action.value] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "method": self.method,
            "counts": self.counts(),
            "task_handle": self.task_handle,
            "messages": [outcome.to_dict() for outcome in self.outcomes],
        }


class DeadLetterQueue:
    """The DLQ of one stack, with the jobs queue and the job store it replays into."""

    def __init__(
        self,
        letters: DeadLetters,
        store: JobStore,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        wait_seconds: int = 1,
        visibility_seconds: int = 120,
    ) -> None:
        self._letters = letters
        self._store = store
        self._clock = clock
        self._sleep = sleep
        # Long polls make SQS answer from all its servers: the first empty answer means empty.
        self._wait = wait_seconds
        # How long a message being looked at stays hidden from another replay (or list).
        self._visibility = visibility_seconds

    # --- list ------------------------------------------------------------------------------------

    def list_messages(
        self,
        where: ReplayFilter | None = None,
        limit: int | None = None,
        *,
        look_at: int | None = None,
    ) -> list[DeadLetter]:
        """The messages in the DLQ, oldest first (of the first `look_at` received, when given).
        Reading hides them briefly; they are made visible again before this returns."""
        where = where or ReplayFilter()
        now = self._clock()
        received: list[DeadLetter] = []
        try:
            for _letter in self._receive_all(received):
                if look_at is not None and len(received) >= look_at:
                    break
        finally:
            self._release(received)
        letters = [letter for letter in received if where.matches(letter, now)]
        letters.sort(key=lambda letter: (letter.sent_at_ms, letter.message_id))
        return letters[:limit] if limit is not None else letters

    # --- replay ----------------------------------------------------------------------------------

    def replay(
        self,
        where: ReplayFilter | None = None,
        *,
        limit: int | None = None,
        rate: float | None = None,
        dry_run: bool = False,
        look_at: int | None = None,
    ) -> ReplayReport:
        """Replay the matching messages one by one (receive, reset the job, send, delete), of
        the first `look_at` received when given."""
        where = where or ReplayFilter()
        report = ReplayReport(dry_run=dry_run, method="receive")
        now = self._clock()
        received: list[DeadLetter] = []
        removed: set[str] = set()
        started = time.monotonic()
        try:
            for letter in self._receive_all(received):
                if limit is not None and len(report.outcomes) >= limit:
                    break
                if look_at is not None and len(received) > look_at:
                    break
                if not where.matches(letter, now):
                    continue
                if rate:
                    self._pace(started, len(report.outcomes), rate)
                outcome, gone = self._replay_one(letter, dry_run)
                report.outcomes.append(outcome)
                if gone:
                    removed.add(letter.message_id)
        finally:
            self._release([letter for letter in received if letter.message_id not in removed])
        return report

    @classmethod
    def on_sqs(
        cls, sqs: SQSClient, store: JobStore, *, dlq_url: str, queue_url: str, **options: Any
    ) -> DeadLetterQueue:
        """The DLQ of a stack on SQS (the CLI's, and the tests')."""
        from jobpipe.adapters.sqs import SQSDeadLetters

        return cls(SQSDeadLetters(dlq_url, queue_url, sqs), store, **options)

    def replay_with_move_task(
        self, *, rate: float | None = None, dry_run: bool = False
    ) -> ReplayReport:
        """Reset every dead-lettered job, then let SQS move all the DLQ's messages back."""
        active = self.active_move_task()
        if active is not None:
            raise MoveTaskActiveError(active["Status"], active.get("TaskHandle", "?"))
        report = ReplayReport(dry_run=dry_run, method="move-task")
        received: list[DeadLetter] = []
        try:
            for letter in self._receive_all(received):
                report.outcomes.append(self._reset_for_move(letter, dry_run))
        finally:
            self._release(received)
        if dry_run or not received:
            return report
        limit = max(1, min(MAX_MOVE_TASK_RATE, int(rate))) if rate else None
        report.task_handle = self._letters.start_move_task(limit)
        return report

    def active_move_task(self) -> dict[str, Any] | None:
        """The move task running (or about to, or being cancelled) on the DLQ, if any."""
        task: dict[str, Any] | None = self._letters.active_move_task()
        return task

    # --- one message -----------------------------------------------------------------------------

    def _replay_one(self, letter: DeadLetter, dry_run: bool) -> tuple[Outcome, bool]:
        """What became of the message, and whether it left the DLQ."""
        job = self._store.get(letter.job_id) if letter.job_id else None
        if job is None:
            detail = "no job id in the message" if not letter.job_id else "no such job"
            return self._outcome(letter, Action.UNREPLAYABLE, detail), False
        if job.status is JobStatus.SUCCEEDED:
            if not dry_run:
                self._delete(letter)
            detail = _SUCCEEDED_PLAN if dry_run else "deleted"
            return self._outcome(letter, Action.ALREADY_SUCCEEDED, detail), not dry_run
        if letter.replays is not None and letter.replays < job.replays:
            # The job was replayed since this copy was made: another copy (or the replay) is
            # its current one. Replaying this too would reset the job's newer state.
            if not dry_run:
                self._delete(letter)
            verb = "would delete" if dry_run else "deleted"
            detail = f"copy from before replay {job.replays}; {verb}"
            return self._outcome(letter, Action.STALE, detail), not dry_run
        if self._is_busy(job):
            return self._outcome(letter, Action.BUSY, "the job is running"), False
        action = Action.REPLAYED if self._needs_reset(job) else Action.REQUEUED
        if dry_run:
            return self._outcome(letter, action, _plan(job, self._now_ms())), False
        job = self._reset(job)
        if self._is_busy(job):
            # A worker started the job while this replay looked at it: its attempt goes on.
            return self._outcome(letter, Action.BUSY, "the job started meanwhile"), False
        # Send before delete: interrupted here, the message is in both queues, which is harmless.
        self._letters.send_back(job.message().to_body())
        self._delete(letter)
        return self._outcome(letter, action, _describe(job)), True

    def _reset_for_move(self, letter: DeadLetter, dry_run: bool) -> Outcome:
        job = self._store.get(letter.job_id) if letter.job_id else None
        if job is None:
            return self._outcome(letter, Action.UNREPLAYABLE, "moved; the worker dead-letters it")
        if job.status is JobStatus.SUCCEEDED:
            return self._outcome(letter, Action.ALREADY_SUCCEEDED, "moved; the worker drops it")
        if self._is_busy(job):
            return self._outcome(letter, Action.BUSY, "the job is running")
        action = Action.REPLAYED if self._needs_reset(job) else Action.REQUEUED
        if not dry_run:
            job = self._reset(job)
        detail = _plan(job, self._now_ms()) if dry_run else _describe(job)
        return self._outcome(letter, action, detail)

    def _is_busy(self, job: Job) -> bool:
        return (
            job.status is JobStatus.RUNNING
            and job.lease_expires_at is not None
            and job.lease_expires_at > self._now_ms()
        )

    @staticmethod
    def _needs_reset(job: Job) -> bool:
        # A running job here has an expired lease: its runner died (SQS moved the message).
        return job.status in (JobStatus.FAILED, JobStatus.RUNNING)

    def _reset(self, job: Job) -> Job:
        """Make the job startable again with a fresh set of attempts (no-op when it is)."""
        if job.status is JobStatus.RUNNING:
            try:
                # Only the attempt whose runner died (the lease this replay saw): a worker that
                # started the job since holds a new lease, and its attempt is left alone.
                job = self._store.apply(
                    ABANDON_ATTEMPT,
                    job.job_id,
                    error={"type": ABANDONED.type, "message": ABANDONED.message},
                    dead_letter_sent=True,
                    lease=job.lease_expires_at or 0,
                    now=self._now_ms(),
                )
            except IllegalTransitionError as refused:
                job = refused.job or job
        if job.status is JobStatus.FAILED:
            try:
                job = self._store.apply(REPLAY, job.job_id, now=self._now_ms())
            except IllegalTransitionError as refused:
                # Another replay got there first: the job is pending already.
                job = refused.job or job
        return job

    # --- SQS ------------------------------------------------------------------------------------

    def _receive_all(self, received: list[DeadLetter]) -> Iterator[DeadLetter]:
        """Every message in the DLQ once, each hidden while the caller works on it. Every
        message received is also added to `received`, yielded or not, for `_release`."""
        seen: set[str] = set()
        while True:
            batch = self._letters.receive(
                visibility_seconds=self._visibility, wait_seconds=self._wait
            )
            fresh = [m for m in batch if m.message_id not in seen]
            if not fresh:
                return
            letters = [DeadLetter.from_received(message) for message in fresh]
            seen.update(letter.message_id for letter in letters)
            received.extend(letters)
            yield from letters

    def _release(self, letters: list[DeadLetter]) -> None:
        """Make messages this run looked at but left in the DLQ visible again."""
        self._letters.release([letter.receipt_handle for letter in letters])

    def _delete(self, letter: DeadLetter) -> None:
        self._letters.delete(letter.receipt_handle)

    def _pace(self, started: float, done: int, rate: float) -> None:
        wait = started + done / rate - time.monotonic()
        if wait > 0:
            self._sleep(wait)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    @staticmethod
    def _outcome(letter: DeadLetter, action: Action, detail: str) -> Outcome:
        return Outcome(letter.message_id, letter.job_id, letter.job_type, action, detail)


def _describe(job: Job) -> str:
    return f"job is {job.status.value}; replays={job.replays}, prior attempts={job.prior_attempts}"


_SUCCEEDED_PLAN = "would delete the message: the job already succeeded"


def _plan(job: Job, now_ms: int) -> str:
    """A dry run's detail: the state a replay would leave the job in, not the one it is in."""
    if job.status in (JobStatus.FAILED, JobStatus.RUNNING):
        # What REPLAY would write, worked out from its declaration (nothing is written).
        args = {"now": now_ms, "expires_at": job.expires_at}
        after = from_record(apply_changes(REPLAY.writes, to_record(job), args))
        return (
            f"would reset {job.status.value} \N{RIGHTWARDS ARROW} {after.status.value} with fresh "
            f"attempts (0 of {after.max_attempts}); replays={after.replays}, "
            f"prior attempts={after.prior_attempts}"
        )
    return f"would send its message back as is: the job stays {job.status.value}"
