"""Delayed submits on the in-memory fakes: where a scheduled job's message waits (on the queue up
to 15 minutes, on one schedule beyond), what is kept and for how long, what a retry with the same
key does, what a failing scheduler leaves behind; cancel deleting the schedule; how often to poll
a scheduled job."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from jobpipe.adapters.memory import InMemoryJobQueue, InMemoryJobStore, InMemoryScheduler
from jobpipe.cancel.service import CancelService
from jobpipe.domain.job import SCHEDULED_TIME
from jobpipe.domain.registry import load_job_types
from jobpipe.domain.states import JobStatus
from jobpipe.errors import (
    IdempotencyConflictError,
    InvalidRequestError,
    ServiceUnavailableError,
)
from jobpipe.status.service import MAX_RETRY_AFTER_SECONDS, StatusService
from jobpipe.submit.service import SubmitRequest, SubmitService
from jobpipe.topology import TOPOLOGY

# Now, to the second (the store hides jobs past their retention by the real clock).
NOW = float(int(time.time()))
RETENTION_S = TOPOLOGY.retention_days * 86400


class Parts:
    def __init__(self) -> None:
        self.store = InMemoryJobStore()
        self.queue = InMemoryJobQueue()
        self.scheduler = InMemoryScheduler()
        self.service = SubmitService(
            self.store, self.queue, load_job_types(), clock=lambda: NOW, scheduler=self.scheduler
        )

    def submit(self, **timing: object) -> str:
        key = timing.pop("key", None)
        request = SubmitRequest("alice", "echo", {"n": 1}, idempotency_key=key, **timing)  # type: ignore[arg-type]
        return self.service.submit(request).job.job_id


@pytest.fixture
def parts() -> Parts:
    return Parts()


def test_a_job_due_within_15_minutes_waits_on_the_queue(parts: Parts) -> None:
    # Given a job delayed by 90.2 seconds
    job_id = parts.submit(delay_seconds=90.2)
    # Then it is scheduled for then, its message delayed on the queue (whole seconds, never
    # early), and no schedule is made
    job = parts.store.get(job_id)
    assert job is not None and job.status is JobStatus.SCHEDULED
    assert job.run_at == int(NOW * 1000) + 90_200
    (message,) = parts.queue.messages
    assert message.delay_seconds == 91
    assert parts.scheduler.schedules == {}


def test_a_job_due_beyond_15_minutes_waits_on_one_schedule(parts: Parts) -> None:
    # Given a job due in two hours, written with an offset
    due = datetime.fromtimestamp(NOW, tz=UTC) + timedelta(hours=2)
    job_id = parts.submit(run_at=due.astimezone(timezone(timedelta(hours=2))).isoformat())
    due_ms = int(due.timestamp() * 1000)
    # Then one schedule holds its message until then, none is on the queue yet, and the message
    # asks the scheduler for the time it fired
    job = parts.store.get(job_id)
    assert job is not None and job.status is JobStatus.SCHEDULED
    held = parts.scheduler.once(job_id)
    assert held is not None and held.at_ms == due_ms == job.run_at
    assert parts.queue.messages == []
    body = json.loads(held.body)
    assert (body["job_id"], body["scheduled_time"]) == (job_id, SCHEDULED_TIME)
    # And it is kept for the retention period counted from its time, not from the submit
    assert job.expires_at == due_ms // 1000 + RETENTION_S


def test_a_time_already_past_runs_now(parts: Parts) -> None:
    job_id = parts.submit(run_at="2020-01-01T00:00:00Z")
    job = parts.store.get(job_id)
    assert job is not None and (job.status, job.run_at) == (JobStatus.PENDING, None)
    assert [m.delay_seconds for m in parts.queue.messages] == [0]


def test_a_time_more_than_a_year_ahead_is_refused_and_nothing_is_kept(parts: Parts) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        parts.submit(run_at=(datetime.fromtimestamp(NOW, tz=UTC) + timedelta(days=366)).isoformat())
    assert refused.value.fields[0]["loc"] == "run_at"
    assert parts.store.records == {} and parts.queue.messages == []
    assert parts.scheduler.schedules == {}


def test_a_scheduler_that_fails_answers_503_and_leaves_no_job(parts: Parts) -> None:
    # Given EventBridge Scheduler failing
    parts.scheduler.fail = True
    # When a job due in an hour is submitted / Then the caller is told to retry, and no job is
    # left scheduled without a schedule
    with pytest.raises(ServiceUnavailableError):
        parts.submit(delay_seconds=3600)
    assert parts.store.records == {}


def test_a_retry_with_the_same_key_makes_one_job_and_one_schedule(parts: Parts) -> None:
    first = parts.submit(delay_seconds=3600, key="report-7")
    again = parts.submit(delay_seconds=3600, key="report-7")
    assert first == again
    assert list(parts.scheduler.schedules) == [first]
    # And the same key with another time is another request: refused
    with pytest.raises(IdempotencyConflictError):
        parts.submit(delay_seconds=60, key="report-7")


def test_cancelling_a_job_waiting_on_a_schedule_deletes_it(parts: Parts) -> None:
    job_id = parts.submit(delay_seconds=3600)
    cancelled = CancelService(parts.store, clock=lambda: NOW, scheduler=parts.scheduler).cancel(
        "alice", job_id
    )
    assert cancelled.status is JobStatus.CANCELLED
    assert parts.scheduler.schedules == {}


def test_a_cancel_whose_schedule_delete_fails_still_cancels(parts: Parts) -> None:
    # Given a scheduled job, and a scheduler that then fails
    job_id = parts.submit(delay_seconds=3600)
    parts.scheduler.fail = True
    # When it is cancelled / Then it is cancelled (its schedule fires later and is dropped)
    service = CancelService(parts.store, clock=lambda: NOW, scheduler=parts.scheduler)
    assert service.cancel("alice", job_id).status is JobStatus.CANCELLED


def test_cancelling_a_job_delayed_on_the_queue_makes_no_scheduler_call(parts: Parts) -> None:
    job_id = parts.submit(delay_seconds=60)
    calls = parts.scheduler.calls
    CancelService(parts.store, clock=lambda: NOW, scheduler=parts.scheduler).cancel("alice", job_id)
    assert parts.scheduler.calls == calls


def test_a_scheduled_job_is_polled_again_around_its_time(parts: Parts) -> None:
    soon = parts.submit(delay_seconds=8)
    later = parts.submit(delay_seconds=3600)
    status = StatusService(parts.store, clock=lambda: NOW)
    assert status.retry_after(status.get("alice", soon)) == 8
    assert status.retry_after(status.get("alice", later)) == MAX_RETRY_AFTER_SECONDS


def test_the_same_delay_as_an_integer_or_a_float_is_the_same_request() -> None:
    # Given a delayed job submitted with a key and an integer delay (as a Python caller may)
    from jobpipe.adapters.memory import InMemoryJobQueue, InMemoryJobStore
    from jobpipe.domain.registry import load_job_types
    from jobpipe.submit.service import SubmitRequest, SubmitService

    service = SubmitService(InMemoryJobStore(), InMemoryJobQueue(), load_job_types())
    first = service.submit(SubmitRequest("alice", "echo", {}, "k", delay_seconds=90))
    # When the same request comes again with the delay as JSON parses it (a float)
    again = service.submit(SubmitRequest("alice", "echo", {}, "k", delay_seconds=90.0))
    # Then it is the same job, not a 409
    assert again.job.job_id == first.job.job_id and not again.created
