"""The job store contract, run against the DynamoDB adapter (on moto) and the in-memory fake:
every transition is one conditional write, illegal moves are refused, a missing job is never
created by a transition."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from jobpipe.adapters.dynamodb import DynamoDBJobStore
from jobpipe.adapters.memory import InMemoryJobStore
from jobpipe.domain.job import ErrorInfo, Job
from jobpipe.domain.states import JobStatus
from jobpipe.errors import IllegalTransitionError
from jobpipe.ports import JobStore
from tests.factories import (
    abandon,
    claim_stuck,
    fail,
    mark_dead_letter_sent,
    pending_job,
    replay,
    retry,
    start,
    succeed,
)

NOW = int(time.time() * 1000)
LEASE = NOW + 60_000
BOOM = ErrorInfo("ValueError", "boom")


RETENTION_DAYS = 2


@pytest.fixture(params=["dynamodb", "memory"])
def store(request: pytest.FixtureRequest) -> Iterator[JobStore]:
    if request.param == "memory":
        yield InMemoryJobStore(retention_days=RETENTION_DAYS)
        return
    aws = request.getfixturevalue("aws")
    yield DynamoDBJobStore(aws.table_name, retention_days=RETENTION_DAYS)


def new_job(max_attempts: int = 3, params: dict[str, Any] | None = None) -> Job:
    return pending_job(params=params, max_attempts=max_attempts, now_ms=NOW)


def started(store: JobStore, job: Job, *, lease: int = LEASE, now: int = NOW) -> Job:
    return start(
        store, job.job_id, payload_hash=job.payload_hash, lease_expires_at=lease, now_ms=now
    )


def test_a_created_job_reads_back_whole(store: JobStore) -> None:
    job = new_job(params={"nested": {"a": [1, 2.5, "x"]}, "unicode": "é"})
    store.create(job)
    assert store.get(job.job_id) == job


def test_a_result_of_exactly_its_budget_is_stored_whole_beside_the_largest_params(
    store: JobStore,
) -> None:
    from jobpipe.topology import TOPOLOGY

    # Given a running job whose params take nearly the whole params limit
    job = new_job(params={"blob": "é" * (TOPOLOGY.item.params_limit_bytes // 2 - 20)})
    store.create(job)
    running = started(store, job)
    # When it succeeds with a result of exactly its budget (less than the cap: the item is full)
    budget = store.result_budget(running)
    assert 0 < budget < TOPOLOGY.item.result_cap_bytes
    result = "ü" * ((budget - 2) // 2)
    succeed(store, running, result=result, now_ms=NOW + 1)
    # Then the result reads back whole
    done = store.get(job.job_id)
    assert done is not None and done.result == result


def test_a_small_job_has_the_whole_result_cap(store: JobStore) -> None:
    from jobpipe.topology import TOPOLOGY

    job = new_job()
    store.create(job)
    assert store.result_budget(started(store, job)) == TOPOLOGY.item.result_cap_bytes


def test_every_transition_keeps_the_job_for_the_retention_after_it(store: JobStore) -> None:
    # Given a job created long enough ago that its first retention is nearly over
    job = replace(new_job(), expires_at=NOW // 1000 + 60)
    store.create(job)

    def kept_until(at: int) -> int:
        return at // 1000 + RETENTION_DAYS * 86400

    # When it starts, is retried, fails, and is replayed, each later than the last
    running = started(store, job, now=NOW + 1000)
    retrying = retry(store, running, error=BOOM, next_attempt_at=NOW + 2000, now_ms=NOW + 2000)
    failed = fail(
        store,
        started(store, job, now=NOW + 3000),
        error=BOOM,
        dead_lettered=True,
        now_ms=NOW + 4000,
    )
    replayed = replay(store, job.job_id, now_ms=NOW + 5000)
    # Then each change keeps it for the retention counted from that change
    assert running.expires_at == kept_until(NOW + 1000)
    assert retrying.expires_at == kept_until(NOW + 2000)
    assert failed.expires_at == kept_until(NOW + 4000)
    assert replayed.expires_at == kept_until(NOW + 5000)
    assert store.get(job.job_id) == replayed


def test_a_dead_lettering_is_marked_sent_once_and_a_replay_clears_the_mark(
    store: JobStore,
) -> None:
    # Given a job failed and dead-lettered
    job = new_job()
    store.create(job)
    fail(store, started(store, job), error=BOOM, dead_lettered=True, now_ms=NOW)
    # When its DLQ copy is recorded as sent
    mark_dead_letter_sent(store, job.job_id, replays=0)
    # Then the job says so; a mark for another dead-lettering (another replay count) is ignored
    marked = store.get(job.job_id)
    assert marked is not None and marked.dead_letter_sent is True
    replayed = replay(store, job.job_id, now_ms=NOW + 1)
    assert replayed.dead_letter_sent is False
    mark_dead_letter_sent(store, job.job_id, replays=0)
    assert store.get(job.job_id) == replayed


def test_an_abandon_may_record_that_sqs_dead_lettered_the_message_itself(
    store: JobStore,
) -> None:
    job = new_job()
    store.create(job)
    abandoned = abandon(store, job.job_id, error=BOOM, now_ms=NOW, dead_letter_sent=True)
    assert (abandoned.dead_lettered, abandoned.dead_letter_sent) == (True, True)
    assert store.get(job.job_id) == abandoned


def test_create_never_overwrites(store: JobStore) -> None:
    job = new_job()
    store.create(job)
    with pytest.raises(IllegalTransitionError):
        store.create(job)


def test_start_counts_the_attempt_and_takes_a_lease(store: JobStore) -> None:
    job = new_job()
    store.create(job)
    running = started(store, job)
    assert running.status is JobStatus.RUNNING
    assert running.attempts == 1
    assert running.started_at == NOW
    assert running.lease_expires_at == LEASE


def test_a_running_job_with_a_live_lease_cannot_start_again(store: JobStore) -> None:
    job = new_job()
    store.create(job)
    started(store, job)
    with pytest.raises(IllegalTransitionError) as refused:
        started(store, job, now=NOW + 1)
    assert refused.value.current == "running"
    assert refused.value.job is not None and refused.value.job.attempts == 1


def test_a_running_job_whose_lease_expired_is_started_again(store: JobStore) -> None:
    # Given a job whose runner died (its lease, the Lambda's deadline, has passed)
    job = new_job()
    store.create(job)
    started(store, job, lease=NOW + 1000)
    # When another worker starts it after the deadline
    again = started(store, job, lease=NOW + 90_000, now=NOW + 2000)
    # Then it runs again as a new attempt
    assert again.status is JobStatus.RUNNING
    assert again.attempts == 2


def test_start_refuses_a_different_payload(store: JobStore) -> None:
    job = new_job()
    store.create(job)
    with pytest.raises(IllegalTransitionError) as refused:
        start(store, job.job_id, payload_hash="tampered", lease_expires_at=LEASE, now_ms=NOW)
    assert refused.value.job is not None and refused.value.job.status is JobStatus.PENDING


def test_start_refuses_when_attempts_are_used_up(store: JobStore) -> None:
    job = new_job(max_attempts=1)
    store.create(job)
    running = started(store, job)
    retry(store, running, error=BOOM, next_attempt_at=NOW, now_ms=NOW)
    with pytest.raises(IllegalTransitionError):
        started(store, job)


def test_succeed_stores_the_result(store: JobStore) -> None:
    job = new_job()
    store.create(job)
    running = started(store, job)
    done = succeed(store, running, result={"ok": [1, 2]}, now_ms=NOW + 5)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == {"ok": [1, 2]}
    assert done.completed_at == NOW + 5
    assert done.lease_expires_at is None
    assert store.get(job.job_id) == done


def test_retry_records_the_error_and_when_to_try_again(store: JobStore) -> None:
    job = new_job()
    store.create(job)
    running = started(store, job)
    retrying = retry(store, running, error=BOOM, next_attempt_at=NOW + 4000, now_ms=NOW)
    assert store.get(job.job_id) == retrying
    assert retrying.status is JobStatus.RETRYING
    assert retrying.next_attempt_at == NOW + 4000
    assert retrying.error == BOOM
    # and a retrying job starts again once it is due
    assert started(store, job, now=NOW + 4000).attempts == 2


def test_a_retry_does_not_start_before_it_is_due(store: JobStore) -> None:
    from jobpipe.domain.retry import EARLY_START_TOLERANCE_MS

    # Given a job whose retry is due in 60 s
    job = new_job()
    store.create(job)
    retry(store, started(store, job), error=BOOM, next_attempt_at=NOW + 60_000, now_ms=NOW)
    # When its message arrives early (SQS could not hide it for the whole backoff)
    with pytest.raises(IllegalTransitionError) as refused:
        started(store, job, now=NOW + 10_000)
    # Then the start is refused, and the refusal says when the retry is due
    assert refused.value.current == "retrying"
    assert refused.value.job is not None and refused.value.job.next_attempt_at == NOW + 60_000
    # But a message that arrives just before it is due starts it (SQS's clock is not ours)
    running = started(store, job, now=NOW + 60_000 - EARLY_START_TOLERANCE_MS)
    assert running.attempts == 2


def test_a_started_retry_no_longer_has_a_next_attempt_time(store: JobStore) -> None:
    # Given a job waiting for its retry
    job = new_job()
    store.create(job)
    retry(store, started(store, job), error=BOOM, next_attempt_at=NOW + 4000, now_ms=NOW)
    # When the retry starts
    running = started(store, job, now=NOW + 4000)
    # Then it is running with no next attempt pending, nor a completion time
    assert running.next_attempt_at is None and running.completed_at is None
    assert store.get(job.job_id) == running


def test_fail_marks_dead_lettered(store: JobStore) -> None:
    job = new_job()
    store.create(job)
    running = started(store, job)
    failed = fail(store, running, error=BOOM, dead_lettered=True, now_ms=NOW + 7)
    assert store.get(job.job_id) == failed
    assert failed.status is JobStatus.FAILED
    assert failed.dead_lettered
    assert failed.error == BOOM
    assert failed.completed_at == NOW + 7


def test_an_outcome_from_a_stale_attempt_is_refused(store: JobStore) -> None:
    # Given attempt 1's lease expired and attempt 2 took over
    job = new_job()
    store.create(job)
    first = started(store, job, lease=NOW + 1)
    started(store, job, now=NOW + 2)
    # When attempt 1's runner reports late, then its write is refused
    with pytest.raises(IllegalTransitionError):
        succeed(store, first, result=None, now_ms=NOW + 3)


@pytest.mark.parametrize("outcome", ["succeed", "retry", "fail"])
def test_outcomes_are_refused_unless_running(store: JobStore, outcome: str) -> None:
    job = new_job()
    store.create(job)
    with pytest.raises(IllegalTransitionError) as refused:
        _outcome(store, _as_running(job), outcome)
    assert refused.value.current == "pending"


@pytest.mark.parametrize("outcome", ["succeed", "retry", "fail"])
def test_no_backward_moves_from_terminal_states(store: JobStore, outcome: str) -> None:
    job = new_job()
    store.create(job)
    running = started(store, job)
    succeed(store, running, result=1, now_ms=NOW)
    with pytest.raises(IllegalTransitionError) as refused:
        _outcome(store, running, outcome)
    assert refused.value.current == "succeeded"
    with pytest.raises(IllegalTransitionError):
        started(store, job)
    with pytest.raises(IllegalTransitionError):
        replay(store, job.job_id, now_ms=NOW)


@pytest.mark.parametrize("transition", ["start", "succeed", "retry", "fail", "abandon", "replay"])
def test_a_transition_on_a_missing_job_never_creates_it(store: JobStore, transition: str) -> None:
    ghost = _as_running(new_job())
    job_id = ghost.job_id
    with pytest.raises(IllegalTransitionError) as refused:
        if transition == "start":
            start(store, job_id, payload_hash="h", lease_expires_at=LEASE, now_ms=NOW)
        elif transition == "abandon":
            abandon(store, job_id, error=BOOM, now_ms=NOW)
        elif transition == "replay":
            replay(store, job_id, now_ms=NOW)
        else:
            _outcome(store, ghost, transition)
    assert refused.value.current is None
    assert store.get(job_id) is None


def test_abandon_fails_a_job_from_any_non_terminal_state(store: JobStore) -> None:
    pending, running = new_job(), new_job()
    store.create(pending)
    store.create(running)
    started(store, running)
    for job in (pending, running):
        failed = abandon(store, job.job_id, error=BOOM, now_ms=NOW + 9)
        assert failed.status is JobStatus.FAILED and failed.dead_lettered
        assert failed.completed_at == NOW + 9 and failed.next_attempt_at is None
        assert store.get(job.job_id) == failed


def test_replay_gives_a_failed_job_fresh_attempts_and_keeps_the_record(store: JobStore) -> None:
    job = new_job(max_attempts=1)
    store.create(job)
    running = started(store, job)
    fail(store, running, error=BOOM, dead_lettered=True, now_ms=NOW)
    replayed = replay(store, job.job_id, now_ms=NOW + 10)
    assert replayed.status is JobStatus.PENDING
    assert replayed.attempts == 0
    assert replayed.replays == 1
    assert replayed.prior_attempts == 1
    assert not replayed.dead_lettered
    assert replayed.error is None
    assert replayed.completed_at is None and replayed.started_at is None
    assert store.get(job.job_id) == replayed
    # it can run again
    assert started(store, job).attempts == 1


def test_delete_pending_only_removes_a_job_that_never_started(store: JobStore) -> None:
    fresh, begun = new_job(), new_job()
    store.create(fresh)
    store.create(begun)
    started(store, begun)
    assert store.delete_pending(fresh.job_id) is True
    assert store.get(fresh.job_id) is None
    assert store.delete_pending(begun.job_id) is False
    assert store.get(begun.job_id) is not None


def test_an_idempotency_key_is_claimed_once(store: JobStore) -> None:
    assert store.claim_key("idem#k", "JOB1", "hash-a", NOW) is None
    earlier = store.claim_key("idem#k", "JOB2", "hash-b", NOW + 1)
    assert earlier is not None
    assert (earlier.job_id, earlier.request_hash) == ("JOB1", "hash-a")


def test_an_expired_job_is_not_readable(store: JobStore) -> None:
    job = new_job()
    expired = Job(**{**job.__dict__, "expires_at": int(time.time()) - 1})
    store.create(expired)
    assert store.get(job.job_id) is None


def _as_running(job: Job) -> Job:
    """`job` as a worker that believes it started attempt 1 would hold it."""
    return replace(job, status=JobStatus.RUNNING, attempts=1)


def _outcome(store: JobStore, running: Job, outcome: str) -> None:
    if outcome == "succeed":
        succeed(store, running, result=None, now_ms=NOW)
    elif outcome == "retry":
        retry(store, running, error=BOOM, next_attempt_at=NOW, now_ms=NOW)
    else:
        fail(store, running, error=BOOM, dead_lettered=False, now_ms=NOW)


# --- stuck jobs (the reaper's index queries and claim) ---------------------------------------


def test_a_retrying_job_is_listed_as_waiting_from_when_its_retry_is_due(store: JobStore) -> None:
    # Given a job whose first attempt failed, retry due at NOW + 4000
    job = new_job()
    store.create(job)
    retry(store, started(store, job), error=BOOM, next_attempt_at=NOW + 4000, now_ms=NOW)
    # When waiting jobs are listed before and after the retry is due
    before = list(store.pending_before(job.type, before_ms=NOW + 4000, limit=10))
    after = list(store.pending_before(job.type, before_ms=NOW + 4001, limit=10))
    # Then it is listed only once its retry is overdue, and can be claimed like a pending job
    assert before == []
    assert [(s.job_id, s.since) for s in after] == [(job.job_id, NOW + 4000)]
    claimed = claim_stuck(store, after[0], now_ms=NOW + 5000)
    assert claimed.status is JobStatus.RETRYING
    # And once claimed (its message is sent again) its next attempt is due at the claim
    assert store.get(job.job_id) == claimed
    assert claimed.next_attempt_at == NOW + 5000


def test_only_pending_jobs_are_listed_as_pending_and_a_start_takes_them_out(
    store: JobStore,
) -> None:
    # Given two pending jobs, one of which is then started
    waiting, taken = new_job(), new_job()
    store.create(waiting)
    store.create(taken)
    started(store, taken)
    # When the pending jobs of the type created before now + 1 ms are listed
    found = list(store.pending_before(waiting.type, before_ms=NOW + 1, limit=10))
    # Then only the one still pending is, since its creation
    assert [(s.job_id, s.status, s.since) for s in found] == [
        (waiting.job_id, JobStatus.PENDING, NOW)
    ]
    # And another type's listing, or an earlier cut-off, finds nothing
    assert list(store.pending_before("other", before_ms=NOW + 1, limit=10)) == []
    assert list(store.pending_before(waiting.type, before_ms=NOW, limit=10)) == []


def test_only_running_jobs_with_a_lease_expired_before_the_cut_off_are_listed(
    store: JobStore,
) -> None:
    # Given a job running under a lease, one retrying and one succeeded
    running, retrying, done = new_job(), new_job(), new_job()
    for job in (running, retrying, done):
        store.create(job)
    retry(store, started(store, retrying), error=BOOM, next_attempt_at=NOW, now_ms=NOW)
    succeed(store, started(store, done), result=None, now_ms=NOW)
    started(store, running)
    # When expired leases are listed, before and after the lease's end
    before = list(store.expired_leases(running.type, before_ms=LEASE, limit=10))
    after = list(store.expired_leases(running.type, before_ms=LEASE + 1, limit=10))
    # Then only the running job is, once its lease is before the cut-off, with its attempts
    assert before == []
    assert [(s.job_id, s.since, s.attempts, s.max_attempts) for s in after] == [
        (running.job_id, LEASE, 1, 3)
    ]


def test_a_claim_moves_the_marker_once_and_refuses_a_stale_view(store: JobStore) -> None:
    # Given a pending job, as a listing saw it
    job = new_job()
    store.create(job)
    (seen,) = store.pending_before(job.type, before_ms=NOW + 1, limit=10)
    # When it is claimed
    claimed = claim_stuck(store, seen, now_ms=NOW + 5)
    # Then it is the whole job, still pending, now pending since the claim
    assert claimed.job_id == job.job_id and claimed.status is JobStatus.PENDING
    assert list(store.pending_before(job.type, before_ms=NOW + 5, limit=10)) == []
    # And a second claim from the same (stale) view is refused
    with pytest.raises(IllegalTransitionError):
        claim_stuck(store, seen, now_ms=NOW + 6)


def test_a_running_job_is_claimed_only_with_attempts_left_and_abandoned_only_by_its_lease(
    store: JobStore,
) -> None:
    # Given a job running its only attempt under a lease that has expired
    job = new_job(max_attempts=1)
    store.create(job)
    started(store, job)
    (seen,) = store.expired_leases(job.type, before_ms=LEASE + 1, limit=10)
    assert not seen.attempts_left
    # Then it cannot be claimed for a re-enqueue (it could never start again)
    with pytest.raises(IllegalTransitionError):
        claim_stuck(store, seen, now_ms=LEASE + 1)
    # And an abandon guarded by another lease is refused, by its own lease applied
    with pytest.raises(IllegalTransitionError):
        abandon(store, job.job_id, error=BOOM, now_ms=LEASE + 1, lease_expires_at=LEASE + 7)
    failed = abandon(store, job.job_id, error=BOOM, now_ms=LEASE + 1, lease_expires_at=LEASE)
    assert failed.status is JobStatus.FAILED and failed.dead_lettered is True
    assert list(store.expired_leases(job.type, before_ms=LEASE + 10, limit=10)) == []


def test_a_replayed_job_is_pending_again_since_its_replay(store: JobStore) -> None:
    # Given a job that failed and is replayed
    job = new_job()
    store.create(job)
    abandon(store, job.job_id, error=BOOM, now_ms=NOW)
    replay(store, job.job_id, now_ms=NOW + 10)
    # Then the pending listing shows it since the replay
    (seen,) = store.pending_before(job.type, before_ms=NOW + 11, limit=10)
    assert seen.since == NOW + 10


def test_listings_are_bounded_by_the_limit_oldest_first(store: JobStore) -> None:
    # Given five pending jobs created a millisecond apart
    jobs = [pending_job(now_ms=NOW + i) for i in range(5)]
    for job in jobs:
        store.create(job)
    # When at most three are listed
    found = list(store.pending_before("echo", before_ms=NOW + 10, limit=3))
    # Then the three oldest are
    assert [s.job_id for s in found] == [j.job_id for j in jobs[:3]]


# --- cancellation and progress -------------------------------------------------------------------


def test_a_pending_job_is_cancelled_at_once_and_leaves_the_reapers_view(store: JobStore) -> None:
    from jobpipe.domain.states import CANCEL

    job = new_job()
    store.create(job)
    cancelled = store.apply(CANCEL, job.job_id, now=NOW + 1)
    assert (cancelled.status, cancelled.cancel_requested) == (JobStatus.CANCELLED, True)
    assert cancelled.completed_at == NOW + 1
    assert list(store.pending_before(job.type, before_ms=NOW + 10**9, limit=10)) == []
    # and a cancelled job never starts
    with pytest.raises(IllegalTransitionError) as refused:
        started(store, job, now=NOW + 2)
    assert refused.value.current == "cancelled"


def test_a_running_job_is_asked_to_cancel_and_its_failures_no_longer_retry(
    store: JobStore,
) -> None:
    from jobpipe.domain.states import CANCEL, CANCEL_RUN, REQUEST_CANCEL

    # Given a running job
    job = new_job()
    store.create(job)
    running = started(store, job)
    # When a cancel is asked for, it is not cancelled at once, only asked
    with pytest.raises(IllegalTransitionError):
        store.apply(CANCEL, job.job_id, now=NOW + 1)
    asked = store.apply(REQUEST_CANCEL, job.job_id)
    assert (asked.status, asked.cancel_requested) == (JobStatus.RUNNING, True)
    # Then a retry of its attempt is refused (it must end), and it ends cancelled
    with pytest.raises(IllegalTransitionError):
        retry(store, running, error=BOOM, next_attempt_at=NOW + 5, now_ms=NOW + 2)
    ended = store.apply(CANCEL_RUN, running, attempt=running.attempts, progress=None, now=NOW + 3)
    assert ended.status is JobStatus.CANCELLED
    stored = store.get(job.job_id)
    assert stored is not None and (stored.status, stored.cancel_requested) == (
        JobStatus.CANCELLED,
        True,
    )


def test_a_job_asked_to_cancel_whose_runner_died_is_never_started_again(store: JobStore) -> None:
    from jobpipe.domain.states import CANCEL_STOPPED, REQUEST_CANCEL

    job = new_job()
    store.create(job)
    started(store, job, lease=NOW + 10)
    store.apply(REQUEST_CANCEL, job.job_id)
    with pytest.raises(IllegalTransitionError):
        started(store, job, now=NOW + 100)  # the lease has passed, but it was asked to cancel
    with pytest.raises(IllegalTransitionError):
        store.apply(CANCEL_STOPPED, job.job_id, lease=NOW + 11, now=NOW + 100)  # not that lease
    stopped = store.apply(CANCEL_STOPPED, job.job_id, lease=NOW + 10, now=NOW + 100)
    assert stopped.status is JobStatus.CANCELLED


def test_progress_is_stored_for_the_running_attempt_and_refused_once_a_cancel_is_asked(
    store: JobStore,
) -> None:
    from jobpipe.domain.states import PROGRESS, REQUEST_CANCEL

    job = new_job()
    store.create(job)
    running = started(store, job)
    entry = {"current": 3, "total": 10, "message": "rows", "at": NOW}
    store.apply(PROGRESS, running, attempt=running.attempts, progress=entry)
    stored = store.get(job.job_id)
    assert stored is not None and stored.progress is not None
    assert (stored.progress.current, stored.progress.total, stored.progress.message) == (
        3,
        10,
        "rows",
    )
    store.apply(REQUEST_CANCEL, job.job_id)
    with pytest.raises(IllegalTransitionError) as refused:
        store.apply(PROGRESS, running, attempt=running.attempts, progress=entry)
    assert refused.value.job is not None and refused.value.job.cancel_requested


def test_a_stale_attempt_cannot_write_progress(store: JobStore) -> None:
    from jobpipe.domain.states import PROGRESS

    job = new_job()
    store.create(job)
    first = started(store, job, lease=NOW + 1)
    started(store, job, now=NOW + 2)  # its runner died; a second attempt took over
    with pytest.raises(IllegalTransitionError):
        store.apply(PROGRESS, first, attempt=first.attempts, progress={"current": 1, "at": NOW})


def _scheduled(run_at: int) -> Job:
    return replace(new_job(), status=JobStatus.SCHEDULED, run_at=run_at)


def test_a_scheduled_job_reads_back_with_its_time_and_is_listed_as_waiting_from_then(
    store: JobStore,
) -> None:
    # Given a job scheduled an hour from now
    run_at = NOW + 3_600_000
    job = _scheduled(run_at)
    store.create(job)
    # Then it reads back scheduled, with its time
    read = store.get(job.job_id)
    assert read is not None and (read.status, read.run_at) == (JobStatus.SCHEDULED, run_at)
    # And the reaper's index lists it only from its time on, not from its creation
    assert list(store.pending_before(job.type, before_ms=run_at, limit=10)) == []
    (listed,) = store.pending_before(job.type, before_ms=run_at + 1, limit=10)
    assert (listed.job_id, listed.since) == (job.job_id, run_at)


def test_a_scheduled_job_starts_only_once_due_and_leaves_the_index(store: JobStore) -> None:
    job = _scheduled(NOW + 5_000)
    store.create(job)
    # Given its message early / Then START is refused and it stays scheduled
    with pytest.raises(IllegalTransitionError):
        started(store, job, now=NOW)
    # Given its time has come / Then it starts straight from scheduled, out of the index
    running = started(store, job, now=NOW + 5_000)
    assert (running.status, running.attempts, running.run_at) == (JobStatus.RUNNING, 1, NOW + 5_000)
    assert list(store.pending_before(job.type, before_ms=NOW + 10_000, limit=10)) == []


def test_delete_pending_removes_a_scheduled_job_that_never_started(store: JobStore) -> None:
    job = _scheduled(NOW + 3_600_000)
    store.create(job)
    assert store.delete_pending(job.job_id) is True
    assert store.get(job.job_id) is None
