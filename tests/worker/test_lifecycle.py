"""The job lifecycle on the in-memory fakes (the fast tier): cancellation, soft time limits,
progress, the attempt history, the idempotency key a job hands to other services, and async
jobs — through the real worker service and its Powertools idempotency layer."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from jobpipe.adapters.memory import InMemoryJobQueue, InMemoryJobStore
from jobpipe.cancel.service import CancelService
from jobpipe.domain.factory import new_job
from jobpipe.domain.job import Job
from jobpipe.domain.registry import JobContext, Registry, job_type
from jobpipe.domain.retry import Backoff
from jobpipe.domain.states import JobStatus
from jobpipe.errors import JobFinishedError, SoftTimeLimitExceeded
from jobpipe.worker.service import QueueRecord, RecordNotDoneError, Worker
from tests.factories import fail, replay, start

INSTANT = Backoff(base=0.001, cap=0.001)


class Params(BaseModel):
    model_config = ConfigDict(extra="allow")


class Zero:
    def uniform(self, low: float, high: float) -> float:
        return low


@dataclass
class Lab:
    store: InMemoryJobStore = field(default_factory=InMemoryJobStore)
    queue: InMemoryJobQueue = field(default_factory=InMemoryJobQueue)
    registry: Registry = field(default_factory=Registry)
    events: list[str] = field(default_factory=list)
    running_now: int = 0
    most_at_once: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def worker(self) -> Worker:
        return Worker(self.store, self.queue, self.registry, rng=Zero())

    def submit(self, type_name: str, params: dict[str, Any] | None = None) -> Job:
        job = new_job(
            self.registry.get_type(type_name),
            params or {},
            owner="alice",
            now_ms=int(time.time() * 1000),
            retention_seconds=3600,
        )
        self.store.create(job)
        return job

    def deliver(self, job: Job, worker: Worker | None = None) -> bool:
        """One delivery of the job's message; True when the record is done."""
        record = QueueRecord(str(uuid.uuid4()), str(uuid.uuid4()), job.message().to_body())
        try:
            (worker or self.worker).process(record, lambda: 60_000)
        except RecordNotDoneError:
            return False
        return True

    def job(self, job_id: str) -> Job:
        found = self.store.get(job_id)
        assert found is not None
        return found


@pytest.fixture
def lab() -> Iterator[Lab]:
    lab = Lab()
    registry = lab.registry

    @job_type("recorded", backoff=INSTANT, into=registry)
    def recorded(params: Params, context: JobContext) -> dict[str, Any]:
        lab.events.append(f"ran {context.attempt}")
        return {"key": context.idempotency_key}

    @job_type("failing", max_attempts=3, backoff=INSTANT, into=registry)
    def failing(params: Params, context: JobContext) -> None:
        lab.events.append(f"ran {context.attempt}")
        raise RuntimeError(f"boom {context.attempt}")

    yield lab


# --- cancellation ---------------------------------------------------------------------------------


def test_a_job_cancelled_while_pending_never_runs_and_its_message_is_dropped(lab: Lab) -> None:
    # Given a pending job, cancelled by its owner
    job = lab.submit("recorded")
    cancelled = CancelService(lab.store).cancel("alice", job.job_id)
    assert cancelled.status is JobStatus.CANCELLED
    # When its message arrives
    done = lab.deliver(job)
    # Then it is dropped unrun, and the job stays cancelled with no attempt
    assert done and lab.events == []
    assert (lab.job(job.job_id).status, lab.job(job.job_id).attempts) == (JobStatus.CANCELLED, 0)


def test_a_job_cancelled_while_retrying_is_not_retried(lab: Lab) -> None:
    # Given a job whose first attempt failed and is waiting for its retry
    job = lab.submit("failing")
    assert not lab.deliver(job)
    assert lab.job(job.job_id).status is JobStatus.RETRYING
    # When it is cancelled, and its message comes back
    CancelService(lab.store).cancel("alice", job.job_id)
    assert lab.deliver(job)
    # Then it ran once only and ends cancelled
    assert lab.events == ["ran 1"]
    assert lab.job(job.job_id).status is JobStatus.CANCELLED


def test_cancelling_a_finished_job_is_refused_and_a_cancelled_one_is_answered_again(
    lab: Lab,
) -> None:
    service = CancelService(lab.store)
    done = lab.submit("recorded")
    lab.deliver(done)
    with pytest.raises(JobFinishedError):
        service.cancel("alice", done.job_id)
    pending = lab.submit("recorded")
    first = service.cancel("alice", pending.job_id)
    assert service.cancel("alice", pending.job_id) == first


