"""One error hierarchy for jobpipe. HTTP status codes are assigned in `jobpipe.api.errors`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class JobError(Exception):
    """Root of every error jobpipe raises on purpose."""


# --- raised by job code ----------------------------------------------------------------------


class PermanentJobError(JobError):
    """A job failed in a way that retrying cannot fix: the job fails at once."""


class TransientJobError(JobError):
    """A job failed in a way that may pass on a later attempt: the job is retried with backoff."""


class JobCancelled(JobError):  # noqa: N818  (named like Celery's Terminated/Retry signals)
    """Raised inside a job (by `context.check()` or `context.progress()`) once a cancel was asked
    for; a job that lets it propagate ends `cancelled`."""


class SoftTimeLimitExceeded(JobError):  # noqa: N818  (Celery's name for the same signal)
    """Raised inside a job when its type's `soft_timeout` has passed, before the hard `timeout`,
    so that it can clean up. Retried like any failure, unless the type lists it as permanent."""


# --- request and lookup errors ---------------------------------------------------------------


class MalformedRequestError(JobError):
    """The request body is not a JSON object."""


class UnsupportedMediaTypeError(JobError):
    """The request body is not declared as JSON."""


class RequestTooLargeError(JobError):
    """The request body is over the configured limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"request body is {size} bytes; the limit is {limit} bytes")
        self.size = size
        self.limit = limit


class ParamsTooLargeError(RequestTooLargeError):
    """The params, as they would be stored on the job item, are over the params limit."""

    def __init__(self, size: int, limit: int) -> None:
        JobError.__init__(
            self,
            f"params take {size} bytes as stored (UTF-8 JSON); the limit is {limit} bytes",
        )
        self.size = size
        self.limit = limit


class WorkflowTooLargeError(RequestTooLargeError):
    """A workflow with more steps than one workflow may have."""

    def __init__(self, steps: int, limit: int) -> None:
        JobError.__init__(
            self,
            f"the workflow has more than {limit} steps; split it into workflows of at most {limit}",
        )
        self.size = steps
        self.limit = limit


class InvalidRequestError(JobError):
    """The request is well-formed JSON but does not satisfy the contract (422)."""

    def __init__(self, message: str, fields: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.fields = list(fields)


class UnknownJobTypeError(InvalidRequestError):
    """No job type has this name. The message does not repeat the name: it reaches callers."""

    def __init__(self, job_type: str, known: Sequence[str]) -> None:
        super().__init__(
            f"unknown job type; known types: {', '.join(known) or '(none)'}",
            [{"loc": "type", "msg": "unknown job type"}],
        )
        self.job_type = job_type
        self.known = list(known)


class InvalidParamsError(InvalidRequestError):
    """The params do not satisfy the job type's model."""


class InvalidWorkflowError(InvalidRequestError):
    """A workflow's tree is malformed, or one of its steps is invalid (the error names its
    path)."""


class InvalidJobIdError(JobError):
    """A job id that is not a job id at all."""


class UnidentifiedCallerError(JobError):
    """The request names no caller a job could belong to (no IAM principal, no JWT subject)."""


class JobNotFoundError(JobError):
    """No such job (or not one the caller may see)."""


class WorkflowNotFoundError(JobNotFoundError):
    """No such workflow (or not one the caller may see)."""


class JobFinishedError(JobError):
    """The job has already succeeded or failed: it cannot be cancelled."""


class IdempotencyConflictError(JobError):
    """An Idempotency-Key was reused with a different request body."""


class ServiceUnavailableError(JobError):
    """A dependency failed; the caller may retry (with the same Idempotency-Key)."""


# --- internal --------------------------------------------------------------------------------


class ConfigurationError(JobError):
    """A setting is missing or invalid."""


class IllegalTransitionError(JobError):
    """A state transition was refused because the job is not in a state it may move from."""

    def __init__(self, job_id: str, transition: str, current: str | None, job: Any = None) -> None:
        where = f"job is {current}" if current else "job does not exist"
        super().__init__(f"{transition} refused for {job_id}: {where}")
        self.job_id = job_id
        self.transition = transition
        self.current = current
        # The job as it stood when the write was refused (a `Job`), when the store returned it.
        self.job = job


class PoisonMessageError(JobError):
    """A queue message the worker can never process: it goes to the dead-letter queue."""


class AttemptsExhaustedError(JobError):
    """A job's last attempt was cut off (its runner died): no attempts are left to start."""


class RetryNotDueError(JobError):
    """A retrying job's message arrived before its retry is due."""

    def __init__(self, job_id: str, due_ms: int) -> None:
        super().__init__(f"job {job_id}: its retry is not due yet")
        self.due_ms = due_ms


class StoreError(JobError):
    """The job store failed (throttled, unavailable)."""


class QueueError(JobError):
    """The queue failed (throttled, unavailable)."""


class SchedulerError(JobError):
    """EventBridge Scheduler failed (throttled, unavailable, or not allowed)."""


class DeadlineError(JobError):
    """A request has too little time left to start another AWS call."""


class InvalidCursorError(MalformedRequestError):
    """A listing cursor that this API did not give this caller for this listing (400)."""
