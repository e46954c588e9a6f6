"""The worker: runs one queue record's job at most once per attempt, and decides what the queue
should do with the record.

`Worker.process` returns when the record is done (the event source deletes it) and raises
`RecordNotDoneError` when the record must stay on the queue (it is reported in `batchItemFailures`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyInconsistentStateError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)

from jobpipe.domain.job import ErrorInfo, Job, JobMessage, stored_size
from jobpipe.domain.registry import JobContext, JobType, Registry
from jobpipe.domain.retry import MAX_VISIBILITY_SECONDS
from jobpipe.errors import (
    AttemptsExhaustedError,
    IllegalTransitionError,
    InvalidParamsError,
    JobError,
    PoisonMessageError,
    UnknownJobTypeError,
)
from jobpipe.observability import log_transition, logger, metrics
from jobpipe.ports import JobQueue, JobStore
from jobpipe.topology import TOPOLOGY
from jobpipe.worker.idempotency import JobItemPersistenceLayer, Outcome

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.hook import IdempotentHookFunction

MAX_ERROR_MESSAGE_CHARS = 1000
# Time kept back from a job's declared timeout for the outcome write and the batch response.
SAFETY_MARGIN_MS = int(TOPOLOGY.worker_margin_seconds() * 1000)


class RecordNotDoneError(JobError):
    """The record stays on the queue (reported as a batch item failure)."""


@dataclass(frozen=True)
class QueueRecord:
    """What the worker needs of an SQS record."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1


