"""Submitting a job: validate, write the job, queue its message — exactly once per request.

A delayed job (`delay_seconds` or `run_at`) is written `scheduled`; its message is delayed on
the queue when it is due within 15 minutes, and held by a one-time schedule otherwise."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobpipe.domain.factory import new_job
from jobpipe.domain.job import (
    MAX_QUEUE_DELAY_SECONDS,
    Job,
    fingerprint,
    scheduled_body,
    stored_size,
)
from jobpipe.domain.registry import Registry
from jobpipe.domain.schedule import run_at_of
from jobpipe.domain.states import JobStatus
from jobpipe.errors import (
    IdempotencyConflictError,
    IllegalTransitionError,
    InvalidParamsError,
    JobError,
    ParamsTooLargeError,
    QueueError,
    SchedulerError,
    ServiceUnavailableError,
    StoreError,
)
from jobpipe.observability import log_transition, logger, metrics
from jobpipe.ports import JobQueue, JobStore, Scheduler
from jobpipe.topology import TOPOLOGY

# Objects and arrays inside params: enough for any job, far from the recursion limits.
MAX_PARAMS_DEPTH = 32


@dataclass(frozen=True)
class SubmitRequest:
    owner: str
    type: str
    params: dict[str, Any]
    idempotency_key: str | None = None
    # Run later: this many seconds from now, or at this time (RFC 3339 with an offset). A time
    # already past runs now; more than a year ahead is refused.
    delay_seconds: float | None = None
    run_at: datetime | str | None = None

    def timing(self) -> dict[str, Any]:
        """The delay as the request gave it (part of what an Idempotency-Key stands for)."""
        if self.delay_seconds is not None:
            # As a float whoever sent it: 90 and 90.0 are the same request.
            return {"delay_seconds": float(self.delay_seconds)}
        if self.run_at is not None:
            when = self.run_at
            return {"run_at": when if isinstance(when, str) else when.isoformat()}
        return {}


@dataclass(frozen=True)
class Submitted:
    job: Job
    created: bool  # False when an Idempotency-Key returned an earlier job


class SubmitService:
    def __init__(
        self,
        store: JobStore,
        queue: JobQueue,
        registry: Registry,
        *,
        retention_days: int = TOPOLOGY.retention_days,
        params_limit: int = TOPOLOGY.item.params_limit_bytes,
        clock: Callable[[], float] = time.time,
        scheduler: Scheduler | None = None,
    ) -> None:
        self._params_limit = params_limit
        self._store = store
        self._queue = queue
        self._scheduler = scheduler
        self._registry = registry
        self._retention_s = retention_days * 86400
        self._clock = clock

    def submit(self, request: SubmitRequest) -> Submitted:
        """Raises InvalidRequestError (422), IdempotencyConflictError (409) or
        ServiceUnavailableError (503, safe to retry with the same Idempotency-Key)."""
        now_ms = int(self._clock() * 1000)
        return self._submit(request, self._prepare(request, now_ms), now_ms)

    def _prepare(self, request: SubmitRequest, now_ms: int) -> Job:
        """The job a request would create, validated (every refusal of a submit but 409 and 503
        is raised here, before anything is written)."""
        job_type = self._registry.get_type(request.type)
        check_depth(request.params)
        params = job_type.parse_params(request.params).model_dump(mode="json")
        check_stored_size(params, self._params_limit)
        run_at_ms = run_at_of(
            delay_seconds=request.delay_seconds, run_at=request.run_at, now_ms=now_ms
        )
        return new_job(
            job_type,
            params,
            owner=request.owner,
            now_ms=now_ms,
            retention_seconds=self._retention_s,
            run_at_ms=run_at_ms,
        )

    def submit_many(self, requests: list[SubmitRequest]) -> list[Submitted | JobError]:
        """Many submits in one go, one answer per request in order: what `submit` would answer
        it alone, or the error it would raise.

        A refused request writes nothing. A request with an Idempotency-Key takes the single
        submit's path (its writes are conditional: BatchWriteItem takes no condition), except
        that its message waits to be sent with the others. The others are new jobs nobody can
        know yet: written with BatchWriteItem, 25 a request. Every message goes out with
        SendMessageBatch, 10 a request, entries SQS did not take sent again. A job whose write
        or message failed answers 503: a keyed one is repaired by the same request retried with
        the same key (or by the reaper), an unkeyed one is removed again, as `submit` does."""
        now_ms = int(self._clock() * 1000)
        answers: list[Submitted | JobError | None] = [None] * len(requests)
        fresh: dict[int, Job] = {}
        to_send: dict[int, Job] = {}
        for index, request in enumerate(requests):
            try:
                job = self._prepare(request, now_ms)
                if request.idempotency_key is None:
                    fresh[index] = job
                    continue
                answer = self._submit(request, job, now_ms, send=False)
            except JobError as error:
                answers[index] = _as_answer(error)
                continue
            answers[index] = answer
            if answer.job.status in (JobStatus.PENDING, JobStatus.SCHEDULED):
                to_send[index] = answer.job
        unsure = self._create_many(list(fresh.values()))
        for index, job in fresh.items():
            if job.job_id in unsure:
                self._undo(job)
                answers[index] = ServiceUnavailableError("the job store is unavailable; retry")
            else:
                log_transition(job, "submit")
                answers[index] = Submitted(job, created=True)
                to_send[index] = job
        # A delayed job's message is delayed (or held by a schedule): sent on its own.
        for index in [i for i, job in to_send.items() if job.status is JobStatus.SCHEDULED]:
            try:
                self._deliver(to_send.pop(index))
            except (QueueError, SchedulerError):
                if index in fresh:
                    self._undo(fresh[index])
                answers[index] = ServiceUnavailableError("the job queue is unavailable; retry")
        for index in self._send_many(to_send):
            if index in fresh:
                self._undo(fresh[index])
            answers[index] = ServiceUnavailableError("the job queue is unavailable; retry")
        created = sum(1 for a in answers if isinstance(a, Submitted) and a.created)
        if created:
            metrics.add_metric(TOPOLOGY.metrics.submitted, "Count", created)
        return [answer for answer in answers if answer is not None]

    def _create_many(self, jobs: list[Job]) -> set[str]:
        if not jobs:
            return set()
        try:
            return self._store.create_many(jobs)
        except StoreError:
            return {job.job_id for job in jobs}

    def _send_many(self, jobs: dict[int, Job]) -> set[int]:
        """The indexes (keys of `jobs`) whose message could not be sent."""
        if not jobs:
            return set()
        indexes = list(jobs)
        try:
            unsent = self._queue.send_many([jobs[i].message().to_body() for i in indexes])
        except QueueError:
            return set(indexes)
        return {indexes[position] for position in unsent}

    def _undo(self, job: Job) -> None:
        """Remove a new unkeyed job that may have been written but has no message."""
        try:
            self._store.delete_pending(job.job_id)
        except StoreError:
            logger.exception("could not undo a job whose message was not sent", job_id=job.job_id)

    def _submit(
        self, request: SubmitRequest, job: Job, now_ms: int, *, send: bool = True
    ) -> Submitted:
        keyed = request.idempotency_key is not None
        try:
            if keyed:
                earlier = self._claim(request, job, now_ms, send=send)
                if earlier is not None:
                    return earlier
            created = self._create(job, keyed=keyed, send=send)
            if created is not None:
                return created
            # Without a key no other request can know this job: if its message cannot be sent,
            # it is removed again. With a key a retry of the same request may already hold a
            # 202 for it, so it is never removed: the retry (or the reaper) queues it.
            if send:
                self._enqueue(job, compensate=not keyed)
        except StoreError as error:
            raise ServiceUnavailableError("the job store is unavailable; retry") from error
        if send:
            metrics.add_metric(TOPOLOGY.metrics.submitted, "Count", 1)
            if job.status is JobStatus.SCHEDULED:
                metrics.add_metric(TOPOLOGY.metrics.scheduled, "Count", 1)
        return Submitted(job, created=True)

    def _create(self, job: Job, *, keyed: bool, send: bool = True) -> Submitted | None:
        """Write the new job. A keyed job that already exists was created by a concurrent retry
        of the same request (it found the key claimed and the job missing): that job is the
        answer."""
        try:
            self._store.create(job)
        except IllegalTransitionError:
            if not keyed:
                raise
            existing = self._store.get(job.job_id)
            if existing is None:
                raise
            return self._answer_with(existing, send=send)
        log_transition(job, "submit")
        return None

    def _answer_with(self, existing: Job, *, send: bool = True) -> Submitted:
        """The answer for a job an earlier request with the same key created. A pending job may
        lack its message (that request's send failed): it is queued again, harmlessly, since the
        worker runs a job once per attempt whatever the number of its messages. A scheduled one
        gets its delayed message or its schedule again (a schedule exists once per job)."""
        if send and existing.status in (JobStatus.PENDING, JobStatus.SCHEDULED):
            self._enqueue(existing, compensate=False)
        return Submitted(existing, created=False)

    def _claim(
        self, request: SubmitRequest, job: Job, now_ms: int, *, send: bool = True
    ) -> Submitted | None:
        """Claim the caller's Idempotency-Key for `job`, or return the job it already names.

        A job whose earlier submit failed half-way is repaired here: written if that request
        claimed the key but never wrote the job (or has not yet), re-queued if it is still
        pending (a duplicate message is harmless: the worker is idempotent on the job id)."""
        key_id = idempotency_key_id(request.owner, request.idempotency_key or "")
        timing = request.timing()
        request_hash = fingerprint(
            [request.type, request.params, timing] if timing else [request.type, request.params]
        )
        claim = self._store.claim_key(key_id, job.job_id, request_hash, now_ms)
        if claim is None:
            return None
        if claim.request_hash != request_hash:
            raise IdempotencyConflictError(
                "this Idempotency-Key was used with a different request body"
            )
        existing = self._store.get(claim.job_id)
        if existing is not None:
            return self._answer_with(existing, send=send)
        # The earlier request claimed the key but its job is not there (yet): write it here.
        repaired = _with_id(job, claim.job_id)
        return self._create(repaired, keyed=True, send=send) or self._queued(repaired, send=send)

    def _queued(self, job: Job, *, send: bool = True) -> Submitted:
        if send:
            self._enqueue(job, compensate=False)
        return Submitted(job, created=True)

    def _enqueue(self, job: Job, *, compensate: bool) -> None:
        try:
            self._deliver(job)
        except (QueueError, SchedulerError) as error:
            # No job may stay pending without a message that nobody can repair: undo the write
            # (the caller gets a 503 and may retry).
            if compensate:
                try:
                    self._store.delete_pending(job.job_id)
                except StoreError:
                    logger.exception(
                        "could not undo a job whose message was not sent", job_id=job.job_id
                    )
            raise ServiceUnavailableError("the job queue is unavailable; retry") from error

    def _deliver(self, job: Job) -> None:
        """Send the job's message: now; delayed on the queue until the job is due, when that is
        at most 15 minutes away; or, further ahead, held by a one-time schedule."""
        wait_ms = (job.run_at or 0) - int(self._clock() * 1000)
        if job.status is not JobStatus.SCHEDULED or wait_ms <= 0:
            self._queue.send(job.message().to_body())
        elif wait_ms <= MAX_QUEUE_DELAY_SECONDS * 1000:
            self._queue.send(job.message().to_body(), delay_seconds=math.ceil(wait_ms / 1000))
        else:
            if self._scheduler is None:
                raise SchedulerError("no scheduler is configured for jobs due beyond 15 minutes")
            assert job.run_at is not None
            self._scheduler.schedule_once(job.job_id, job.run_at, scheduled_body(job.message()))


def _as_answer(error: JobError) -> JobError:
    """A batch item's error, as the single submit would have raised it."""
    if isinstance(error, StoreError):
        return ServiceUnavailableError("the job store is unavailable; retry")
    return error


def idempotency_key_id(owner: str, key: str) -> str:
    """Keys are per caller: the same key from two callers names two different jobs."""
    return "idem#" + fingerprint([owner, key])


def _with_id(job: Job, job_id: str) -> Job:
    from dataclasses import replace

    return replace(job, job_id=job_id)


def check_stored_size(params: dict[str, Any], limit: int) -> None:
    """Refuse params that would not fit the job item, measured as they will be stored."""
    try:
        size = stored_size(params)
    except ValueError:
        raise InvalidParamsError(
            "params contain text that is not valid Unicode (a lone surrogate)",
            [{"loc": "params", "msg": "text that is not valid Unicode"}],
        ) from None
    if size > limit:
        raise ParamsTooLargeError(size, limit)


def check_depth(params: Any) -> None:
    """Refuse params nested deeper than any job needs, before anything walks them
    recursively (validation, serialization, the payload hash)."""
    level = [params]
    for _ in range(MAX_PARAMS_DEPTH + 1):
        level = [
            child
            for value in level
            for child in (value.values() if isinstance(value, dict) else value)
            if isinstance(child, dict | list)
        ]
        if not level:
            return
    raise InvalidParamsError(
        f"params are nested deeper than {MAX_PARAMS_DEPTH} levels",
        [{"loc": "params", "msg": f"nested deeper than {MAX_PARAMS_DEPTH} levels"}],
    )
