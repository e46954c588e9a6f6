"""A Powertools idempotency persistence layer whose records live on the job item itself.

Powertools' DynamoDB layer keeps a separate record per key, which doubles the worker's writes.
Here the job's own transitions are the record:

    Powertools call          job store transition            idempotency meaning
    _put_record (INPROGRESS) START (pending|retrying →       claim the run; a live `running`
                             running; or a running job        job is INPROGRESS until its lease
                             whose lease expired)             (the Lambda's deadline) passes
    _update_record           SUCCEED / RETRY / FAIL by the    the attempt is COMPLETED; a
                             outcome the run returned         `retrying` job may start again
    _delete_record           RETRY (release the lease)        the run blew up inside jobpipe

So a successful job costs exactly two writes in the worker, and the job id — not the SQS
message id — is the idempotency key, which catches redeliveries, producer retries and redrives.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
    IdempotencyKeyError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import (
    STATUS_CONSTANTS,
    DataRecord,
)

from jobpipe.domain.job import ErrorInfo, Job, fingerprint
from jobpipe.domain.states import JobStatus
from jobpipe.errors import (
    AttemptsExhaustedError,
    IllegalTransitionError,
    RetryNotDueError,
    StoreError,
)
from jobpipe.observability import log_transition
from jobpipe.ports import JobStore

# Without a registered Lambda context there is no deadline to lease until.
FALLBACK_LEASE_MS = 15 * 60 * 1000


class Outcome:
    """The keys of the dict a run returns (it is what Powertools stores as the response)."""

    SUCCEEDED = "succeeded"
    RETRY = "retry"
    FAILED = "failed"


class JobItemPersistenceLayer(BasePersistenceLayer):
    def __init__(self, store: JobStore, clock_ms: Callable[[], int]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._store = store
        self._now = clock_ms
        # The job each START returned, for the run that follows it in this process.
        self._started: dict[str, Job] = {}
        # The job as it stood when a START was refused (for the worker to hand its record back).
        self._refused: dict[str, Job] = {}
        # The invocation's time left, and what one more outcome write needs of it (the worker
        # sets both).
        self.time_left_ms: Callable[[], int] = lambda: 0
        self.retry_needs_ms = 0

    def started(self, job_id: str) -> Job:
        return self._started[job_id]

    def refused(self, job_id: str) -> Job | None:
        return self._refused.pop(job_id, None)

    # --- how Powertools derives the key and the payload hash ----------------------------------

    def _get_hashed_idempotency_key(self, data: dict[str, Any]) -> str | None:
        # The key is the job id itself (not a hash of it): it addresses the job item.
        compiled = self.event_key_compiled_jmespath
        value = compiled.search(data) if compiled is not None else None
        if self.is_missing_idempotency_key(data=value) or not isinstance(value, str):
            raise IdempotencyKeyError("message has no job id")
        return value

    def _generate_hash(self, data: Any) -> str:
        # The same fingerprint the submit side stores on the job as `payload_hash`.
        return fingerprint(data)

    # --- the record, read from the job ----------------------------------------------------------

    def _record_of(self, job: Job, key: str) -> DataRecord:
        now = self._now()
        if job.status is JobStatus.RUNNING:
            lease = job.lease_expires_at or 0
            if lease < now and job.attempts >= job.max_attempts:
                raise AttemptsExhaustedError(f"job {key}: its last attempt was cut off")
            return DataRecord(
                idempotency_key=key,
                status=STATUS_CONSTANTS["INPROGRESS"],
                in_progress_expiry_timestamp=lease,
                payload_hash=job.payload_hash,
            )
        if job.status.is_terminal:
            response: dict[str, Any] = {"outcome": job.status.value, "attempt": job.attempts}
            if job.status is JobStatus.FAILED:
                response["dead_lettered"] = job.dead_lettered
                response["dead_letter_sent"] = job.dead_letter_sent
                response["replays"] = job.replays
                response["failed_at"] = job.updated_at
                if job.error:
                    response["error"] = {"type": job.error.type, "message": job.error.message}
            return DataRecord(
                idempotency_key=key,
                status=STATUS_CONSTANTS["COMPLETED"],
                response_data=json.dumps(response),
                payload_hash=job.payload_hash,
            )
        if job.attempts >= job.max_attempts:
            raise AttemptsExhaustedError(f"job {key}: all {job.max_attempts} attempts are used")
        # A retrying job with attempts left that did not start: its retry is not due yet.
        raise RetryNotDueError(key, job.next_attempt_at or now)

    def _get_record(self, idempotency_key: str) -> DataRecord:
        job = self._store.get(idempotency_key)
        if job is None:
            raise IdempotencyItemNotFoundError
        return self._record_of(job, idempotency_key)

    # --- writes -----------------------------------------------------------------------------------

    def _put_record(self, data_record: DataRecord) -> None:
        key = data_record.idempotency_key
        now = self._now()
        lease = data_record.in_progress_expiry_timestamp or now + FALLBACK_LEASE_MS
        try:
            job = self._store.start(
                key, payload_hash=data_record.payload_hash, lease_expires_at=lease, now_ms=now
            )
        except IllegalTransitionError as refused:
            job = refused.job
            if job is None:
                raise  # no such job: the worker treats the message as poison
            if job.payload_hash != data_record.payload_hash:
                raise IdempotencyValidationError(
                    "message payload does not match the job's payload"
                ) from None
            self._refused[key] = job
            raise IdempotencyItemAlreadyExistsError(
                old_data_record=self._record_of(job, key)
            ) from None
        self._started[key] = job
        log_transition(job, "start")

    def _update_record(self, data_record: DataRecord) -> None:
        key = data_record.idempotency_key
        job = self._started.pop(key)
        response = json.loads(data_record.response_data)
        outcome = response["outcome"]

        def write(now: int) -> Job:
            if outcome == Outcome.SUCCEEDED:
                return self._store.succeed(job, result=response["result"], now_ms=now)
            if outcome == Outcome.RETRY:
                return self._store.retry(
                    job,
                    error=_error(response),
                    next_attempt_at=response["next_attempt_at"],
                    now_ms=now,
                )
            return self._store.fail(
                job, error=_error(response), dead_lettered=response["dead_lettered"], now_ms=now
            )

        target = {Outcome.SUCCEEDED: JobStatus.SUCCEEDED, Outcome.RETRY: JobStatus.RETRYING}
        done = self._durably(job, write, target.get(outcome, JobStatus.FAILED))
        log_transition(done, outcome)

    def _durably(self, running: Job, write: Callable[[int], Job], target: JobStatus) -> Job:
        """Record a run's outcome: the job has run, and losing the write would run it again
        once its lease ends. So a write that fails is tried again for as long as the invocation
        has time for another, and a write refused because an earlier try of it was applied
        (its answer was lost) counts as done."""
        pause = 0.1
        while True:
            try:
                return write(self._now())
            except IllegalTransitionError as refused:
                seen: Job | None = refused.job
                if seen is not None and (seen.status, seen.attempts) == (
                    target,
                    running.attempts,
                ):
                    return seen
                raise
            except StoreError:
                if self.time_left_ms() < self.retry_needs_ms + pause * 1000:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _delete_record(self, data_record: DataRecord) -> None:
        key = data_record.idempotency_key
        job = self._started.pop(key)
        now = self._now()
        released = self._store.retry(
            job,
            error=ErrorInfo("InternalError", "the worker failed while running the job"),
            next_attempt_at=now,
            now_ms=now,
        )
        log_transition(released, "release")


def _error(response: dict[str, Any]) -> ErrorInfo:
    return ErrorInfo(response["error"]["type"], response["error"]["message"])
