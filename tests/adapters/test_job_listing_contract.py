"""Listing and batch writes, run against the DynamoDB adapter (on moto) and the in-memory fake:
newest first through the listing indexes, filters that may leave a page short, a cursor that
continues where the page ended, and writes of many new jobs at once."""

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
from jobpipe.ports import JobQuery, JobStore
from tests.factories import fail, pending_job, start, succeed

NOW = int(time.time() * 1000)


@pytest.fixture(params=["dynamodb", "memory"])
def store(request: pytest.FixtureRequest) -> Iterator[JobStore]:
    if request.param == "memory":
        yield InMemoryJobStore()
        return
    aws = request.getfixturevalue("aws")
    yield DynamoDBJobStore(aws.table_name)


def jobs_in_order(count: int, *, owner: str = "alice", job_type: str = "echo") -> list[Job]:
    """New jobs, oldest first (their ids sort in this order)."""
    made = [pending_job(job_type, {"i": i}, owner=owner, now_ms=NOW) for i in range(count)]
    ids = sorted(job.job_id for job in made)
    return [replace(job, job_id=job_id) for job, job_id in zip(made, ids, strict=True)]


def ids(jobs: list[Job]) -> list[str]:
    return [job.job_id for job in jobs]


def test_an_owners_jobs_are_listed_newest_first_and_no_one_elses(store: JobStore) -> None:
    # Given Alice's jobs and one of Bob's
    alices = jobs_in_order(12)
    store.create_many(alices)
    store.create(pending_job(owner="bob"))
    # When Alice's are listed
    page = store.list_jobs(JobQuery(owner="alice", limit=50))
    # Then all of hers come back, newest first, and none of Bob's
    assert ids(page.jobs) == ids(alices)[::-1]
    assert page.next_before is None


def test_a_cursor_continues_where_the_page_ended_until_no_job_is_left(store: JobStore) -> None:
    # Given 25 jobs (spread over every shard of the owner's partition)
    jobs = jobs_in_order(25)
    store.create_many(jobs)
    # When they are listed 10 at a time, each page from where the last ended
    seen: list[str] = []
    before: str | None = None
    pages = 0
    while True:
        page = store.list_jobs(JobQuery(owner="alice", limit=10, before=before))
        seen += ids(page.jobs)
        pages += 1
        if page.next_before is None:
            break
        before = page.next_before
    # Then every job came once, newest first, in three pages
    assert seen == ids(jobs)[::-1]
    assert pages == 3


def test_every_owners_jobs_are_listed_through_the_time_index(store: JobStore) -> None:
    alice, bob = jobs_in_order(3), jobs_in_order(3, owner="bob")
    store.create_many([*alice, *bob])
    page = store.list_jobs(JobQuery(owner=None, limit=50))
    assert ids(page.jobs) == sorted(ids(alice) + ids(bob), reverse=True)


def test_type_and_status_filters_combine(store: JobStore) -> None:
    # Given echo and sleep jobs, one echo succeeded and one sleep failed
    echoes, sleeps = jobs_in_order(3), jobs_in_order(3, job_type="sleep")
    store.create_many([*echoes, *sleeps])
    done = succeed(store, _started(store, echoes[1]), result={"ok": True}, now_ms=NOW + 2)
    failed = fail(
        store,
        _started(store, sleeps[0]),
        error=ErrorInfo("ValueError", "boom"),
        dead_lettered=False,
        now_ms=NOW + 2,
    )
    # When they are listed by type, by status, and by both
    by_type = store.list_jobs(JobQuery(owner="alice", job_type="sleep"))
    by_status = store.list_jobs(JobQuery(owner="alice", statuses=frozenset({JobStatus.PENDING})))
    both = store.list_jobs(
        JobQuery(owner="alice", job_type="echo", statuses=frozenset({JobStatus.SUCCEEDED}))
    )
    # Then each answers exactly its jobs, with their current status
    assert ids(by_type.jobs) == ids(sleeps)[::-1]
    assert failed.job_id in ids(by_type.jobs)
    assert set(ids(by_status.jobs)) == set(ids(echoes + sleeps)) - {done.job_id, failed.job_id}
    assert [(j.job_id, j.status) for j in both.jobs] == [(done.job_id, JobStatus.SUCCEEDED)]


