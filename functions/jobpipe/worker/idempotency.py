"""A Powertools idempotency persistence layer whose record is the job item itself.

Powertools' DynamoDB layer keeps a separate record per key, which doubles the worker's writes.
Here the job's own transitions are the record, and the job id — not the SQS message id — is
the key, which catches redeliveries, producer retries and redrives:

    Powertools calls (public)   what this layer does
    save_inprogress(data)       START the job (pending|retrying → running, or a running job
                                whose lease passed); a live running job is INPROGRESS until its
                                lease — the Lambda's deadline — passes
    get_record(data)            the job as a record: a terminal job is COMPLETED (its run has
                                ended: the worker settles the duplicate)
    save_success(data, result)  nothing: the worker settles the run's outcome, store and queue
                                together (`Worker.settle`)
    delete_record(data, error)  release the lease: the run blew up inside jobpipe, not the job

The layer works from the payload (`data`, whose `job_id` is the key) through these public
methods; the four storage hooks Powertools' own layers implement are never called.

A START the job refuses for a reason of its own (no such job, attempts used up, a retry not
due, a cancel asked of a dead runner) raises `StartRefusedError` carrying what the worker is to
do with the record: Powertools hands it on as the cause of its persistence-layer error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import (
    STATUS_CONSTANTS,
    DataRecord,
)

from jobpipe.domain.job import ErrorInfo, Job, fingerprint, payload_of
from jobpipe.domain.outcome import (
    Abandon,
    Ended,
    HandBack,
    Outcome,
    Poison,
    RunOutcome,
    StopAbandoned,
)
from jobpipe.domain.record import error_entries
from jobpipe.domain.retry import EARLY_START_TOLERANCE_MS
from jobpipe.domain.states import CANCEL_RUN, RETRY, START, JobStatus
from jobpipe.errors import IllegalTransitionError, JobError
from jobpipe.observability import log_transition
from jobpipe.ports import JobStore

# Without a registered Lambda context there is no deadline to lease until.
FALLBACK_LEASE_MS = 15 * 60 * 1000
RELEASED = ErrorInfo("InternalError", "the worker failed while running the job")


class StartRefusedError(JobError):
    """The job would not start, for a reason of its own; `outcome` says what to do instead."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"the job did not start: {outcome}")
        self.outcome = outcome


