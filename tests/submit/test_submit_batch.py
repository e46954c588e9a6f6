"""Submitting many jobs at once on the in-memory fakes: one answer per job in order, nothing
written for a refused job, and a failure part-way that leaves every job queued or repairable."""

from __future__ import annotations

import pytest

from jobpipe.adapters.memory import InMemoryJobQueue, InMemoryJobStore
from jobpipe.domain.job import Job
from jobpipe.domain.registry import load_job_types
from jobpipe.errors import (
    IdempotencyConflictError,
    InvalidParamsError,
    ServiceUnavailableError,
    UnknownJobTypeError,
)
from jobpipe.submit.service import SubmitRequest, SubmitService, Submitted
from tests.conftest import Aws


def request(n: int, key: str | None = None, job_type: str = "echo") -> SubmitRequest:
    return SubmitRequest(owner="alice", type=job_type, params={"n": n}, idempotency_key=key)


class Counting(InMemoryJobStore):
    """Counts the store's write requests: one per `create`, one per `create_many`."""

    def __init__(self, unsure: int = 0) -> None:
        super().__init__()
        self.creates = 0
        self.batches = 0
        self.unsure = unsure

    def create(self, job: Job) -> None:
        self.creates += 1
        super().create(job)

    def create_many(self, jobs: list[Job]) -> set[str]:
        self.batches += 1
        # The first `unsure` jobs are written, but the store cannot say so.
        super().create_many(jobs)
        return {job.job_id for job in jobs[: self.unsure]}


class SendFailsFor(InMemoryJobQueue):
    """SendMessageBatch leaves the entries at these positions unsent."""

    def __init__(self, unsent: set[int]) -> None:
        super().__init__()
        self.unsent = unsent
        self.batches = 0

    def send_many(self, bodies: list[str]) -> set[int]:
        self.batches += 1
        for index, body in enumerate(bodies):
            if index not in self.unsent:
                self.send(body)
        return set(self.unsent) & set(range(len(bodies)))


def test_each_job_is_answered_in_its_place_and_refused_ones_write_nothing() -> None:
    # Given a batch with an unknown type and invalid params between good jobs
    store, queue = Counting(), InMemoryJobQueue()
    service = SubmitService(store, queue, load_job_types())
    batch = [
        request(1),
        request(2, job_type="nope"),
        SubmitRequest(owner="alice", type="sleep", params={"seconds": "soon"}),
        request(3),
    ]
    # When it is submitted
    answers = service.submit_many(batch)
    # Then the answers are in order: the job, or the error the job would raise alone
    assert isinstance(answers[0], Submitted) and isinstance(answers[3], Submitted)
    assert isinstance(answers[1], UnknownJobTypeError)
    assert isinstance(answers[2], InvalidParamsError)
    # And only the two good jobs are written (in one batch write) and queued
    assert sorted(store.jobs) == sorted([answers[0].job.job_id, answers[3].job.job_id])
    assert store.batches == 1 and store.creates == 0
    assert len(queue.messages) == 2


def test_keyed_jobs_take_the_conditional_path_and_a_reused_key_conflicts() -> None:
    store, queue = Counting(), SendFailsFor(set())
    service = SubmitService(store, queue, load_job_types())
    # Given two keyed jobs, the second reusing the first's key with another body, and one more
    answers = service.submit_many([request(1, "k"), request(2, "k"), request(3)])
    # Then the keyed job is written on its own, conditionally; the reused key is a 409
    assert isinstance(answers[0], Submitted) and isinstance(answers[2], Submitted)
    assert isinstance(answers[1], IdempotencyConflictError)
    assert store.creates == 1 and store.batches == 1
    # And every message went out in one batch
    assert queue.batches == 1 and len(queue.messages) == 2
    # And the same key and body again is the same job
    (again,) = service.submit_many([request(1, "k")])
    assert isinstance(again, Submitted) and again.job.job_id == answers[0].job.job_id
    assert not again.created


def test_an_unkeyed_job_whose_message_was_not_sent_is_removed_and_answers_503() -> None:
    # Given SQS not taking the second message of three
    store, queue = InMemoryJobStore(), SendFailsFor({1})
    service = SubmitService(store, queue, load_job_types())
    answers = service.submit_many([request(1), request(2), request(3)])
    # Then that job answers 503 and is gone; the others are written and queued
    assert isinstance(answers[1], ServiceUnavailableError)
    kept = [a.job.job_id for a in answers if isinstance(a, Submitted)]
    assert sorted(store.jobs) == sorted(kept) and len(kept) == 2
    assert len(queue.messages) == 2


def test_a_keyed_job_whose_message_was_not_sent_stays_and_the_same_request_repairs_it() -> None:
    # Given SQS not taking the message of a keyed job
    store, queue = InMemoryJobStore(), SendFailsFor({0})
    service = SubmitService(store, queue, load_job_types())
    (first,) = service.submit_many([request(1, "k")])
    assert isinstance(first, ServiceUnavailableError)
    (job_id,) = store.jobs
    # When the same batch is sent again, SQS taking it this time
    queue.unsent = set()
    (retried,) = service.submit_many([request(1, "k")])
    # Then the job written the first time is the answer, and it is queued
    assert isinstance(retried, Submitted) and retried.job.job_id == job_id
    assert len(queue.messages) == 1


def test_jobs_the_store_could_not_confirm_are_removed_and_answer_503() -> None:
    # Given a batch write that cannot confirm the first of two jobs
    store, queue = Counting(unsure=1), InMemoryJobQueue()
    service = SubmitService(store, queue, load_job_types())
    answers = service.submit_many([request(1), request(2)])
    # Then that one answers 503, is not queued, and is not left behind
    assert isinstance(answers[0], ServiceUnavailableError)
    assert isinstance(answers[1], Submitted)
    assert list(store.jobs) == [answers[1].job.job_id]
    assert len(queue.messages) == 1


@pytest.mark.parametrize(("count", "writes", "sends"), [(1, 1, 1), (26, 2, 3), (100, 4, 10)])
def test_a_batch_is_written_25_and_sent_10_a_request(
    aws: Aws, count: int, writes: int, sends: int
) -> None:
    from collections import Counter
    from typing import Any

    from jobpipe.adapters.dynamodb import DynamoDBJobStore
    from jobpipe.adapters.sqs import SQSJobQueue

    # Given the real adapters on moto, their AWS requests counted
    store, queue = DynamoDBJobStore(aws.table_name), SQSJobQueue(aws.queue_url, aws.dlq_url)
    calls: Counter[str] = Counter()

    def count_call(event_name: str, **_: Any) -> None:
        calls[event_name.split(".")[2]] += 1

    for client in (store._client, queue._client):
        client.meta.events.register("before-call.*.*", count_call)
    service = SubmitService(store, queue, load_job_types())
    # When `count` unkeyed jobs are submitted at once
    answers = service.submit_many([request(n) for n in range(count)])
    # Then each is queued, in a BatchWriteItem per 25 and a SendMessageBatch per 10, and nothing
    # else
    assert all(isinstance(a, Submitted) for a in answers)
    assert calls == Counter({"BatchWriteItem": writes, "SendMessageBatch": sends})
    assert aws.queue_depth() == count
