"""A recurring schedule's firing on the in-memory fakes, as EventBridge Scheduler delivers it to
the Recurring function: one job per schedule and scheduled time, however often it is delivered;
owned by the schedule (or its declared owner); a firing that can make no job is refused."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from jobpipe.adapters.memory import InMemoryJobQueue, InMemoryJobStore
from jobpipe.domain.job import JobMessage
from jobpipe.domain.registry import Cron, Rate, Registry, job_type, recurring
from jobpipe.domain.schedule import firing_job_id
from jobpipe.domain.states import JobStatus
from jobpipe.recurring.service import Firing, FiringError, RecurringJobs

NOW = time.time()
# What the schedule's input becomes when EventBridge Scheduler fills in the time it fired for.
EVENT: dict[str, Any] = {
    "schedule": "nightly-report",
    "type": "report",
    "scheduled_time": "2026-09-21T01:00:00Z",
}

FIRED_MS = int(datetime(2026, 9, 21, 1, tzinfo=UTC).timestamp() * 1000)


class ReportParams(BaseModel):
    kind: str


def registry() -> Registry:
    types = Registry()

    @job_type(
        "report",
        schedules=[
            Cron("0 3 * * *", tz="Europe/Berlin", params={"kind": "daily"}, name=EVENT["schedule"])
        ],
        into=types,
    )
    def report(params: ReportParams) -> None: ...

    recurring(
        "report",
        Rate(hours=1, params={"kind": "hourly"}, name="hourly", owner="https://idp.example#ops"),
        into=types,
    )
    return types


@pytest.fixture
def parts() -> tuple[InMemoryJobStore, InMemoryJobQueue, RecurringJobs]:
    store, queue = InMemoryJobStore(), InMemoryJobQueue()
    return store, queue, RecurringJobs(store, queue, registry(), clock=lambda: NOW)


def test_a_firing_delivered_twice_makes_one_job(
    parts: tuple[InMemoryJobStore, InMemoryJobQueue, RecurringJobs],
) -> None:
    store, queue, recurring_jobs = parts
    # Given one firing, delivered twice
    first = recurring_jobs.fire(Firing.from_event(EVENT))
    second = recurring_jobs.fire(Firing.from_event(dict(EVENT)))
    # Then one job exists, named by the schedule and the time, with the declared params, owned
    # by its schedule
    assert (first.created, second.created) == (True, False)
    assert first.job.job_id == second.job.job_id == firing_job_id(EVENT["schedule"], FIRED_MS)
    (job,) = [store.get(job_id) for job_id in store.records]
    assert job is not None
    assert (job.status, job.params, job.owner) == (
        JobStatus.PENDING,
        {"kind": "daily"},
        "schedule:nightly-report",
    )
    assert job.schedule == "nightly-report"
    # And its message is on the queue (sent again for the second delivery: harmless, the worker
    # runs a job once per attempt)
    assert {JobMessage.from_body(m.body).job_id for m in queue.messages} == {job.job_id}


def test_the_next_firing_makes_the_next_job(
    parts: tuple[InMemoryJobStore, InMemoryJobQueue, RecurringJobs],
) -> None:
    store, _, recurring_jobs = parts
    recurring_jobs.fire(Firing.from_event(EVENT))
    recurring_jobs.fire(Firing.from_event({**EVENT, "scheduled_time": "2026-09-22T01:00:00Z"}))
    assert len(store.records) == 2


def test_a_declared_owner_owns_the_jobs(
    parts: tuple[InMemoryJobStore, InMemoryJobQueue, RecurringJobs],
) -> None:
    _, _, recurring_jobs = parts
    fired = recurring_jobs.fire(
        Firing.from_event({"schedule": "hourly", "scheduled_time": "2026-09-21T14:00:00Z"})
    )
    assert fired.job.owner == "jwt:https://idp.example#ops"


@pytest.mark.parametrize(
    "event",
    [
        {"schedule": "nobody", "scheduled_time": "2026-09-21T01:00:00Z"},
        {"schedule": "nightly-report"},
        {"schedule": "nightly-report", "scheduled_time": "<aws.scheduler.scheduled-time>"},
        {"scheduled_time": "2026-09-21T01:00:00Z"},
    ],
)
def test_a_firing_that_can_make_no_job_is_refused(
    parts: tuple[InMemoryJobStore, InMemoryJobQueue, RecurringJobs], event: dict[str, Any]
) -> None:
    store, _, recurring_jobs = parts
    with pytest.raises(FiringError):
        recurring_jobs.fire(Firing.from_event(event))
    assert store.records == {}