class JobItemPersistenceLayer(BasePersistenceLayer):
    def __init__(self, store: JobStore, clock_ms: Callable[[], int]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._store = store
        self._now = clock_ms
        # The job as its START returned it, for the run that follows, and the job as it stood
        # when a START was refused (for the worker to settle the record): by job id.
        self._started: dict[str, Job] = {}
        self._refused: dict[str, Job] = {}

    def started(self, job_id: str) -> Job:
        return self._started[job_id]

    def take_started(self, job_id: str) -> Job:
        return self._started.pop(job_id)

    def refused(self, job_id: str) -> Job | None:
        return self._refused.pop(job_id, None)

    # --- what Powertools calls -----------------------------------------------------------------

    def save_inprogress(
        self, data: dict[str, Any], remaining_time_in_millis: int | None = None
    ) -> None:
        job_id = _job_id(data)
        now = self._now()
        lease = now + (
            remaining_time_in_millis if remaining_time_in_millis is not None else FALLBACK_LEASE_MS
        )
        # A message a schedule sent says when it fired: the job is due by then, whatever this
        # worker's clock says.
        fired_at = data.get("fired_at_ms")
        due = max(now, fired_at if isinstance(fired_at, int) else 0) + EARLY_START_TOLERANCE_MS
        try:
            job = self._store.apply(
                START,
                job_id,
                payload_hash=_payload_hash(data),
                lease=lease,
                now=now,
                due=due,
            )
        except IllegalTransitionError as refused:
            if refused.job is None:
                no_job = ErrorInfo("PoisonMessageError", f"no job {job_id}")
                raise StartRefusedError(Poison(no_job)) from None
            self._refused[job_id] = refused.job
            raise IdempotencyItemAlreadyExistsError(
                old_data_record=self._record_of(refused.job, data)
            ) from None
        self._started[job_id] = job
        log_transition(job, "start")

    def get_record(self, data: dict[str, Any]) -> DataRecord:
        job = self._store.get(_job_id(data))
        if job is None:
            raise IdempotencyItemNotFoundError
        self._refused[job.job_id] = job
        return self._record_of(job, data)

    def save_success(self, data: dict[str, Any], result: dict[str, Any]) -> None:
        """Nothing to write here: the worker settles the outcome (`Worker.settle`)."""
        del data, result

    def delete_record(self, data: dict[str, Any], exception: Exception) -> None:
        """The run raised inside jobpipe (`exception`; the job's own errors are outcomes):
        release the job for another attempt now."""
        del exception
        running = self._started.pop(_job_id(data))
        now = self._now()
        try:
            released = self._store.apply(
                RETRY,
                running,
                attempt=running.attempts,
                errors=error_entries(running.errors_with(RELEASED, now)),
                next_attempt_at=now,
                now=now,
                progress=None,
            )
        except IllegalTransitionError as refused:
            if refused.job is None or not refused.job.cancel_requested:
                raise
            # Asked to cancel meanwhile: the attempt ends the job instead of a retry.
            released = self._store.apply(
                CANCEL_RUN, running, attempt=running.attempts, now=now, progress=None
            )
        log_transition(released, "release")

    # The storage hooks Powertools' own layers implement: this layer overrides the public
    # methods that call them, so they are never reached.

    def _get_record(self, idempotency_key: str) -> DataRecord:
        raise NotImplementedError("the job store is read through get_record(data)")

    def _put_record(self, data_record: DataRecord) -> None:
        raise NotImplementedError("jobs are started through save_inprogress(data)")

    def _update_record(self, data_record: DataRecord) -> None:
        raise NotImplementedError("outcomes are written by Worker.settle")

    def _delete_record(self, data_record: DataRecord) -> None:
        raise NotImplementedError("leases are released through delete_record(data)")

    # --- the job, as Powertools sees it ---------------------------------------------------------

    def _record_of(self, job: Job, data: dict[str, Any]) -> DataRecord:
        """The idempotency record a job stands for, or the refusal it amounts to."""
        if job.payload_hash != _payload_hash(data):
            raise IdempotencyValidationError("message payload does not match the job's payload")
        if job.status.is_terminal:
            return DataRecord(
                idempotency_key=job.job_id,
                status=STATUS_CONSTANTS["COMPLETED"],
                response_data=RunOutcome(end=Ended()).model_dump_json(),
                payload_hash=job.payload_hash,
            )
        now = self._now()
        lease = job.lease_expires_at or 0
        if job.status is JobStatus.RUNNING and lease >= now:
            return DataRecord(
                idempotency_key=job.job_id,
                status=STATUS_CONSTANTS["INPROGRESS"],
                in_progress_expiry_timestamp=lease,
                payload_hash=job.payload_hash,
            )
        raise StartRefusedError(self._refusal(job, now))

    @staticmethod
    def _refusal(job: Job, now: int) -> Outcome:
        """What to do with a record whose job would not start (and is not running live)."""
        if job.status is JobStatus.RUNNING:
            lease = job.lease_expires_at or 0
            if job.cancel_requested:
                return StopAbandoned(lease)
            return Abandon(
                ErrorInfo(
                    "AttemptsExhaustedError", f"job {job.job_id}: its last attempt was cut off"
                ),
                lease,
            )
        if job.attempts >= job.max_attempts:
            return Abandon(
                ErrorInfo(
                    "AttemptsExhaustedError",
                    f"job {job.job_id}: all {job.max_attempts} attempts are used",
                )
            )
        if job.status is JobStatus.SCHEDULED:
            # Early: its own delayed message or schedule, or the reaper, brings it when due.
            return HandBack(((job.run_at or now) - now) / 1000, "it is not due yet")
        due = job.next_attempt_at or now
        return HandBack((due - now) / 1000, "its retry is not due yet")


def _job_id(data: dict[str, Any]) -> str:
    return str(data["job_id"])


def _payload_hash(data: dict[str, Any]) -> str:
    # The same fingerprint the submit side stores on the job as `payload_hash`.
    return fingerprint(payload_of(data["type"], data["params"]))
