"""The worker: runs one queue record's job at most once per attempt, and settles what became of
the record — in the store and on the queue together, in one place (`Worker.settle`).

`Worker.process` returns when the record is done (the event source deletes it) and raises
`RecordNotDoneError` when the record must stay on the queue (it is reported in
`batchItemFailures`). `Worker.process_concurrently` runs the async jobs of a batch side by side.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyInconsistentStateError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import (
    PydanticSerializer,
)

from jobpipe.domain.context import JobContext
from jobpipe.domain.job import ErrorInfo, Job, JobMessage, Progress, stored_size
from jobpipe.domain.outcome import (
    Abandon,
    Duplicate,
    Ended,
    Failed,
    Failure,
    HandBack,
    Outcome,
    Poison,
    Ran,
    Retry,
    RunOutcome,
    StopAbandoned,
    Stopped,
    Succeeded,
)
from jobpipe.domain.record import error_entries, progress_entry
from jobpipe.domain.registry import JobType, Registry
from jobpipe.domain.states import (
    ABANDON,
    ABANDON_ATTEMPT,
    CANCEL_RUN,
    CANCEL_STOPPED,
    FAIL,
    MARK_DEAD_LETTER_SENT,
    PROGRESS,
    RETRY,
    SUCCEED,
    JobStatus,
    Transition,
)
from jobpipe.errors import (
    IllegalTransitionError,
    InvalidParamsError,
    JobCancelled,
    JobError,
    PoisonMessageError,
    StoreError,
    TransientJobError,
    UnknownJobTypeError,
)
from jobpipe.followups import FollowUps
from jobpipe.observability import log_transition, logger, metrics
from jobpipe.ports import JobQueue, JobStore
from jobpipe.topology import TOPOLOGY
from jobpipe.worker.idempotency import JobItemPersistenceLayer, StartRefusedError
from jobpipe.worker.limits import run_limited, soft_time_limit

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.hook import IdempotentHookFunction
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

MAX_ERROR_MESSAGE_CHARS = 1000
# Time kept back from a job's declared timeout for the outcome write and the batch response.
SAFETY_MARGIN_MS = int(TOPOLOGY.worker_margin_seconds() * 1000)
# SQS DelaySeconds stops at 15 minutes.
MAX_DELAY_SECONDS = 900
STORE_UNAVAILABLE_MAX_DELAY_SECONDS = 30
UNKNOWN_TYPE_MAX_BACKOFF_SECONDS = 120


class RecordNotDoneError(JobError):
    """The record stays on the queue (reported as a batch item failure)."""


class TimeLimitExceeded(TransientJobError):  # noqa: N818  (beside SoftTimeLimitExceeded)
    """An async job ran past its type's `timeout` (the hard limit) and was no longer awaited."""


@dataclass(frozen=True)
class QueueRecord:
    """What the worker needs of an SQS record."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1


@dataclass(frozen=True)
class DeadLettering:
    """A job's dead-lettering, as a record of the job finds it."""

    error: ErrorInfo
    attempts: int
    replays: int
    failed_at_ms: int
    already_sent: bool  # the DLQ holds its message
    by_this_record: bool  # this very record's run (or abandon) dead-lettered the job