def test_a_running_job_stops_at_its_next_check_and_ends_cancelled(lab: Lab) -> None:
    asked = threading.Event()

    @job_type("cooperative", into=lab.registry)
    def cooperative(params: Params, context: JobContext) -> str:
        CancelService(lab.store).cancel("alice", context.job_id)  # the owner, meanwhile
        assert lab.job(context.job_id).cancel_requested
        asked.set()
        context.check()
        lab.events.append("went on")
        return "done"

    # Given a running job whose owner asks it to cancel
    job = lab.submit("cooperative")
    # When its code checks
    done = lab.deliver(job)
    # Then it stops there, ends cancelled, and its record is done
    assert asked.is_set() and lab.events == [] and done
    stopped = lab.job(job.job_id)
    assert (stopped.status, stopped.cancel_requested) == (JobStatus.CANCELLED, True)


def test_a_job_asked_to_cancel_whose_attempt_fails_is_cancelled_not_retried(lab: Lab) -> None:
    @job_type("fails-after-cancel", backoff=INSTANT, into=lab.registry)
    def fails(params: Params, context: JobContext) -> None:
        CancelService(lab.store).cancel("alice", context.job_id)
        raise RuntimeError("failed anyway")

    job = lab.submit("fails-after-cancel")
    assert lab.deliver(job)
    assert lab.job(job.job_id).status is JobStatus.CANCELLED


def test_a_job_asked_to_cancel_that_returns_anyway_succeeds(lab: Lab) -> None:
    @job_type("ignores-cancel", into=lab.registry)
    def ignores(params: Params, context: JobContext) -> int:
        CancelService(lab.store).cancel("alice", context.job_id)
        return 7

    job = lab.submit("ignores-cancel")
    lab.deliver(job)
    done = lab.job(job.job_id)
    assert (done.status, done.result) == (JobStatus.SUCCEEDED, 7)


def test_a_cancel_racing_a_start_never_lets_a_cancelled_job_start(lab: Lab) -> None:
    # Given many pending jobs, each cancelled by its owner while a worker starts it
    service = CancelService(lab.store)
    jobs = [lab.submit("recorded") for _ in range(40)]

    def cancel(job_id: str, barrier: threading.Barrier) -> None:
        barrier.wait()
        # The job may have finished first: then the cancel is refused, as for any finished job.
        with contextlib.suppress(JobFinishedError):
            service.cancel("alice", job_id)

    for job in jobs:
        barrier = threading.Barrier(2)
        canceller = threading.Thread(target=cancel, args=(job.job_id, barrier))
        canceller.start()
        barrier.wait()
        lab.deliver(job)
        canceller.join()
    # Then every job either never started and is cancelled, or started first and was asked
    # to stop (finishing as its code decided): none was cancelled after an attempt began
    for job in jobs:
        final = lab.job(job.job_id)
        if final.attempts == 0:
            assert final.status is JobStatus.CANCELLED
        else:
            assert final.status in (JobStatus.SUCCEEDED, JobStatus.CANCELLED)


# --- progress, history, idempotency key -----------------------------------------------------------


def test_progress_is_stored_at_most_about_once_a_second_and_the_last_value_is_kept(
    lab: Lab,
) -> None:
    seen: list[Any] = []

    @job_type("counting", into=lab.registry)
    def counting(params: Params, context: JobContext) -> None:
        for done in range(1, 101):
            context.progress(done, 100, "counting")
        seen.append(lab.job(context.job_id).progress)

    job = lab.submit("counting")
    writes_before = lab.store.writes
    lab.deliver(job)
    # Then during the run only the first report was written (they came faster than a second),
    # and the job ended with the last one
    (during,) = seen
    assert during is not None and during.current == 1
    final = lab.job(job.job_id).progress
    assert final is not None and (final.current, final.total, final.message) == (
        100,
        100,
        "counting",
    )
    # start, one progress write, the outcome (which carried the last progress)
    assert lab.store.writes - writes_before == 3


