"""The job record and the queue message that carries it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from jobpipe.domain.states import JobStatus
from jobpipe.errors import InvalidJobIdError, PoisonMessageError

JOB_ID_LENGTH = 26
# SQS delays a message by at most 15 minutes: a job due later waits on a one-time schedule.
MAX_QUEUE_DELAY_SECONDS = 900
# How far ahead a job may be delayed: a year.
MAX_AHEAD_SECONDS = 365 * 86400
MAX_IDEMPOTENCY_KEY_CHARS = 255
_CROCKFORD = frozenset("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
# The ids `check_job_id` accepts, as a regular expression (the OpenAPI document's pattern).
JOB_ID_PATTERN = "^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$"


def new_job_id() -> str:
    """A ULID: 26 characters, sorts by creation time (millisecond precision)."""
    from ulid import ULID

    return str(ULID())


def check_job_id(value: str) -> str:
    """Return `value` (upper-cased) if it is a well-formed ULID, else raise InvalidJobIdError."""
    candidate = value.upper()
    if (
        len(candidate) != JOB_ID_LENGTH
        or not _CROCKFORD.issuperset(candidate)
        # The first character carries the top bits of a 48-bit timestamp: at most 7.
        or candidate[0] > "7"
    ):
        raise InvalidJobIdError("a job id is a 26-character ULID")
    return candidate


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stored_json(value: Any) -> str:
    """How params and results are stored on the job item: compact JSON, non-ASCII text as itself
    (escaping it would store `é` as six bytes instead of two)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def stored_size(value: Any) -> int:
    """The bytes `value` takes on the job item (DynamoDB counts UTF-8). Raises ValueError for
    text that has no UTF-8 form (a lone surrogate) or a value that is not JSON."""
    try:
        return len(stored_json(value).encode("utf-8"))
    except (TypeError, UnicodeEncodeError) as error:
        raise ValueError(str(error)) from None


def fingerprint(value: Any) -> str:
    """A stable hash of a JSON-able value (key order does not matter)."""
    # surrogatepass: a hash needs bytes, not valid UTF-8 (a refused request is hashed too).
    return hashlib.sha256(canonical_json(value).encode("utf-8", "surrogatepass")).hexdigest()


def payload_of(job_type: str, params: dict[str, Any]) -> list[Any]:
    """What a job's payload hash covers. The worker refuses a message whose payload differs
    from the one the job was submitted with."""
    return [job_type, params]


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str


@dataclass(frozen=True)
class AttemptError:
    """A failure the job met: on which attempt, what, and when (epoch ms)."""

    attempt: int
    type: str
    message: str
    at: int


# The attempt history keeps this many of the latest failures.
MAX_ERRORS_KEPT = 10


@dataclass(frozen=True)
class Progress:
    """What a running job last reported of its progress, and when (epoch ms)."""

    current: float
    total: float | None = None
    message: str | None = None
    at: int = 0


@dataclass(frozen=True)
class Waiter:
    """What waits for a job's end: a later step of its workflow, or (`job_id` None) the
    workflow itself, whose result it is part of."""

    job_id: str | None
    # The job's place among everything the waiter waits for (its input, in order).
    position: int
    # The waiter runs whatever the job's outcome (it receives outcomes, not results).
    takes_outcomes: bool
    # How many jobs the waiter waits for: one is released at once, more are counted.
    wait_count: int


@dataclass(frozen=True)
class Cause:
    """The member whose failure (or cancel) ended a workflow, or a step that never ran."""

    type: str
    message: str
    job_id: str
    path: str

    def as_dict(self) -> dict[str, str]:
        return {
            "type": self.type,
            "message": self.message,
            "job_id": self.job_id,
            "path": self.path,
        }


@dataclass(frozen=True)
class Step:
    """A job's place in its workflow."""

    workflow_id: str
    # Where it sits in the workflow's tree, e.g. `chord.header[3]`.
    path: str
    # What it receives from its predecessors, by reference: None (it starts the workflow), a job
    # id, or a list of them (nested as the tree nests).
    inputs: Any = None
    takes_outcomes: bool = False
    waiters: tuple[Waiter, ...] = ()


