"""The reaper on the in-memory fakes: a backlog is not a lost message, and one busy job type
cannot starve the others of the reaper's bounded work."""

from __future__ import annotations

import time

from jobpipe.adapters.memory import InMemoryJobQueue, InMemoryJobStore
from jobpipe.errors import QueueError
from jobpipe.reaper.service import Action, Reaper, ReaperPolicy
from tests.factories import pending_job

GRACE_MS = 15 * 60 * 1000
POLICY = ReaperPolicy(running_grace_ms=GRACE_MS, pending_grace_ms=GRACE_MS, max_jobs_per_run=200)


def pending_jobs(store: InMemoryJobStore, job_type: str, count: int, since_ms: int) -> list[str]:
    ids = []
    for _ in range(count):
        job = pending_job(job_type, now_ms=since_ms)
        store.create(job)
        ids.append(job.job_id)
    return ids


def test_one_busy_type_does_not_starve_another_of_the_reapers_work() -> None:
    # Given 300 stuck jobs of type "alpha" and 10 of "beta", and a bound of 200 jobs a run
    now = time.time()
    store, queue = InMemoryJobStore(), InMemoryJobQueue()
    long_ago = int((now - 3600) * 1000)
    pending_jobs(store, "alpha", 300, long_ago)
    beta = pending_jobs(store, "beta", 10, long_ago)
    # When the reaper runs once
    report = Reaper(store, queue, ["alpha", "beta"], policy=POLICY, clock=lambda: now).run()
    # Then every "beta" job is requeued, and "alpha" has the rest of the bound
    requeued = report.of(Action.REQUEUED)
    assert set(beta) <= set(requeued)
    assert len(requeued) == 200


def test_jobs_waiting_in_a_backlog_are_left_alone_until_they_wait_longer_than_it() -> None:
    # Given jobs pending for 20 minutes, in a queue whose oldest message has waited 30 minutes
    now = time.time()
    store, queue = InMemoryJobStore(), InMemoryJobQueue()
    waiting = pending_jobs(store, "echo", 3, int((now - 20 * 60) * 1000))
    queue.oldest_age = 30 * 60
    reaper = Reaper(store, queue, ["echo"], policy=POLICY, clock=lambda: now)
    # When the reaper runs / Then it re-sends none of them: they are in line, not lost
    assert reaper.run().of(Action.REQUEUED) == []
    assert queue.messages == []
    # And once the queue has drained (its oldest message is young), they are stuck: requeued
    queue.oldest_age = 0.0
    assert sorted(reaper.run().of(Action.REQUEUED)) == sorted(waiting)


def test_when_the_queue_cannot_say_how_old_its_backlog_is_an_hour_is_assumed() -> None:
    class Unknowable(InMemoryJobQueue):
        def oldest_message_age_seconds(self) -> float | None:
            raise QueueError("SQS GetQueueAttributes failed: throttled")

    now = time.time()
    store, queue = InMemoryJobStore(), Unknowable()
    recent = pending_jobs(store, "echo", 1, int((now - 30 * 60) * 1000))
    old = pending_jobs(store, "echo", 1, int((now - 90 * 60) * 1000))
    report = Reaper(store, queue, ["echo"], policy=POLICY, clock=lambda: now).run()
    assert report.of(Action.REQUEUED) == old
    assert recent[0] not in report.of(Action.REQUEUED)


def test_a_job_asked_to_cancel_whose_runner_died_ends_cancelled_not_requeued() -> None:
    from jobpipe.domain.states import REQUEST_CANCEL
    from tests.factories import start

    # Given a running job asked to cancel, whose worker died (its lease passed long ago)
    now = time.time()
    store, queue = InMemoryJobStore(), InMemoryJobQueue()
    (job_id,) = pending_jobs(store, "echo", 1, int((now - 7200) * 1000))
    job = store.get(job_id)
    assert job is not None
    lease = int((now - 3600) * 1000)
    start(store, job_id, payload_hash=job.payload_hash, lease_expires_at=lease, now_ms=lease - 1)
    store.apply(REQUEST_CANCEL, job_id)
    # When the reaper runs
    report = Reaper(store, queue, ["echo"], policy=POLICY, clock=lambda: now).run()
    # Then it ends the job cancelled instead of sending it to run again
    assert report.of(Action.CANCELLED) == [job_id]
    assert queue.messages == []
    stopped = store.get(job_id)
    assert stopped is not None and stopped.status.value == "cancelled"