def test_each_failed_attempt_is_in_the_history_with_its_attempt_number(lab: Lab) -> None:
    job = lab.submit("failing")
    while not lab.deliver(job):
        pass
    failed = lab.job(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert [(e.attempt, e.type, e.message) for e in failed.errors] == [
        (1, "RuntimeError", "boom 1"),
        (2, "RuntimeError", "boom 2"),
        (3, "RuntimeError", "boom 3"),
    ]


def test_the_history_keeps_the_last_ten_failures() -> None:
    from jobpipe.domain.job import MAX_ERRORS_KEPT, ErrorInfo

    store = InMemoryJobStore()
    lab = Lab(store=store)
    registry = lab.registry

    @job_type("fragile", max_attempts=12, into=registry)
    def fragile(params: Params) -> None:
        raise RuntimeError("no")

    job = lab.submit("fragile")
    now = int(time.time() * 1000)
    running = start(
        store, job.job_id, payload_hash=job.payload_hash, lease_expires_at=now, now_ms=now
    )
    for attempt in range(1, 12):
        del attempt
        running = fail(store, running, error=ErrorInfo("E", "x"), dead_lettered=False, now_ms=now)
        running = replay(store, job.job_id, now_ms=now)
        running = start(
            store, job.job_id, payload_hash=job.payload_hash, lease_expires_at=now, now_ms=now
        )
    assert len(lab.job(job.job_id).errors) == MAX_ERRORS_KEPT


def test_the_idempotency_key_is_stable_across_attempts_and_new_after_a_replay(lab: Lab) -> None:
    keys: list[str] = []

    @job_type("keyed", max_attempts=2, backoff=INSTANT, into=lab.registry)
    def keyed(params: Params, context: JobContext) -> None:
        keys.append(context.idempotency_key)
        raise RuntimeError("provider down")

    job = lab.submit("keyed")
    while not lab.deliver(job):
        pass
    replay(lab.store, job.job_id, now_ms=int(time.time() * 1000))
    while not lab.deliver(job):
        pass
    assert keys[0] == keys[1] != keys[2] == keys[3]


# --- time limits ----------------------------------------------------------------------------------


def test_a_soft_time_limit_is_raised_inside_a_sync_job_which_can_clean_up(lab: Lab) -> None:
    @job_type("slow", timeout=5, soft_timeout=0.05, backoff=INSTANT, into=lab.registry)
    def slow(params: Params) -> None:
        try:
            time.sleep(2)
        except SoftTimeLimitExceeded:
            lab.events.append("cleaned up")
            raise

    job = lab.submit("slow")
    lab.deliver(job)
    retrying = lab.job(job.job_id)
    # It is retried (transient), with the error on record
    assert lab.events == ["cleaned up"]
    assert retrying.status is JobStatus.RETRYING
    assert retrying.errors[-1].type == "SoftTimeLimitExceeded"


def test_a_type_may_list_the_soft_time_limit_as_permanent(lab: Lab) -> None:
    @job_type(
        "strict",
        timeout=5,
        soft_timeout=0.05,
        permanent=(SoftTimeLimitExceeded,),
        into=lab.registry,
    )
    def strict(params: Params) -> None:
        time.sleep(2)

    job = lab.submit("strict")
    lab.deliver(job)
    assert lab.job(job.job_id).status is JobStatus.FAILED


# --- async jobs -----------------------------------------------------------------------------------


def async_types(lab: Lab) -> None:
    @job_type("waits", timeout=5, into=lab.registry)
    async def waits(params: Params, context: JobContext) -> int:
        with lab.lock:
            lab.running_now += 1
            lab.most_at_once = max(lab.most_at_once, lab.running_now)
        await asyncio.sleep(0.2)
        with lab.lock:
            lab.running_now -= 1
        return context.attempt

    @job_type("soft-async", timeout=5, soft_timeout=0.05, backoff=INSTANT, into=lab.registry)
    async def soft_async(params: Params) -> None:
        try:
            await asyncio.sleep(2)
        except SoftTimeLimitExceeded:
            await asyncio.sleep(0)  # it may still await while it cleans up
            lab.events.append("cleaned up")
            raise

    @job_type("overruns", timeout=0.1, backoff=INSTANT, into=lab.registry)
    async def overruns(params: Params) -> None:
        await asyncio.sleep(2)


def test_async_jobs_of_a_batch_are_awaited_side_by_side_within_the_bound(lab: Lab) -> None:
    async_types(lab)
    jobs = [lab.submit("waits", {"i": i}) for i in range(15)]
    records = [QueueRecord(f"m{i}", f"r{i}", job.message().to_body()) for i, job in enumerate(jobs)]
    worker = Worker(lab.store, lab.queue, lab.registry, async_concurrency=10)
    results = worker.process_concurrently(records, lambda: 60_000)
    assert set(results.values()) == {None}
    assert all(lab.job(job.job_id).status is JobStatus.SUCCEEDED for job in jobs)
    # More than one at a time, never more than the bound
    assert 1 < lab.most_at_once <= 10


def test_a_soft_time_limit_is_raised_inside_an_async_job(lab: Lab) -> None:
    async_types(lab)
    job = lab.submit("soft-async")
    lab.deliver(job)
    assert lab.events == ["cleaned up"]
    assert lab.job(job.job_id).errors[-1].type == "SoftTimeLimitExceeded"


def test_an_async_job_past_its_hard_limit_is_no_longer_awaited(lab: Lab) -> None:
    async_types(lab)
    job = lab.submit("overruns")
    lab.deliver(job)
    failed = lab.job(job.job_id)
    assert failed.status is JobStatus.RETRYING
    assert failed.errors[-1].type == "TimeLimitExceeded"