class _Lifeline:
    """A running attempt's line to its stored record: progress, and whether to cancel."""

    def __init__(self, store: JobStore, running: Job) -> None:
        self._store = store
        self._running = running

    def report(self, progress: Progress) -> bool:
        try:
            self._store.apply(
                PROGRESS,
                self._running,
                attempt=self._running.attempts,
                progress=progress_entry(progress),
            )
        except IllegalTransitionError as refused:
            return bool(refused.job is not None and refused.job.cancel_requested)
        except StoreError:
            logger.warning("could not store progress", job_id=self._running.job_id)
        return False

    def cancel_asked(self) -> bool:
        try:
            job = self._store.get(self._running.job_id)
        except StoreError:
            return False
        return job is not None and job.cancel_requested


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
        async_concurrency: int = TOPOLOGY.worker.async_concurrency,
        input_limit: int = TOPOLOGY.workflow.input_limit_bytes,
    ) -> None:
        self._store = store
        self._followups = FollowUps(store, queue)
        self._input_limit = input_limit
        self._queue = queue
        self._registry = registry
        self._clock = clock
        self._rng = rng
        self._margin_ms = safety_margin_ms
        self._resend_from = resend_from_receive
        self._unknown_type_grace_s = unknown_type_grace_seconds
        self._async_concurrency = async_concurrency
        self._max_visibility = TOPOLOGY.max_backoff_visibility_seconds()
        # The invocation that dead-lettered a job has ended after this long.
        self._dead_letter_window_ms = TOPOLOGY.worker.timeout_seconds * 1000
        # The event loop the async jobs of the current batch share (None outside a batch).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._contexts: dict[str, JobContext] = {}
        self.persistence = JobItemPersistenceLayer(store, self._now_ms)
        self.idempotency_config = IdempotencyConfig(
            event_key_jmespath="job_id",
            raise_on_no_idempotency_key=True,
            response_hook=cast("IdempotentHookFunction", _mark_duplicate),
        )
        self._run_once = idempotent_function(
            data_keyword_argument="message",
            config=self.idempotency_config,
            persistence_store=self.persistence,
            output_serializer=PydanticSerializer(RunOutcome),
        )(self._run)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- a batch ----------------------------------------------------------------------------------

    def order(self, bodies: list[str]) -> list[int]:
        """The order to run a batch's records in (indexes into `bodies`): quickest job types
        first, so that as many records as possible finish within the invocation and fewer are
        handed back for lack of time. Records the worker cannot parse come first (they cost no
        time)."""

        def timeout(index: int) -> float:
            job_type = self._type_of(bodies[index])
            return job_type.policy.timeout if job_type is not None else 0.0

        return sorted(range(len(bodies)), key=timeout)

    def is_async(self, body: str) -> bool:
        job_type = self._type_of(body)
        return job_type is not None and job_type.is_async

    def process_concurrently(
        self, records: Sequence[QueueRecord], remaining_ms: Callable[[], int]
    ) -> dict[str, Exception | None]:
        """Process records whose jobs are async side by side: each in a thread of a small pool
        (the claim and outcome writes are Powertools' and boto3's, synchronous), every job
        function awaited on one event loop, at most `async_concurrency` at a time. Returns each
        record's result by message id: None when done, or the error `process` raised."""
        results: dict[str, Exception | None] = {}
        if not records:
            return results
        with self._event_loop(), ThreadPoolExecutor(self._async_concurrency) as pool:
            futures = {
                record.message_id: pool.submit(self.process, record, remaining_ms)
                for record in records
            }
            for message_id, future in futures.items():
                error = future.exception()
                results[message_id] = cast(Exception | None, error)
        return results

    @contextmanager
    def _event_loop(self) -> Iterator[None]:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="jobpipe-async-jobs", daemon=True)
        thread.start()
        self._loop = loop
        try:
            yield
        finally:
            self._loop = None
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    # --- one record -------------------------------------------------------------------------------

    def process(self, record: QueueRecord, remaining_ms: Callable[[], int]) -> None:
        self.settle(record, self._outcome(record, remaining_ms), remaining_ms)

    def _outcome(self, record: QueueRecord, remaining_ms: Callable[[], int]) -> Outcome:
        """What to do with the record: run its job once, or why not."""
        try:
            message = JobMessage.from_body(record.body)
        except PoisonMessageError as poison:
            return Poison(_info(poison))
        try:
            job_type = self._registry.get_type(message.type)
        except UnknownJobTypeError as unknown:
            return self._unknown_type(message, record, unknown)
        if remaining_ms() - self._margin_ms < job_type.policy.timeout * 1000:
            # Not enough time left in this invocation: unstarted (no attempt counted), visible
            # again at once for the next invocation.
            return HandBack(0, "not enough time left in this invocation")
        try:
            payload = message.as_payload()
            if message.fired_at_ms is not None:
                payload["fired_at_ms"] = message.fired_at_ms
            run = self._run_once(message=payload)
        except IdempotencyValidationError:
            return Poison(ErrorInfo("PoisonMessageError", "message payload does not match the job"))
        except (IdempotencyAlreadyInProgressError, IdempotencyInconsistentStateError):
            # Back when the running attempt's lease ends: by then it has finished, or died.
            running = self.persistence.refused(message.job_id)
            lease = running.lease_expires_at if running and running.lease_expires_at else 0
            wait = max(0, lease - self._now_ms()) / 1000 + 1
            return HandBack(wait, "duplicate delivery while the job is running")
        except IdempotencyPersistenceLayerError as error:
            cause = error.__cause__
            if isinstance(cause, StartRefusedError):
                return cause.outcome
            logger.warning("job store unavailable; the record will be retried", exc_info=error)
            wait = min(STORE_UNAVAILABLE_MAX_DELAY_SECONDS, 2**record.receive_count)
            return HandBack(wait, str(cause or error))
        if isinstance(run.end, Ended):
            job = self.persistence.refused(message.job_id)
            return Duplicate(job) if job is not None else HandBack(1, "the job moved on")
        return Ran(self.persistence.take_started(message.job_id), run.end)

    def _unknown_type(
        self, message: JobMessage, record: QueueRecord, unknown: UnknownJobTypeError
    ) -> Outcome:
        """A job type this worker does not know. During a deploy the submit function may know a
        new type before the worker does: the job waits (handed back with backoff) for a grace
        period from its last change before it is failed as poison."""
        job = self._store.get(message.job_id)
        if job is None:
            return Poison(_info(unknown))
        if job.is_terminal:
            return Duplicate(job)
        waited_ms = self._now_ms() - job.updated_at
        left_s = self._unknown_type_grace_s - waited_ms / 1000
        if left_s <= 0:
            return Abandon(_info(unknown))
        backoff = min(UNKNOWN_TYPE_MAX_BACKOFF_SECONDS, 2 ** max(0, record.receive_count - 1) * 5)
        return HandBack(min(backoff, left_s), f"job type {message.type!r} is not known yet")

    # --- the run itself (wrapped by Powertools idempotency) ---------------------------------------

    def _run(self, message: dict[str, Any]) -> RunOutcome:
        running = self.persistence.started(message["job_id"])
        job_type = self._registry.get_type(running.type)
        context = JobContext(
            running.job_id,
            running.attempts,
            running.max_attempts,
            # The same for every attempt of this run of the job; new after a replay.
            idempotency_key=f"{running.job_id}.{running.replays}",
            lifeline=_Lifeline(self._store, running),
            now_ms=self._now_ms,
        )
        self._contexts[running.job_id] = context
        started = time.perf_counter()
        end: Succeeded | Retry | Failed | Stopped
        try:
            end = Succeeded(result=self._call(job_type, running, context))
        except JobCancelled:
            end = Stopped()
        except Exception as exc:  # noqa: BLE001  (job code may raise anything; the policy decides)
            end = self._failure(job_type, running, exc)
        metrics.add_metric(TOPOLOGY.metrics.duration, "Milliseconds", _ms_since(started))
        return RunOutcome(end=end)

    def _call(self, job_type: JobType, job: Job, context: JobContext) -> Any:
        try:
            params = job_type.parse_params(self._params_of(job))
        except InvalidParamsError as invalid:
            receives = job.step is not None and job.step.inputs is not None
            raise _PermanentResultError(
                (
                    f"what the step received is not valid for {job_type.name!r}: {invalid}"
                    if receives
                    else f"params no longer valid for {job_type.name!r}: {invalid}"
                )
                + "".join(f"; {f['loc']}: {f['msg']}" for f in invalid.fields[:5]),
                "InputError" if receives else "ResultError",
            ) from None
        policy = job_type.policy
        if job_type.is_async:
            result = self._await(
                job_type.call(params, context), policy.soft_timeout, policy.timeout
            )
        else:
            with soft_time_limit(policy.soft_timeout):
                result = job_type.call(params, context)
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

    def _params_of(self, job: Job) -> dict[str, Any]:
        """The job's params; for a workflow step that follows others, with what it receives from
        them under `input` (read from their jobs now: results travel by reference)."""
        step = job.step
        if step is None or step.inputs is None:
            return job.params
        # Imported here: a worker that runs no workflow steps does not load workflows.
        from jobpipe.domain.workflow import INPUT_KEY, flatten, received

        ids = flatten(step.inputs)
        jobs = self._store.get_many(ids)
        gone = [job_id for job_id in ids if job_id not in jobs]
        if gone:
            raise _PermanentResultError(
                f"the jobs this step receives from are gone (past their retention): {gone[0]}",
                "InputError",
            )
        value = received(step.inputs, jobs, step.takes_outcomes)
        size = stored_size(value)
        if size > self._input_limit:
            raise _PermanentResultError(
                f"what this step receives from its predecessors takes {size} bytes as stored; "
                f"a step receives at most {self._input_limit}",
                "InputError",
            )
        return {**job.params, INPUT_KEY: value}

    def _await(self, coroutine: Coroutine[Any, Any, Any], soft: float | None, hard: float) -> Any:
        """Await an async job's coroutine: on the batch's shared loop, or on a loop of its own
        when it runs outside a batch."""
        limited = run_limited(coroutine, soft, hard)
        try:
            if self._loop is None:
                return asyncio.run(limited)
            return asyncio.run_coroutine_threadsafe(limited, self._loop).result()
        except TimeoutError:
            raise TimeLimitExceeded(f"the job ran past its time limit of {hard:g} s") from None

    def _failure(self, job_type: JobType, running: Job, exc: Exception) -> Retry | Failed:
        error = Failure(
            type=exc.error_type if isinstance(exc, _PermanentResultError) else type(exc).__name__,
            message=str(exc)[:MAX_ERROR_MESSAGE_CHARS],
        )
        permanent = isinstance(exc, _PermanentResultError) or job_type.policy.is_permanent(exc)
        if permanent or running.attempts >= running.max_attempts:
            return Failed(error=error, dead_lettered=not permanent)
        delay = job_type.policy.backoff.delay(running.attempts, self._rng)
        return Retry(error=error, delay_seconds=delay)

    # --- settling: the one place a record's outcome is applied ------------------------------------

    def settle(
        self, record: QueueRecord, outcome: Outcome, remaining_ms: Callable[[], int]
    ) -> None:
        """Apply `outcome` to the job (one conditional write, or none) and to the record: done
        (deleted), hidden for later, replaced by a fresh copy, or dead-lettered."""
        message = _message_of(record)
        if isinstance(outcome, Ran):
            self._end_run(record, message, outcome, remaining_ms)
        elif isinstance(outcome, Duplicate):
            self._duplicate(record, message, outcome.job)
        elif isinstance(outcome, HandBack):
            self._hand_back(record, message, outcome.delay_seconds, outcome.why)
        elif isinstance(outcome, Poison):
            self._poison(record, message, outcome.error)
        elif isinstance(outcome, Abandon):
            self._abandon(record, message, outcome)
        else:
            self._stop_abandoned(message, outcome)

    def _end_run(
        self,
        record: QueueRecord,
        message: JobMessage | None,
        ran: Ran,
        remaining_ms: Callable[[], int],
    ) -> None:
        running, end = ran.running, ran.end
        context = self._contexts.pop(running.job_id, None)
        progress = context.unsent_progress() if context else None
        now = self._now_ms()
        common = {
            "attempt": running.attempts,
            "progress": progress_entry(progress) if progress else None,
        }
        if isinstance(end, Succeeded):
            done = self._durably(
                SUCCEED, running, remaining_ms, result=_stored(end.result), **common
            )
            metrics.add_metric(TOPOLOGY.metrics.succeeded, "Count", 1)
        elif isinstance(end, Stopped):
            done = self._durably(CANCEL_RUN, running, remaining_ms, **common)
        elif isinstance(end, Retry):
            errors = error_entries(running.errors_with(end.error.info(), now))
            next_attempt_at = now + int(end.delay_seconds * 1000)
            done = self._durably(
                RETRY,
                running,
                remaining_ms,
                errors=errors,
                next_attempt_at=next_attempt_at,
                **common,
            )
        else:
            errors = error_entries(running.errors_with(end.error.info(), now))
            done = self._durably(
                FAIL,
                running,
                remaining_ms,
                errors=errors,
                dead_lettered=end.dead_lettered,
                **common,
            )
        log_transition(done, _TRANSITION_OF.get(done.status, done.status.value))
        self._followups.after_end(done)
        if done.status is JobStatus.CANCELLED:
            metrics.add_metric(TOPOLOGY.metrics.cancelled, "Count", 1)
        elif isinstance(end, Retry):
            metrics.add_metric(TOPOLOGY.metrics.retried, "Count", 1)
            self._hand_back(record, message, end.delay_seconds, "will be retried")
        elif isinstance(end, Failed):
            metrics.add_metric(TOPOLOGY.metrics.failed, "Count", 1)
            if end.dead_lettered:
                metrics.add_metric(TOPOLOGY.metrics.dead_lettered, "Count", 1)
                self._dead_letter(record, message, _dead_lettering(done, by_this_record=True))

    def _durably(
        self,
        transition: Transition,
        running: Job,
        remaining_ms: Callable[[], int],
        **args: Any,
    ) -> Job:
        """Write a run's outcome: the job has run, and losing the write would run it again once
        its lease ends. A write that fails is tried again while the invocation has time for
        another; one refused because an earlier try was applied (its answer lost) counts as
        done; one refused because a cancel was asked for meanwhile ends the job cancelled."""
        pause = 0.1
        while True:
            try:
                return self._store.apply(transition, running, now=self._now_ms(), **args)
            except IllegalTransitionError as refused:
                seen: Job | None = refused.job
                if seen is None or seen.attempts != running.attempts:
                    raise  # another attempt holds the job now: this one is fenced out
                if seen.status is not JobStatus.RUNNING:
                    return seen  # an earlier try of this very write was applied
                if seen.cancel_requested and transition is not CANCEL_RUN:
                    transition = CANCEL_RUN
                    args = {"attempt": args["attempt"], "progress": args.get("progress")}
                    continue
                raise
            except StoreError:
                if remaining_ms() < self._margin_ms + pause * 1000:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _duplicate(self, record: QueueRecord, message: JobMessage | None, job: Job) -> None:
        logger.info("duplicate delivery of a finished job", job_id=job.job_id)
        # The run that ended it may have died before what follows its end was done.
        self._followups.after_end(job)
        if job.status is JobStatus.FAILED and job.dead_lettered:
            self._dead_letter(record, message, _dead_lettering(job, by_this_record=False))

    # --- records that stay for later --------------------------------------------------------------

    def _hand_back(
        self, record: QueueRecord, message: JobMessage | None, delay_seconds: float, why: str
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
        job_id = message.job_id if message else None
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
                    job_id=job_id,
                    receive_count=record.receive_count,
                )
                return
        self._queue.change_visibility(record.receipt_handle, min(delay, self._max_visibility))
        logger.info(f"handed back: {why}", job_id=job_id, delay_seconds=delay)
        raise RecordNotDoneError(f"job {job_id} handed back: {why}")

    # --- dead letters -----------------------------------------------------------------------------

    def _poison(self, record: QueueRecord, message: JobMessage | None, error: ErrorInfo) -> None:
        """A message no worker can process: it goes to the DLQ, and its job (if any) is failed so
        that it does not wait forever. The rest of the batch is unaffected."""
        metrics.add_metric(TOPOLOGY.metrics.poison, "Count", 1)
        logger.warning("poison message", message_id=record.message_id, error=error.message)
        if message is not None and error.type != "PoisonMessageError":
            self._abandon(record, message, Abandon(error))
            return
        self._send_to_dlq(record, message, error)

    def _abandon(self, record: QueueRecord, message: JobMessage | None, abandon: Abandon) -> None:
        """Fail a job that can never run (dead-lettered), and dead-letter its message once."""
        assert message is not None
        now = self._now_ms()
        error = {"type": abandon.error.type, "message": abandon.error.message}
        try:
            if abandon.lease is None:
                job = self._store.apply(
                    ABANDON, message.job_id, error=error, dead_letter_sent=False, now=now
                )
            else:
                job = self._store.apply(
                    ABANDON_ATTEMPT,
                    message.job_id,
                    error=error,
                    dead_letter_sent=False,
                    lease=abandon.lease,
                    now=now,
                )
            log_transition(job, "abandon")
            self._followups.after_end(job)
            by_this_record = True
        except IllegalTransitionError as refused:
            if refused.current is None:
                # No job (any more): the message is all there is.
                self._send_to_dlq(record, message, abandon.error)
                return
            seen = refused.job
            if seen is None or seen.status is not JobStatus.FAILED or not seen.dead_lettered:
                logger.info("dropped a message of a job that moved on", job_id=message.job_id)
                return
            job, by_this_record = seen, False
        metrics.add_metric(TOPOLOGY.metrics.failed, "Count", 1)
        self._dead_letter(record, message, _dead_lettering(job, by_this_record=by_this_record))

    def _stop_abandoned(self, message: JobMessage | None, stop: StopAbandoned) -> None:
        """A running job asked to cancel whose runner died: it ends cancelled."""
        assert message is not None
        try:
            job = self._store.apply(
                CANCEL_STOPPED, message.job_id, lease=stop.lease, now=self._now_ms()
            )
        except IllegalTransitionError:
            return  # moved on meanwhile
        log_transition(job, "cancel")
        metrics.add_metric(TOPOLOGY.metrics.cancelled, "Count", 1)
        self._followups.after_end(job)

    def _dead_letter(
        self, record: QueueRecord, message: JobMessage | None, dead: DeadLettering
    ) -> None:
        """Send a dead-lettered job's message to the DLQ: once per dead-lettering, however often
        the job's messages are delivered (a redelivery, a producer's duplicate).

        The record whose run dead-letters a job sends the copy, then marks the job. Another
        record of the job sends one only if the job is not marked and its dead-lettering is
        older than an invocation (so that run has ended: its send failed, or it died); until
        then it is handed back. If the mark itself fails, a later delivery may send a second
        copy; a replay recognises it by the job's replay count and only deletes it."""
        assert message is not None
        if dead.already_sent:
            logger.info("the DLQ already holds this job's message", job_id=message.job_id)
            return
        if not dead.by_this_record:
            age_ms = self._now_ms() - dead.failed_at_ms
            if age_ms < self._dead_letter_window_ms:
                wait = (self._dead_letter_window_ms - age_ms) / 1000 + 1
                self._hand_back(record, message, wait, "its dead-lettering may be under way")
                return
        self._send_to_dlq(record, message, dead.error, dead.attempts, dead.replays)
        try:
            self._store.apply(MARK_DEAD_LETTER_SENT, message.job_id, replays=dead.replays)
        except IllegalTransitionError:
            pass  # replayed (or gone) since: its new dead-lettering is marked by itself
        except JobError:
            logger.warning("could not mark the job's dead letter as sent", job_id=message.job_id)

    def _send_to_dlq(
        self,
        record: QueueRecord,
        message: JobMessage | None,
        error: ErrorInfo,
        attempts: int | None = None,
        replays: int | None = None,
    ) -> None:
        # If this send fails the record stays on the queue, and its next delivery converges
        # here again (the job is already marked): nothing is lost.
        attributes = {
            "job_id": message.job_id if message else "",
            "job_type": message.type if message else "",
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

    # --- helpers ----------------------------------------------------------------------------------

    def _type_of(self, body: str) -> JobType | None:
        try:
            return self._registry.get(JobMessage.from_body(body).type)
        except PoisonMessageError:
            return None


_TRANSITION_OF = {
    JobStatus.SUCCEEDED: "succeeded",
    JobStatus.RETRYING: "retry",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancel",
}


class _PermanentResultError(Exception):
    """A failure of the job's own output or input that retrying cannot fix."""

    def __init__(self, message: str, error_type: str = "ResultError") -> None:
        super().__init__(message)
        self.error_type = error_type


def _message_of(record: QueueRecord) -> JobMessage | None:
    try:
        return JobMessage.from_body(record.body)
    except PoisonMessageError:
        return None


def _dead_lettering(job: Job, *, by_this_record: bool) -> DeadLettering:
    return DeadLettering(
        error=job.error or ErrorInfo("JobFailed", ""),
        attempts=job.attempts,
        replays=job.replays,
        failed_at_ms=job.updated_at,
        already_sent=job.dead_letter_sent,
        by_this_record=by_this_record,
    )


def _info(error: JobError) -> ErrorInfo:
    return ErrorInfo(type(error).__name__, str(error)[:MAX_ERROR_MESSAGE_CHARS])


def _stored(result: Any) -> str:
    from jobpipe.domain.job import stored_json

    return stored_json(result)


def _mark_duplicate(response: Any, _record: DataRecord) -> Any:
    if isinstance(response, RunOutcome):
        return response.model_copy(update={"duplicate": True})
    return response


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
