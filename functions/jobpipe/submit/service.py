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
            return {"delay_seconds": self.delay_seconds}
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
        job_type = self._registry.get_type(request.type)
        check_depth(request.params)
        params = job_type.parse_params(request.params).model_dump(mode="json")
        check_stored_size(params, self._params_limit)
        now_ms = int(self._clock() * 1000)
        run_at_ms = run_at_of(
            delay_seconds=request.delay_seconds, run_at=request.run_at, now_ms=now_ms
        )
        job = new_job(
            job_type,
            params,
            owner=request.owner,
            now_ms=now_ms,
            retention_seconds=self._retention_s,
            run_at_ms=run_at_ms,
        )
        keyed = request.idempotency_key is not None
        try:
            if keyed:
                earlier = self._claim(request, job, now_ms)
                if earlier is not None:
                    return earlier
            created = self._create(job, keyed=keyed)
            if created is not None:
                return created
            # Without a key no other request can know this job: if its message cannot be sent,
            # it is removed again. With a key a retry of the same request may already hold a
            # 202 for it, so it is never removed: the retry (or the reaper) queues it.
            self._enqueue(job, compensate=not keyed)
        except StoreError as error:
            raise ServiceUnavailableError("the job store is unavailable; retry") from error
        metrics.add_metric(TOPOLOGY.metrics.submitted, "Count", 1)
        if job.status is JobStatus.SCHEDULED:
            metrics.add_metric(TOPOLOGY.metrics.scheduled, "Count", 1)
        return Submitted(job, created=True)

    def _create(self, job: Job, *, keyed: bool) -> Submitted | None:
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
            return self._answer_with(existing)
        log_transition(job, "submit")
        return None

    def _answer_with(self, existing: Job) -> Submitted:
        """The answer for a job an earlier request with the same key created. A pending job may
        lack its message (that request's send failed): it is queued again, harmlessly, since the
        worker runs a job once per attempt whatever the number of its messages. A scheduled one
        gets its delayed message or its schedule again (a schedule exists once per job)."""
        if existing.status in (JobStatus.PENDING, JobStatus.SCHEDULED):
            self._enqueue(existing, compensate=False)
        return Submitted(existing, created=False)

    def _claim(self, request: SubmitRequest, job: Job, now_ms: int) -> Submitted | None:
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
            return self._answer_with(existing)
        # The earlier request claimed the key but its job is not there (yet): write it here.
        repaired = _with_id(job, claim.job_id)
        return self._create(repaired, keyed=True) or self._queued(repaired)

    def _queued(self, job: Job) -> Submitted:
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
