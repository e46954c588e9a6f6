"""In-memory fakes of the job store and the queue, for fast unit tests.

They follow the DynamoDB and SQS adapters' contracts exactly; `tests/adapters` runs one set of
contract tests against both, so the fakes cannot drift.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobpipe.adapters.listing import page_from_entries
from jobpipe.domain.expressions import Record, apply_changes, holds
from jobpipe.domain.job import Job
from jobpipe.domain.record import (
    KEY,
    LEASE,
    OUTBOX_DUE,
    OUTBOX_KEY,
    PENDING_SINCE,
    from_listed_record,
    from_record,
    to_record,
    workflow_from_record,
    workflow_key,
    workflow_to_record,
)
from jobpipe.domain.states import JobStatus, Transition
from jobpipe.errors import IllegalTransitionError, QueueError, SchedulerError
from jobpipe.ports import FollowUp, JobPage, JobQuery, JobStore, KeyClaim, OneTimeSchedule, StuckJob
from jobpipe.topology import TOPOLOGY

if TYPE_CHECKING:
    from jobpipe.domain.workflow import Workflow

KEY_RETENTION_MS = 24 * 3600 * 1000


class InMemoryJobStore(JobStore):
    """Holds each job's record, as the DynamoDB store holds its item, and applies the same
    declared transitions to it in Python."""

    def __init__(self, *, retention_days: int = TOPOLOGY.retention_days) -> None:
        self._retention_s = retention_days * 86400
        self.records: dict[str, Record] = {}
        self.workflow_records: dict[str, Record] = {}
        self.keys: dict[str, tuple[KeyClaim, int]] = {}
        self.writes = 0
        # Writes by item key (a test counts the writes one item takes).
        self.writes_to: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def jobs(self) -> dict[str, Job]:
        """Every job held, as stored (expired ones included)."""
        return {job_id: from_record(record) for job_id, record in list(self.records.items())}

    def _count(self, key: str) -> None:
        self.writes += 1
        self.writes_to[key] = self.writes_to.get(key, 0) + 1

    def create(self, job: Job) -> None:
        with self._lock:
            self._count(job.job_id)
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

    def create_missing(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            with contextlib.suppress(IllegalTransitionError):
                self.create(job)

    def get_many(self, job_ids: Sequence[str]) -> dict[str, Job]:
        found = {job_id: self.get(job_id) for job_id in dict.fromkeys(job_ids)}
        return {job_id: job for job_id, job in found.items() if job is not None}

    def delete_pending(self, job_id: str) -> bool:
        with self._lock:
            self.writes += 1
            record = self.records.get(job_id)
            if record is None or record["attempts"] != 0:
                return False
            if record["status"] not in (JobStatus.PENDING.value, JobStatus.SCHEDULED.value):
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
        args = self._with_retention(transition, args)
        after = self._update(self.records, job_id, job_id, transition, args, from_record)
        if isinstance(job, Job):
            # As the DynamoDB store answers: the caller's copy with this write's changes.
            return from_record(apply_changes(transition.writes, to_record(job), args))
        return from_record(after)

    def _with_retention(self, transition: Transition, args: dict[str, Any]) -> dict[str, Any]:
        missing = transition.args - set(args)
        if missing:
            raise TypeError(f"{transition.name} needs {', '.join(sorted(missing))}")
        if transition.stamps:
            return {**args, "expires_at": args["now"] // 1000 + self._retention_s}
        return args

    def _update(
        self,
        records: dict[str, Record],
        key: str,
        name: str,
        transition: Transition,
        args: dict[str, Any],
        parse: Any,
    ) -> Record:
        with self._lock:
            self._count(key)
            record = records.get(key)
            if record is None:
                raise IllegalTransitionError(name, transition.name, None)
            if not holds(transition.condition, record, args):
                raise IllegalTransitionError(name, transition.name, record["status"], parse(record))
            after = apply_changes(transition.writes, record, args)
            records[key] = after
            return after

    # --- workflows ------------------------------------------------------------------------------

    def create_workflow(self, workflow: Workflow) -> Workflow | None:
        key = workflow_key(workflow.workflow_id)
        with self._lock:
            self._count(key)
            existing = self.workflow_records.get(key)
            if existing is not None:
                return workflow_from_record(existing)
            self.workflow_records[key] = workflow_to_record(workflow)
            return None

    def get_workflow(self, workflow_id: str) -> Workflow | None:
        record = self.workflow_records.get(workflow_key(workflow_id))
        if record is None:
            return None
        workflow = workflow_from_record(record)
        return None if workflow.expires_at < time.time() else workflow

    def apply_workflow(self, transition: Transition, workflow_id: str, /, **args: Any) -> Workflow:
        args = self._with_retention(transition, args)
        key = workflow_key(workflow_id)
        after = self._update(
            self.workflow_records, key, workflow_id, transition, args, workflow_from_record
        )
        return workflow_from_record(after)

    def followups_due(self, *, before_ms: int, limit: int) -> Iterator[FollowUp]:
        records = [*list(self.records.values()), *list(self.workflow_records.values())]
        due = sorted(
            (r[OUTBOX_DUE], r[KEY])
            for r in records
            if OUTBOX_KEY in r and OUTBOX_DUE in r and r[OUTBOX_DUE] < before_ms
        )
        for at, key in due[:limit]:
            yield FollowUp(key=key, due=at)

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


class InMemoryScheduler:
    """One-time schedules held in a dict; `due` hands out (and removes) those whose time has
    come, as EventBridge Scheduler fires and deletes them."""

    def __init__(self) -> None:
        self.schedules: dict[str, OneTimeSchedule] = {}
        self.fail = False
        self.calls = 0

    def schedule_once(self, job_id: str, at_ms: int, body: str) -> None:
        self.calls += 1
        if self.fail:
            raise SchedulerError("EventBridge Scheduler CreateSchedule failed: ThrottlingException")
        at_ms = -(-at_ms // 1000) * 1000
        self.schedules.setdefault(job_id, OneTimeSchedule(job_id, at_ms, body))

    def cancel_once(self, job_id: str) -> bool:
        self.calls += 1
        if self.fail:
            raise SchedulerError("EventBridge Scheduler DeleteSchedule failed: ThrottlingException")
        return self.schedules.pop(job_id, None) is not None

    def once(self, job_id: str) -> OneTimeSchedule | None:
        return self.schedules.get(job_id)

    def due(self, now_ms: int) -> list[OneTimeSchedule]:
        fired = [s for s in self.schedules.values() if s.at_ms <= now_ms]
        for schedule in fired:
            del self.schedules[schedule.job_id]
        return fired