@dataclass(frozen=True)
class Job:
    """A job as stored. Times are epoch milliseconds."""

    job_id: str
    type: str
    params: dict[str, Any]
    owner: str
    status: JobStatus
    created_at: int
    updated_at: int
    expires_at: int  # epoch seconds: retention (DynamoDB TTL)
    max_attempts: int
    attempts: int = 0
    payload_hash: str = ""
    started_at: int | None = None
    completed_at: int | None = None
    next_attempt_at: int | None = None
    lease_expires_at: int | None = None
    result: Any = None
    # The failures of the job's attempts, oldest first (the latest MAX_ERRORS_KEPT).
    errors: tuple[AttemptError, ...] = ()
    # Why the job could never run, when no attempt's error says it (poison, attempts cut off).
    failure: ErrorInfo | None = None
    dead_lettered: bool = False
    # Whether the DLQ holds this job's message for its current dead-lettering: a redelivery of a
    # dead-lettered job sends a copy only when it does not (one DLQ entry per dead-lettering).
    dead_letter_sent: bool = False
    replays: int = 0
    prior_attempts: int = 0
    cancel_requested: bool = False
    progress: Progress | None = None
    # Its workflow, for a workflow's member.
    step: Step | None = None
    # The positions of the predecessors counted so far (a waiting step).
    arrived: frozenset[int] = frozenset()
    # Why a step ended without running: the member that failed first.
    cause: Cause | None = None
    # When it ended, while what follows its end is still to do.
    outbox_due: int | None = None

    @property
    def workflow_id(self) -> str | None:
        return self.step.workflow_id if self.step is not None else None

    # When a delayed job was due to run (epoch ms); None for a job that ran as soon as it could.
    run_at: int | None = None
    # The recurring schedule whose firing created the job.
    schedule: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def waits_on_schedule(self) -> bool:
        """Whether its message is held by a one-time schedule (due beyond what SQS can delay a
        message by, from when it was submitted) rather than delayed on the queue."""
        return (
            self.run_at is not None
            and self.run_at - self.created_at > MAX_QUEUE_DELAY_SECONDS * 1000
        )

    @property
    def error(self) -> ErrorInfo | None:
        """Why the job failed, or, while it waits to be retried, its last attempt's error (the
        history of every failed attempt is `errors`)."""
        if self.status not in (JobStatus.FAILED, JobStatus.RETRYING):
            return None
        if self.failure is not None:
            return self.failure
        if not self.errors:
            return None
        last = self.errors[-1]
        return ErrorInfo(last.type, last.message)

    def errors_with(self, error: ErrorInfo, now_ms: int) -> tuple[AttemptError, ...]:
        """The history with `error` of the current attempt added (the latest kept)."""
        entry = AttemptError(self.attempts, error.type, error.message, now_ms)
        return (*self.errors, entry)[-MAX_ERRORS_KEPT:]

    def message(self) -> JobMessage:
        return JobMessage(job_id=self.job_id, type=self.type, params=self.params)


@dataclass(frozen=True)
class JobMessage:
    """The body of a jobs-queue message. The job id is the identity; type and params travel
    along so the DLQ can be inspected and filtered without reading the table.

    A message a one-time schedule sends also carries the time the schedule fired for
    (`scheduled_time`, which EventBridge Scheduler fills in): the job's time has come by then,
    whatever the clock of the worker that receives it says."""

    job_id: str
    type: str
    params: dict[str, Any]
    fired_at_ms: int | None = None

    def to_body(self) -> str:
        return canonical_json({"job_id": self.job_id, "type": self.type, "params": self.params})

    def as_payload(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "type": self.type, "params": self.params}

    @classmethod
    def from_body(cls, body: str) -> JobMessage:
        try:
            data = json.loads(body)
        except (TypeError, ValueError):
            raise PoisonMessageError("message body is not JSON") from None
        if not isinstance(data, dict):
            raise PoisonMessageError("message body is not a JSON object")
        job_id, job_type, params = data.get("job_id"), data.get("type"), data.get("params", {})
        if not isinstance(job_id, str) or not job_id:
            raise PoisonMessageError("message has no job_id")
        try:
            job_id = check_job_id(job_id)
        except InvalidJobIdError:
            raise PoisonMessageError("message job_id is not a job id") from None
        if not isinstance(job_type, str) or not job_type:
            raise PoisonMessageError("message has no job type")
        if not isinstance(params, dict):
            raise PoisonMessageError("message params is not an object")
        return cls(
            job_id=job_id,
            type=job_type,
            params=params,
            fired_at_ms=epoch_ms(data.get("scheduled_time")),
        )


SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"


def scheduled_body(message: JobMessage) -> str:
    """The body a one-time schedule sends: the job's message and, filled in by EventBridge
    Scheduler when it fires, the time it fired for."""
    return canonical_json({**message.as_payload(), "scheduled_time": SCHEDULED_TIME})


def epoch_ms(value: Any) -> int | None:
    """An RFC 3339 time (`2026-03-22T18:59:43Z`) as epoch ms; None for anything else."""
    from datetime import datetime

    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return int(parsed.timestamp() * 1000)
