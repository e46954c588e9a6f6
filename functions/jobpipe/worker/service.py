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
from jobpipe.domain.states import JobStatus
from jobpipe.errors import (
    AttemptsExhaustedError,
    IllegalTransitionError,
    InvalidParamsError,
    JobError,
    PoisonMessageError,
    RetryNotDueError,
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
# SQS DelaySeconds stops at 15 minutes.
MAX_DELAY_SECONDS = 900
STORE_UNAVAILABLE_MAX_DELAY_SECONDS = 30
UNKNOWN_TYPE_MAX_BACKOFF_SECONDS = 120


class RecordNotDoneError(JobError):
    """The record stays on the queue (reported as a batch item failure)."""


@dataclass(frozen=True)
class DeadLettering:
    """A job's dead-lettering, as a record of the job finds it."""

    error: ErrorInfo
    attempts: int
    replays: int
    failed_at_ms: int
    already_sent: bool  # the DLQ holds its message
    by_this_record: bool  # this very record's run (or abandon) dead-lettered the job


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
        resend_from_receive: int = TOPOLOGY.queue.resend_from_receive(),
        unknown_type_grace_seconds: float = TOPOLOGY.worker.unknown_type_grace_seconds,
    ) -> None:
        self._margin_ms = safety_margin_ms
        self._resend_from = resend_from_receive
        self._unknown_type_grace_s = unknown_type_grace_seconds
        self._max_visibility = TOPOLOGY.max_backoff_visibility_seconds()
        # The invocation that dead-lettered a job has ended after this long.
        self._dead_letter_window_ms = TOPOLOGY.worker.timeout_seconds * 1000
        self._store = store
        self._queue = queue
        self._registry = registry
        self._clock = clock
        self._rng = rng
        self.persistence = JobItemPersistenceLayer(store, self._now_ms)
        self.persistence.retry_needs_ms = safety_margin_ms
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

    def order(self, bodies: list[str]) -> list[int]:
        """The order to run a batch's records in (indexes into `bodies`): quickest job types
        first, so that as many records as possible finish within the invocation and fewer are
        handed back for lack of time. Records the worker cannot parse come first (they cost no
        time)."""

        def timeout(index: int) -> float:
            try:
                job_type = self._registry.get(JobMessage.from_body(bodies[index]).type)
            except PoisonMessageError:
                return 0.0
            return job_type.policy.timeout if job_type is not None else 0.0

        return sorted(range(len(bodies)), key=timeout)

    def process(self, record: QueueRecord, remaining_ms: Callable[[], int]) -> None:
        try:
            message = JobMessage.from_body(record.body)
        except PoisonMessageError as poison:
            self._dead_letter_poison(record, poison, None)
            return
        try:
            job_type = self._registry.get_type(message.type)
        except UnknownJobTypeError as unknown:
            self._unknown_type(record, message, unknown)
            return

        budget = remaining_ms() - self._margin_ms
        if budget < job_type.policy.timeout * 1000:
            # Not enough time left in this invocation: hand it back unstarted (no attempt counted)
            # and visible at once, for the next invocation.
            self._hand_back(record, message, 0, "not enough time left in this invocation")
            return

        self.persistence.time_left_ms = remaining_ms
        try:
            response = self._run_once(message=message.as_payload())
        except IdempotencyValidationError:
            self._dead_letter_poison(
                record, PoisonMessageError("message payload does not match the job"), message
            )
            return
        except (IdempotencyAlreadyInProgressError, IdempotencyInconsistentStateError):
            # Back when the running attempt's lease ends: by then it has finished, or died.
            running = self.persistence.refused(message.job_id)
            lease = running.lease_expires_at if running and running.lease_expires_at else 0
            wait = max(0, lease - self._now_ms()) / 1000 + 1
            self._hand_back(record, message, wait, "duplicate delivery while the job is running")
            return
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
            if isinstance(cause, RetryNotDueError):
                wait = (cause.due_ms - self._now_ms()) / 1000
                self._hand_back(record, message, wait, "its retry is not due yet")
                return
            logger.warning("job store unavailable; the record will be retried", exc_info=error)
            wait = min(STORE_UNAVAILABLE_MAX_DELAY_SECONDS, 2**record.receive_count)
            self._hand_back(record, message, wait, str(cause or error))
            return

        self._settle(record, message, response)

    def _settle(self, record: QueueRecord, message: JobMessage, response: dict[str, Any]) -> None:
        """Tell the queue what became of the record, given the run's (or a past run's) outcome."""
        outcome = response["outcome"]
        if response.get("duplicate"):
            logger.info("duplicate delivery of a finished job", job_id=message.job_id)
        if outcome == Outcome.SUCCEEDED:
            return
        if outcome == Outcome.RETRY:
            self._hand_back(record, message, float(response["delay_seconds"]), "will be retried")
            return
        if response.get("dead_lettered"):
            error = response.get("error") or {}
            self._dead_letter(
                record,
                message,
                DeadLettering(
                    error=ErrorInfo(error.get("type", "JobFailed"), error.get("message", "")),
                    attempts=int(response.get("attempt") or 0),
                    replays=int(response.get("replays") or 0),
                    failed_at_ms=int(response.get("failed_at") or self._now_ms()),
                    already_sent=bool(response.get("dead_letter_sent")),
                    by_this_record=not response.get("duplicate"),
                ),
            )

    # --- records that stay for later -----------------------------------------------------------

    def _hand_back(
        self, record: QueueRecord, message: JobMessage, delay_seconds: float, why: str
    ) -> None:
        """Leave the record's job for later, `delay_seconds` from now, without using up the
        receives SQS counts towards dead-lettering.

        Every receive counts, and SQS moves a message to the DLQ after `maxReceiveCount` of them
        whatever the reason. So once a record has been received `resend_from_receive` times, it
        is replaced by a fresh copy of its message (a new message, received 0 times, delayed
        by up to 15 minutes; a retry that arrives early is handed back again until it is due),
        and the record itself is done. Before that, it is hidden for the delay and reported
        as a batch item failure. The receives left above that threshold are for what the
        worker cannot see: Lambda's throttles and crashed invocations."""
        # Rounded down: a retry arriving under a second early still starts (the store allows
        # EARLY_START_TOLERANCE_MS).
        delay = max(0, int(delay_seconds))
        if record.receive_count >= self._resend_from:
            try:
                self._queue.send(record.body, delay_seconds=min(delay, MAX_DELAY_SECONDS))
            except JobError:
                logger.warning("could not re-send a fresh copy; hiding the record instead")
            else:
                logger.info(
                    f"handed back as a fresh message: {why}",
                    job_id=message.job_id,
                    receive_count=record.receive_count,
                )
                return
        self._queue.change_visibility(record.receipt_handle, min(delay, self._max_visibility))
        logger.info(f"handed back: {why}", job_id=message.job_id, delay_seconds=delay)
        raise RecordNotDoneError(f"job {message.job_id} handed back: {why}")

    def _unknown_type(
        self, record: QueueRecord, message: JobMessage, unknown: UnknownJobTypeError
    ) -> None:
        """A job type this worker does not know. During a deploy the submit function may know a
        new type before the worker does: the job waits (handed back with backoff) for a grace
        period from its last change before it is failed as poison."""
        job = self._store.get(message.job_id)
        if job is None:
            self._dead_letter_poison(record, unknown, message)
            return
        if job.is_terminal:
            logger.info("dropped a message of a finished job of an unknown type")
            return
        waited_ms = self._now_ms() - job.updated_at
        left_s = self._unknown_type_grace_s - waited_ms / 1000
        if left_s <= 0:
            self._dead_letter_poison(record, unknown, message)
            return
        backoff = min(UNKNOWN_TYPE_MAX_BACKOFF_SECONDS, 2 ** max(0, record.receive_count - 1) * 5)
        self._hand_back(
            record, message, min(backoff, left_s), f"job type {message.type!r} is not known yet"
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
            return {
                **self._failure(job_type, attempt, job.max_attempts, exc),
                "replays": job.replays,
            }
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
        """Fail a job that can never run (dead-lettered), and dead-letter its message once."""
        try:
            job = self._store.abandon(message.job_id, error=error, now_ms=self._now_ms())
            log_transition(job, "abandon")
            by_this_record = True
        except IllegalTransitionError as refused:
            if refused.current is None:
                # No job (any more): the message is all there is.
                self._send_to_dlq(record, message.job_id, message.type, error)
                return
            job = refused.job
            if job is None or job.status is not JobStatus.FAILED or not job.dead_lettered:
                logger.info("dropped a message of a job that ended", job_id=message.job_id)
                return
            by_this_record = False
        self._dead_letter(
            record,
            message,
            DeadLettering(
                error=job.error or error,
                attempts=job.attempts,
                replays=job.replays,
                failed_at_ms=job.updated_at,
                already_sent=job.dead_letter_sent,
                by_this_record=by_this_record,
            ),
        )

    def _dead_letter(self, record: QueueRecord, message: JobMessage, dead: DeadLettering) -> None:
        """Send a dead-lettered job's message to the DLQ: once per dead-lettering, however often
        the job's messages are delivered (a redelivery, a producer's duplicate).

        The record whose run dead-lettered the job sends the copy, then marks the job. Another
        record of the job sends one only if the job is not marked and its dead-lettering is
        older than an invocation (so that run has ended: its send failed, or it died); until
        then it is handed back. If the mark itself fails, a later delivery may send a second
        copy; a replay recognises it by the job's replay count and only deletes it."""
        if dead.already_sent:
            logger.info("the DLQ already holds this job's message", job_id=message.job_id)
            return
        if not dead.by_this_record:
            age_ms = self._now_ms() - dead.failed_at_ms
            if age_ms < self._dead_letter_window_ms:
                wait = (self._dead_letter_window_ms - age_ms) / 1000 + 1
                self._hand_back(record, message, wait, "its dead-lettering may be under way")
                return
        self._send_to_dlq(
            record, message.job_id, message.type, dead.error, dead.attempts, dead.replays
        )
        try:
            self._store.mark_dead_letter_sent(message.job_id, replays=dead.replays)
        except JobError:
            logger.warning("could not mark the job's dead letter as sent", job_id=message.job_id)

    def _send_to_dlq(
        self,
        record: QueueRecord,
        job_id: str,
        job_type: str,
        error: ErrorInfo,
        attempts: int | None = None,
        replays: int | None = None,
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
        if replays is not None:
            # Which dead-lettering of the job this copy is (a replay skips older ones).
            attributes["replays"] = str(replays)
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
