"""In-memory fakes of the job store and the queue, for fast unit tests.

They follow the DynamoDB and SQS adapters' contracts exactly; `tests/adapters` runs one set of
contract tests against both, so the fakes cannot drift.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from jobpipe.adapters.listing import page_from_entries
from jobpipe.domain.expressions import Record, apply_changes, holds
from jobpipe.domain.job import Job
from jobpipe.domain.record import (
    KEY,
    LEASE,
    PENDING_SINCE,
    from_listed_record,
    from_record,
    to_record,
)
from jobpipe.domain.states import JobStatus, Transition
from jobpipe.errors import IllegalTransitionError, QueueError
from jobpipe.ports import JobPage, JobQuery, JobStore, KeyClaim, StuckJob
from jobpipe.topology import TOPOLOGY

KEY_RETENTION_MS = 24 * 3600 * 1000


class InMemoryJobStore(JobStore):
    """Holds each job's record, as the DynamoDB store holds its item, and applies the same
    declared transitions to it in Python."""

    def __init__(self, *, retention_days: int = TOPOLOGY.retention_days) -> None:
        self._retention_s = retention_days * 86400
        self.records: dict[str, Record] = {}
        self.keys: dict[str, tuple[KeyClaim, int]] = {}
        self.writes = 0
        self._lock = threading.Lock()

    @property
    def jobs(self) -> dict[str, Job]:
        """Every job held, as stored (expired ones included)."""
        return {job_id: from_record(record) for job_id, record in list(self.records.items())}

    def create(self, job: Job) -> None:
        with self._lock:
            self.writes += 1
            if job.job_id in self.records:
                raise IllegalTransitionError(job.job_id, "create", "existing")
            self.records[job.job_id] = to_record(job)

    def create_many(self, jobs: list[Job]) -> set[str]:
        with self._lock:
            self.writes += len(jobs)
            for job in jobs:
                self.records[job.job_id] = to_record(job)
        return set()

    def list_jobs(self, query: JobQuery) -> JobPage:
        # The DynamoDB store's listing indexes, by a scan of the records.
        entries = sorted(
            (
                (record[KEY], record["type"])
                for record in list(self.records.values())
                if "status" in record
                and (query.owner is None or record["owner"] == query.owner)
                and (query.before is None or record[KEY] < query.before)
            ),
            reverse=True,
        )
        return page_from_entries(iter(entries), query, self._read_listed)

    def _read_listed(self, job_ids: list[str]) -> list[Job]:
        now_s = time.time()
        jobs = [from_listed_record(self.records[i]) for i in job_ids if i in self.records]
        return [job for job in jobs if job.expires_at >= now_s]

    def get(self, job_id: str) -> Job | None:
        record = self.records.get(job_id)
        if record is None:
            return None
        job = from_record(record)
        return None if job.expires_at < time.time() else job

    def delete_pending(self, job_id: str) -> bool:
        with self._lock:
            self.writes += 1
            record = self.records.get(job_id)
            if record is None or (record["status"], record["attempts"]) != ("pending", 0):
                return False
            del self.records[job_id]
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

    def apply(self, transition: Transition, job: str | Job, /, **args: Any) -> Job:
        job_id = job.job_id if isinstance(job, Job) else job
        missing = transition.args - set(args)
        if missing:
            raise TypeError(f"{transition.name} needs {', '.join(sorted(missing))}")
        if transition.stamps:
            args = {**args, "expires_at": args["now"] // 1000 + self._retention_s}
        with self._lock:
            self.writes += 1
            record = self.records.get(job_id)
            if record is None:
                raise IllegalTransitionError(job_id, transition.name, None)
            if not holds(transition.condition, record, args):
                raise IllegalTransitionError(
                    job_id, transition.name, record["status"], from_record(record)
                )
            after = apply_changes(transition.writes, record, args)
            self.records[job_id] = after
            if isinstance(job, Job):
                # As the DynamoDB store answers: the caller's copy with this write's changes.
                return from_record(apply_changes(transition.writes, to_record(job), args))
            return from_record(after)

    # --- stuck jobs: the DynamoDB store's sparse indexes, by a scan of the records ------------

    def expired_leases(self, job_type: str, *, before_ms: int, limit: int) -> Iterator[StuckJob]:
        for record in self._indexed(job_type, LEASE, before_ms, limit):
            yield StuckJob(
                record[KEY],
                JobStatus.RUNNING,
                record[LEASE],
                record["attempts"],
                record["max_attempts"],
            )

    def pending_before(self, job_type: str, *, before_ms: int, limit: int) -> Iterator[StuckJob]:
        for record in self._indexed(job_type, PENDING_SINCE, before_ms, limit):
            yield StuckJob(record[KEY], JobStatus.PENDING, record[PENDING_SINCE])

    def _indexed(self, job_type: str, marker: str, before_ms: int, limit: int) -> list[Record]:
        found = [
            r
            for r in list(self.records.values())
            if r["type"] == job_type and marker in r and r[marker] < before_ms
        ]
        return sorted(found, key=lambda r: (r[marker], r[KEY]))[:limit]


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

    def send_many(self, bodies: list[str]) -> set[int]:
        if self.fail_sends:
            return set(range(len(bodies)))
        for body in bodies:
            self.send(body)
        return set()

    def send_to_dlq(self, body: str, attributes: dict[str, str]) -> str:
        message = SentMessage(f"d-{next(self._ids)}", body, dict(attributes))
        self.dead_letters.append(message)
        return message.message_id

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        self.visibility[receipt_handle] = seconds

    def oldest_message_age_seconds(self) -> float | None:
        return self.oldest_age
