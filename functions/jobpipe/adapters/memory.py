"""In-memory fakes of the job store and the queue, for fast unit tests.

They follow the DynamoDB and SQS adapters' contracts exactly; `tests/adapters` runs one set of
contract tests against both, so the fakes cannot drift.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from jobpipe.domain import changes
from jobpipe.domain.job import ErrorInfo, Job
from jobpipe.domain.retry import EARLY_START_TOLERANCE_MS
from jobpipe.domain.states import (
    ABANDON,
    FAIL,
    REPLAY,
    RETRY,
    START,
    SUCCEED,
    JobStatus,
    Transition,
)
from jobpipe.errors import IllegalTransitionError, QueueError
from jobpipe.ports import JobStore, KeyClaim, StuckJob
from jobpipe.topology import TOPOLOGY

KEY_RETENTION_MS = 24 * 3600 * 1000


class InMemoryJobStore(JobStore):
    def __init__(self, *, retention_days: int = TOPOLOGY.retention_days) -> None:
        self._retention_s = retention_days * 86400
        self.jobs: dict[str, Job] = {}
        self.keys: dict[str, tuple[KeyClaim, int]] = {}
        # The DynamoDB store's sparse `pending_since` attribute (the reaper's pending index).
        self.pending_since: dict[str, int] = {}
        self.writes = 0
        self._lock = threading.Lock()

    def create(self, job: Job) -> None:
        with self._lock:
            self.writes += 1
            if job.job_id in self.jobs:
                raise IllegalTransitionError(job.job_id, "create", "existing")
            self.jobs[job.job_id] = job
            if job.status is JobStatus.PENDING:
                self.pending_since[job.job_id] = job.updated_at

    def get(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        return None if job is None or job.expires_at < time.time() else job

    def delete_pending(self, job_id: str) -> bool:
        with self._lock:
            self.writes += 1
            job = self.jobs.get(job_id)
            if job is None or job.status is not JobStatus.PENDING or job.attempts != 0:
                return False
            del self.jobs[job_id]
            self.pending_since.pop(job_id, None)
            return True

    def claim_key(
        self, key_id: str, job_id: str, request_hash: str, now_ms: int
    ) -> KeyClaim | None:
        with self._lock:
            self.writes += 1
            existing = self.keys.get(key_id)
            if existing is not None and existing[1] > now_ms:
                return existing[0]
            self.keys[key_id] = (KeyClaim(job_id, request_hash), now_ms + KEY_RETENTION_MS)
            return None

    def result_budget(self, running: Job) -> int:
        # The same rule as the DynamoDB store, measured on the item that store would write.
        from jobpipe.adapters.dynamodb import result_budget

        return result_budget(running)

    def _expires(self, now_ms: int) -> int:
        return now_ms // 1000 + self._retention_s

    def start(self, job_id: str, *, payload_hash: str, lease_expires_at: int, now_ms: int) -> Job:
        def allowed(job: Job) -> bool:
            if job.payload_hash != payload_hash or job.attempts >= job.max_attempts:
                return False
            if job.status is JobStatus.PENDING:
                return True
            if job.status is JobStatus.RETRYING:
                due = self.pending_since.get(job_id)
                return due is not None and due <= now_ms + EARLY_START_TOLERANCE_MS
            return (
                job.status is JobStatus.RUNNING
                and job.lease_expires_at is not None
                and job.lease_expires_at < now_ms
            )

        started = self._apply(
            job_id,
            START,
            allowed,
            lambda job: changes.started(
                job,
                lease_expires_at=lease_expires_at,
                now_ms=now_ms,
                expires_at=self._expires(now_ms),
            ),
            check_sources=False,
        )
        self.pending_since.pop(job_id, None)
        return started

    def succeed(self, running: Job, *, result: Any, now_ms: int) -> Job:
        return self._apply(
            running.job_id,
            SUCCEED,
            lambda job: job.attempts == running.attempts,
            lambda job: changes.succeeded(
                job, result=result, now_ms=now_ms, expires_at=self._expires(now_ms)
            ),
        )

    def retry(self, running: Job, *, error: ErrorInfo, next_attempt_at: int, now_ms: int) -> Job:
        retrying = self._apply(
            running.job_id,
            RETRY,
            lambda job: job.attempts == running.attempts,
            lambda job: changes.retrying(
                job,
                error=error,
                next_attempt_at=next_attempt_at,
                now_ms=now_ms,
                expires_at=self._expires(now_ms),
            ),
        )
        self.pending_since[running.job_id] = next_attempt_at
        return retrying

    def fail(self, running: Job, *, error: ErrorInfo, dead_lettered: bool, now_ms: int) -> Job:
        return self._apply(
            running.job_id,
            FAIL,
            lambda job: job.attempts == running.attempts,
            lambda job: changes.failed(
                job,
                error=error,
                dead_lettered=dead_lettered,
                now_ms=now_ms,
                expires_at=self._expires(now_ms),
            ),
        )

    def abandon(
        self,
        job_id: str,
        *,
        error: ErrorInfo,
        now_ms: int,
        lease_expires_at: int | None = None,
        dead_letter_sent: bool = False,
    ) -> Job:
        abandoned = self._apply(
            job_id,
            ABANDON,
            lambda job: lease_expires_at is None or job.lease_expires_at == lease_expires_at,
            lambda job: changes.failed(
                job,
                error=error,
                dead_lettered=True,
                now_ms=now_ms,
                expires_at=self._expires(now_ms),
                dead_letter_sent=dead_letter_sent,
            ),
        )
        self.pending_since.pop(job_id, None)
        return abandoned

    def mark_dead_letter_sent(self, job_id: str, *, replays: int) -> None:
        with self._lock:
            self.writes += 1
            job = self.jobs.get(job_id)
            if job is None or (job.status, job.dead_lettered, job.replays) != (
                JobStatus.FAILED,
                True,
                replays,
            ):
                return
            self.jobs[job_id] = replace(job, dead_letter_sent=True)

    def replay(self, job_id: str, *, now_ms: int) -> Job:
        replayed = self._apply(
            job_id,
            REPLAY,
            lambda _job: True,
            lambda job: changes.replayed(job, now_ms=now_ms, expires_at=self._expires(now_ms)),
        )
        self.pending_since[job_id] = now_ms
        return replayed

    # --- stuck jobs ----------------------------------------------------------------------------

    def expired_leases(self, job_type: str, *, before_ms: int, limit: int) -> Iterator[StuckJob]:
        found = sorted(
            (job.lease_expires_at, job.job_id)
            for job in list(self.jobs.values())
            if job.type == job_type
            and job.lease_expires_at is not None
            and job.lease_expires_at < before_ms
        )
        for lease, job_id in found[:limit]:
            job = self.jobs[job_id]
            yield StuckJob(job_id, JobStatus.RUNNING, lease, job.attempts, job.max_attempts)

    def pending_before(self, job_type: str, *, before_ms: int, limit: int) -> Iterator[StuckJob]:
        found = sorted(
            (since, job_id)
            for job_id, since in list(self.pending_since.items())
            if since < before_ms and self.jobs[job_id].type == job_type
        )
        for since, job_id in found[:limit]:
            yield StuckJob(job_id, JobStatus.PENDING, since)

    def claim_stuck(self, stuck: StuckJob, *, now_ms: int) -> Job:
        with self._lock:
            self.writes += 1
            job = self.jobs.get(stuck.job_id)
            if job is None:
                raise IllegalTransitionError(stuck.job_id, "claim", None)
            waiting = (JobStatus.PENDING, JobStatus.RETRYING)
            if (
                (job.status, job.lease_expires_at, job.attempts < job.max_attempts)
                != (JobStatus.RUNNING, stuck.since, True)
                if stuck.status is JobStatus.RUNNING
                else job.status not in waiting or self.pending_since.get(job.job_id) != stuck.since
            ):
                raise IllegalTransitionError(stuck.job_id, "claim", job.status.value, job)
            if stuck.status is JobStatus.RUNNING:
                job = replace(job, lease_expires_at=now_ms)
                self.jobs[job.job_id] = job
            else:
                self.pending_since[job.job_id] = now_ms
                if job.status is JobStatus.RETRYING:
                    # Its message is sent again now: the next attempt is due now.
                    job = replace(job, next_attempt_at=now_ms)
                    self.jobs[job.job_id] = job
            return job

    def _apply(
        self,
        job_id: str,
        transition: Transition,
        guard: Any,
        change: Any,
        *,
        check_sources: bool = True,
    ) -> Job:
        with self._lock:
            self.writes += 1
            job = self.jobs.get(job_id)
            if job is None:
                raise IllegalTransitionError(job_id, transition.name, None)
            if (check_sources and job.status not in transition.sources) or not guard(job):
                raise IllegalTransitionError(job_id, transition.name, job.status.value, job)
            new: Job = change(job)
            self.jobs[job_id] = new
            return new


@dataclass
class SentMessage:
    message_id: str
    body: str
    attributes: dict[str, str] = field(default_factory=dict)
    delay_seconds: int = 0


class InMemoryJobQueue:
    def __init__(self) -> None:
        self.messages: list[SentMessage] = []
        self.dead_letters: list[SentMessage] = []
        self.visibility: dict[str, int] = {}
        # What `oldest_message_age_seconds` answers (tests set a backlog's age).
        self.oldest_age: float | None = 0.0
        self.fail_sends = False
        self._ids = itertools.count(1)

    def send(self, body: str, *, delay_seconds: int = 0) -> str:
        if self.fail_sends:
            raise QueueError("SQS SendMessage failed: ServiceUnavailable")
        message = SentMessage(f"m-{next(self._ids)}", body, delay_seconds=delay_seconds)
        self.messages.append(message)
        return message.message_id

    def send_to_dlq(self, body: str, attributes: dict[str, str]) -> str:
        message = SentMessage(f"d-{next(self._ids)}", body, dict(attributes))
        self.dead_letters.append(message)
        return message.message_id

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        self.visibility[receipt_handle] = seconds

    def oldest_message_age_seconds(self) -> float | None:
        return self.oldest_age
