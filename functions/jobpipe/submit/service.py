"""Submitting a job: validate, write the job, queue its message — exactly once per request."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobpipe.domain.job import Job, fingerprint, new_job_id, payload_of
from jobpipe.domain.registry import Registry
from jobpipe.domain.states import JobStatus
from jobpipe.errors import (
    IdempotencyConflictError,
    InvalidParamsError,
    QueueError,
    ServiceUnavailableError,
    StoreError,
)
from jobpipe.observability import log_transition, logger, metrics
from jobpipe.ports import JobQueue, JobStore
from jobpipe.topology import TOPOLOGY

# Objects and arrays inside params: enough for any job, far from the recursion limits.
MAX_PARAMS_DEPTH = 32
MAX_IDEMPOTENCY_KEY_CHARS = 255


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._queue = queue
        self._registry = registry
        self._retention_s = retention_days * 86400
        self._clock = clock

    def submit(self, request: SubmitRequest) -> Submitted:
        """Raises InvalidRequestError (422), IdempotencyConflictError (409) or
        ServiceUnavailableError (503, safe to retry with the same Idempotency-Key)."""
        job_type = self._registry.get_type(request.type)
        _check_depth(request.params)
        params = job_type.parse_params(request.params).model_dump(mode="json")
        now_ms = int(self._clock() * 1000)
        job = Job(
            job_id=new_job_id(),
            type=job_type.name,
            params=params,
            owner=request.owner,
            status=JobStatus.PENDING,
            created_at=now_ms,
            updated_at=now_ms,
            expires_at=now_ms // 1000 + self._retention_s,
            max_attempts=job_type.policy.max_attempts,
            payload_hash=fingerprint(payload_of(job_type.name, params)),
        )
        try:
            if request.idempotency_key is not None:
                earlier = self._claim(request, job, now_ms)
                if earlier is not None:
                    return earlier
            self._store.create(job)
            log_transition(job, "submit")
            self._enqueue(job)
        except StoreError as error:
            raise ServiceUnavailableError("the job store is unavailable; retry") from error
        metrics.add_metric(TOPOLOGY.metrics.submitted, "Count", 1)
        return Submitted(job, created=True)

    def _claim(self, request: SubmitRequest, job: Job, now_ms: int) -> Submitted | None:
        """Claim the caller's Idempotency-Key for `job`, or return the job it already names.

        A job whose earlier submit failed half-way is repaired here: re-created if its write was
        undone, re-queued if it is still pending (a duplicate message is harmless: the worker is
        idempotent on the job id)."""
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
        if existing is None:
            repaired = _with_id(job, claim.job_id)
            self._store.create(repaired)
            log_transition(repaired, "submit")
            self._enqueue(repaired)
            return Submitted(repaired, created=True)
        if existing.status is JobStatus.PENDING:
            self._enqueue(existing, compensate=False)
        return Submitted(existing, created=False)

    def _enqueue(self, job: Job, *, compensate: bool = True) -> None:
        try:
            self._queue.send(job.message().to_body())
        except QueueError as error:
            # No job may stay pending without a message: undo the write (the caller gets a 503
            # and may retry; with an Idempotency-Key the retry re-creates the same job).
            if compensate:
                try:
                    self._store.delete_pending(job.job_id)
                except StoreError:
                    logger.exception(
                        "could not undo a job whose message was not sent", job_id=job.job_id
                    )
            raise ServiceUnavailableError("the job queue is unavailable; retry") from error


def idempotency_key_id(owner: str, key: str) -> str:
    """Keys are per caller: the same key from two callers names two different jobs."""
    return "idem#" + fingerprint([owner, key])


def _with_id(job: Job, job_id: str) -> Job:
    from dataclasses import replace

    return replace(job, job_id=job_id)


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
