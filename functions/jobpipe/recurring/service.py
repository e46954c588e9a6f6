"""A recurring schedule's firing creates its job: exactly one per firing, however often the
scheduler delivers it.

EventBridge Scheduler delivers at least once, and retries a delivery it could not confirm. The
job a firing creates is named by the schedule and the time it fired for (`firing_job_id`), and
written with a conditional create: a second delivery of the same firing finds the job there and
only makes sure its message was sent (a duplicate message is harmless: the worker runs a job
once per attempt). On AWS a small function is the schedule's target (`handlers/recurring.py`);
the local stack fires its schedules through the same handler.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jobpipe.domain.factory import new_job
from jobpipe.domain.job import Job, epoch_ms
from jobpipe.domain.registry import Registry
from jobpipe.domain.schedule import firing_job_id
from jobpipe.domain.states import JobStatus
from jobpipe.errors import IllegalTransitionError, JobError
from jobpipe.observability import log_transition, logger, metrics
from jobpipe.ports import JobQueue, JobStore
from jobpipe.topology import TOPOLOGY


class FiringError(JobError):
    """A firing that names no declared schedule, or no time: it can create no job."""


@dataclass(frozen=True)
class Firing:
    """What a schedule's target receives: which schedule, and the time it fired for."""

    schedule: str
    scheduled_ms: int

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Firing:
        name = event.get("schedule")
        scheduled_ms = epoch_ms(event.get("scheduled_time"))
        if not isinstance(name, str) or not name or scheduled_ms is None:
            raise FiringError("a firing names its schedule and its scheduled_time (RFC 3339)")
        return cls(name, scheduled_ms)


@dataclass(frozen=True)
class Fired:
    job: Job
    created: bool  # False for a second delivery of the same firing


class RecurringJobs:
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

    def fire(self, firing: Firing) -> Fired:
        """Create the firing's job and queue it. Raises FiringError for an unknown schedule, and
        the store's or the queue's errors (the scheduler then delivers again)."""
        schedule = self._registry.schedules.get(firing.schedule)
        if schedule is None:
            raise FiringError(f"no recurring schedule {firing.schedule!r} is declared")
        job_type = self._registry.get_type(schedule.job_type)
        params = job_type.parse_params(schedule.params).model_dump(mode="json")
        job = new_job(
            job_type,
            params,
            owner=schedule.owner,
            now_ms=int(self._clock() * 1000),
            retention_seconds=self._retention_s,
            job_id=firing_job_id(schedule.name, firing.scheduled_ms),
            schedule=schedule.name,
        )
        try:
            self._store.create(job)
        except IllegalTransitionError:
            existing = self._store.get(job.job_id)
            if existing is None:
                raise
            logger.info("a firing delivered again", job_id=existing.job_id, schedule=schedule.name)
            if existing.status is JobStatus.PENDING:
                # The earlier delivery may have failed to send it.
                self._queue.send(existing.message().to_body())
            return Fired(existing, created=False)
        log_transition(job, "fire")
        self._queue.send(job.message().to_body())
        metrics.add_metric(TOPOLOGY.metrics.recurring_fired, "Count", 1)
        return Fired(job, created=True)
