"""Submitting a job: validate, write the job, queue its message — exactly once per request."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobpipe.domain.factory import new_job
from jobpipe.domain.job import Job, fingerprint, stored_size
from jobpipe.domain.registry import Registry
from jobpipe.domain.states import JobStatus
from jobpipe.errors import (
    IdempotencyConflictError,
    IllegalTransitionError,
    InvalidParamsError,
    JobError,
    ParamsTooLargeError,
    QueueError,
    ServiceUnavailableError,
    StoreError,
)
from jobpipe.observability import log_transition, logger, metrics
from jobpipe.ports import JobQueue, JobStore
from jobpipe.topology import TOPOLOGY

# Objects and arrays inside params: enough for any job, far from the recursion limits.
MAX_PARAMS_DEPTH = 32


@dataclass(frozen=True)
class SubmitRequest:
    owner: str
    type: str
    params: dict[str, Any]
    idempotency_key: str | None = None


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
    ) -> None:
        self._params_limit = params_limit
        self._store = store
        self._queue = queue
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
        _check_depth(request.params)
        params = job_type.parse_params(request.params).model_dump(mode="json")
        _check_stored_size(params, self._params_limit)
        return new_job(
            job_type,
            params,
            owner=request.owner,
            now_ms=now_ms,
            retention_seconds=self._retention_s,
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
            if answer.job.status is JobStatus.PENDING:
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
        worker runs a job once per attempt whatever the number of its messages."""
        if send and existing.status is JobStatus.PENDING:
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
        request_hash = fingerprint([request.type, request.params])
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
            self._queue.send(job.message().to_body())
        except QueueError as error:
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


def _check_stored_size(params: dict[str, Any], limit: int) -> None:
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


def _check_depth(params: Any) -> None:
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