class Worker:
    def __init__(
        self,
        store: JobStore,
        queue: JobQueue,
        registry: Registry,
        *,
        clock: Callable[[], float] = time.time,
        rng: Any = None,
        safety_margin_ms: int = SAFETY_MARGIN_MS,
    ) -> None:
        self._margin_ms = safety_margin_ms
        self._store = store
        self._queue = queue
        self._registry = registry
        self._clock = clock
        self._rng = rng
        self.persistence = JobItemPersistenceLayer(store, self._now_ms)
        self.idempotency_config = IdempotencyConfig(
            event_key_jmespath="job_id",
            payload_validation_jmespath="[type, params]",
            raise_on_no_idempotency_key=True,
            response_hook=cast("IdempotentHookFunction", _mark_duplicate),
        )
        self._run_once = idempotent_function(
            data_keyword_argument="message",
            config=self.idempotency_config,
            persistence_store=self.persistence,
        )(self._run)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- one record ------------------------------------------------------------------------------

    def process(self, record: QueueRecord, remaining_ms: Callable[[], int]) -> None:
        try:
            message = JobMessage.from_body(record.body)
        except PoisonMessageError as poison:
            self._dead_letter_poison(record, poison, None)
            return
        try:
            job_type = self._registry.get_type(message.type)
        except UnknownJobTypeError as unknown:
            self._dead_letter_poison(record, unknown, message)
            return

        budget = remaining_ms() - self._margin_ms
        if budget < job_type.policy.timeout * 1000:
            # Not enough time left in this invocation: hand it back unstarted (no attempt counted)
            # and visible at once, for the next invocation.
            self._queue.change_visibility(record.receipt_handle, 0)
            logger.info("handed back: not enough time left", job_id=message.job_id)
            raise RecordNotDoneError(f"job {message.job_id} handed back unstarted")

        try:
            response = self._run_once(message=message.as_payload())
        except IdempotencyValidationError:
            self._dead_letter_poison(
                record, PoisonMessageError("message payload does not match the job"), message
            )
            return
        except (IdempotencyAlreadyInProgressError, IdempotencyInconsistentStateError):
            logger.info("duplicate delivery while the job is running", job_id=message.job_id)
            raise RecordNotDoneError(f"job {message.job_id} is already running") from None
        except IdempotencyPersistenceLayerError as error:
            cause = error.__cause__
            if isinstance(cause, IllegalTransitionError) and cause.current is None:
                self._dead_letter_poison(
                    record, PoisonMessageError(f"no job {message.job_id}"), message
                )
                return
            if isinstance(cause, AttemptsExhaustedError):
                self._abandon(record, message, ErrorInfo("AttemptsExhaustedError", str(cause)))
                return
            logger.warning("job store unavailable; the record will be retried", exc_info=error)
            raise RecordNotDoneError(str(cause or error)) from error

        self._settle(record, message, response)

    def _settle(self, record: QueueRecord, message: JobMessage, response: dict[str, Any]) -> None:
        """Tell the queue what became of the record, given the run's (or a past run's) outcome."""
        outcome = response["outcome"]
        if response.get("duplicate"):
            logger.info("duplicate delivery of a finished job", job_id=message.job_id)
        if outcome == Outcome.SUCCEEDED:
            return
        if outcome == Outcome.RETRY:
            delay = int(response["delay_seconds"])
            self._queue.change_visibility(record.receipt_handle, min(delay, MAX_VISIBILITY_SECONDS))
            raise RecordNotDoneError(f"job {message.job_id} will be retried in {delay} s")
        if response.get("dead_lettered"):
            error = response.get("error") or {}
            self._send_to_dlq(
                record,
                message.job_id,
                message.type,
                ErrorInfo(error.get("type", "JobFailed"), error.get("message", "")),
                attempts=response.get("attempt"),
            )

    # --- the run itself (wrapped by Powertools idempotency) -------------------------------------

    def _run(self, message: dict[str, Any]) -> dict[str, Any]:
        job = self.persistence.started(message["job_id"])
        job_type = self._registry.get_type(job.type)
        attempt = job.attempts
        started = time.perf_counter()
        try:
            result = self._call(job_type, job, JobContext(job.job_id, attempt, job.max_attempts))
        except Exception as exc:  # noqa: BLE001  (job code may raise anything; the policy decides)
            metrics.add_metric(TOPOLOGY.metrics.duration, "Milliseconds", _ms_since(started))
            return self._failure(job_type, attempt, job.max_attempts, exc)
        metrics.add_metric(TOPOLOGY.metrics.duration, "Milliseconds", _ms_since(started))
        metrics.add_metric(TOPOLOGY.metrics.succeeded, "Count", 1)
        return {"outcome": Outcome.SUCCEEDED, "attempt": attempt, "result": result}

    def _call(self, job_type: JobType, job: Job, context: JobContext) -> Any:
        try:
            params = job_type.parse_params(job.params)
        except InvalidParamsError as invalid:
            raise _PermanentResultError(
                f"params no longer valid for {job_type.name!r}: {invalid}"
            ) from None
        result = job_type.run(params, context)
        try:
            size = stored_size(result)
        except ValueError:
            raise _PermanentResultError("the job returned a value that is not JSON") from None
        budget = self._store.result_budget(job)
        if size > budget:
            # Checked before the outcome write: a result that cannot be stored fails the job
            # once, instead of failing the write and running the job again on every attempt.
            raise _PermanentResultError(
                f"the job's result takes {size} bytes as stored; this job's budget is {budget}"
            )
        return result

    def _failure(
        self, job_type: JobType, attempt: int, max_attempts: int, exc: Exception
    ) -> dict[str, Any]:
        error = {
            "type": "ResultError" if isinstance(exc, _PermanentResultError) else type(exc).__name__,
            "message": str(exc)[:MAX_ERROR_MESSAGE_CHARS],
        }
        permanent = isinstance(exc, _PermanentResultError) or job_type.policy.is_permanent(exc)
        if permanent or attempt >= max_attempts:
            dead_lettered = not permanent
            metrics.add_metric(TOPOLOGY.metrics.failed, "Count", 1)
            if dead_lettered:
                metrics.add_metric(TOPOLOGY.metrics.dead_lettered, "Count", 1)
            return {
                "outcome": Outcome.FAILED,
                "attempt": attempt,
                "error": error,
                "dead_lettered": dead_lettered,
            }
        delay = job_type.policy.backoff.delay(attempt, self._rng)
        metrics.add_metric(TOPOLOGY.metrics.retried, "Count", 1)
        next_attempt_at = self._now_ms() + int(delay * 1000)
        return {
            "outcome": Outcome.RETRY,
            "attempt": attempt,
            "error": error,
            "delay_seconds": delay,
            "next_attempt_at": next_attempt_at,
        }

    # --- dead letters ---------------------------------------------------------------------

    def _dead_letter_poison(
        self, record: QueueRecord, error: JobError, message: JobMessage | None
    ) -> None:
        """A message no worker can process: it goes to the DLQ, and its job (if any) is failed so
        that it does not wait forever. The rest of the batch is unaffected."""
        metrics.add_metric(TOPOLOGY.metrics.poison, "Count", 1)
        info = ErrorInfo(type(error).__name__, str(error)[:MAX_ERROR_MESSAGE_CHARS])
        logger.warning("poison message", message_id=record.message_id, error=info.message)
        if message is not None and not isinstance(error, PoisonMessageError):
            self._abandon(record, message, info)
            return
        self._send_to_dlq(
            record, message.job_id if message else "", message.type if message else "", info
        )

    def _abandon(self, record: QueueRecord, message: JobMessage, error: ErrorInfo) -> None:
        try:
            job = self._store.abandon(message.job_id, error=error, now_ms=self._now_ms())
            log_transition(job, "abandon")
        except IllegalTransitionError:
            pass  # already terminal (or gone): nothing to fail
        self._send_to_dlq(record, message.job_id, message.type, error)

    def _send_to_dlq(
        self,
        record: QueueRecord,
        job_id: str,
        job_type: str,
        error: ErrorInfo,
        attempts: int | None = None,
    ) -> None:
        # If this send fails the record stays on the queue, and its next delivery converges
        # here again (the job is already marked): nothing is lost.
        attributes = {
            "job_id": job_id,
            "job_type": job_type,
            "error_type": error.type,
            "error_message": error.message,
            "source_message_id": record.message_id,
        }
        if attempts is not None:
            attributes["attempts"] = str(attempts)
        try:
            self._queue.send_to_dlq(record.body, attributes)
        except JobError as failed:
            raise RecordNotDoneError(f"could not dead-letter: {failed}") from failed


class _PermanentResultError(Exception):
    """A failure of the job's own output or input that retrying cannot fix."""


def _mark_duplicate(response: Any, _record: Any) -> Any:
    if isinstance(response, dict):
        return {**response, "duplicate": True}
    return response


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