def test_a_filter_that_matches_little_answers_a_short_page_with_a_cursor(
    store: JobStore,
) -> None:
    # Given 30 echo jobs and, older than all of them, one sleep job
    store.create_many(jobs_in_order(1, job_type="sleep"))
    store.create_many(jobs_in_order(30))
    # When sleep jobs are listed looking at no more than 20 index entries a page
    first = store.list_jobs(JobQuery(owner="alice", job_type="sleep", examine=20))
    second = store.list_jobs(
        JobQuery(owner="alice", job_type="sleep", examine=20, before=first.next_before)
    )
    # Then the first page is empty but says where to go on, and the second finds the job
    assert first.jobs == [] and first.examined == 20 and first.next_before is not None
    assert [job.type for job in second.jobs] == ["sleep"] and second.next_before is None


def test_listed_jobs_carry_no_params_or_result(store: JobStore) -> None:
    job = jobs_in_order(1)[0]
    store.create(job)
    succeed(store, _started(store, job), result={"big": "x" * 1000}, now_ms=NOW + 2)
    (listed,) = store.list_jobs(JobQuery(owner="alice")).jobs
    assert listed.params == {} and listed.result is None
    assert listed.status is JobStatus.SUCCEEDED and listed.attempts == 1


def test_an_expired_job_is_not_listed(store: JobStore) -> None:
    kept, expired = jobs_in_order(2)
    store.create_many([kept, replace(expired, expires_at=NOW // 1000 - 10)])
    assert ids(store.list_jobs(JobQuery(owner="alice")).jobs) == [kept.job_id]


def test_many_new_jobs_are_written_and_read_back_whole(store: JobStore) -> None:
    # Given more jobs than one BatchWriteItem takes
    jobs = jobs_in_order(60)
    # When they are written at once / Then every one was written, and reads back whole
    assert store.create_many(jobs) == set()
    assert all(store.get(job.job_id) == job for job in jobs)


def _started(store: JobStore, job: Job) -> Job:
    return start(
        store, job.job_id, payload_hash=job.payload_hash, lease_expires_at=NOW + 60_000, now_ms=NOW
    )


class UnprocessedOnce:
    """BatchWriteItem that leaves the last put of every request unprocessed, `times` times."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.requests: list[int] = []

    def batch_write_item(self, **request: Any) -> dict[str, Any]:
        ((table, puts),) = request["RequestItems"].items()
        self.requests.append(len(puts))
        if self.times <= 0:
            return {"UnprocessedItems": {}}
        self.times -= 1
        return {"UnprocessedItems": {table: puts[-1:]}}


def test_puts_dynamodb_left_unprocessed_are_sent_again_and_reported_when_they_stay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import jobpipe.adapters.dynamodb as dynamodb

    monkeypatch.setattr(dynamodb, "BATCH_BACKOFF_SECONDS", 0.0)
    jobs = jobs_in_order(30)
    # Given DynamoDB leaving one put of each request unprocessed, twice
    flaky = UnprocessedOnce(times=2)
    store = DynamoDBJobStore("t", client=flaky)  # type: ignore[arg-type]
    # When 30 jobs are written / Then the unprocessed put is sent again until taken: all written
    assert store.create_many(jobs) == set()
    assert flaky.requests == [25, 1, 1, 5]
    # And a put that stays unprocessed past the retries is reported as not known to be written
    stuck = UnprocessedOnce(times=100)
    store = DynamoDBJobStore("t", client=stuck)  # type: ignore[arg-type]
    assert store.create_many(jobs[:3]) == {jobs[2].job_id}
    assert len(stuck.requests) == dynamodb.BATCH_RETRIES + 1
