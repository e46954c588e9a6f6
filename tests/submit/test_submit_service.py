"""The submit service on the in-memory fakes: what it writes and queues when requests with the
same Idempotency-Key race each other, and how it measures the params it stores."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import BaseModel

from jobpipe.adapters.memory import InMemoryJobQueue, InMemoryJobStore
from jobpipe.domain.job import Job
from jobpipe.domain.registry import Registry, job_type, load_job_types
from jobpipe.errors import (
    InvalidParamsError,
    ParamsTooLargeError,
    QueueError,
    ServiceUnavailableError,
)
from jobpipe.submit.service import SubmitRequest, SubmitService

REQUEST = SubmitRequest(owner="alice", type="echo", params={"n": 1}, idempotency_key="order-42")


class SendFailsOnce(InMemoryJobQueue):
    """SendMessage fails the first time, after running `meanwhile` (another request)."""

    def __init__(self, meanwhile: Callable[[], object]) -> None:
        super().__init__()
        self._meanwhile: Callable[[], object] | None = meanwhile

    def send(self, body: str, *, delay_seconds: int = 0) -> str:
        if self._meanwhile is not None:
            meanwhile, self._meanwhile = self._meanwhile, None
            meanwhile()
            raise QueueError("SQS SendMessage failed: ServiceUnavailable")
        return super().send(body, delay_seconds=delay_seconds)


class CreateWaitsOnce(InMemoryJobStore):
    """The first write of a job happens only after `meanwhile` (another request) has run."""

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile: Callable[[], object] | None = None

    def create(self, job: Job) -> None:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        super().create(job)


def jobs_in(store: InMemoryJobStore) -> list[Job]:
    return list(store.jobs.values())


def test_a_job_answered_202_survives_the_failed_send_of_an_earlier_request_with_its_key() -> None:
    # Given request A whose SendMessage fails, and the client's retry B (same key and body)
    # arriving while A's send is failing
    store = InMemoryJobStore()
    answers = []
    queue = SendFailsOnce(meanwhile=lambda: answers.append(service.submit(REQUEST)))
    service = SubmitService(store, queue, load_job_types())
    # When A gives up on its send
    with pytest.raises(ServiceUnavailableError):
        service.submit(REQUEST)
    # Then the job B answered 202 for is still there, pending, with its message queued
    (b_answer,) = answers
    (job,) = jobs_in(store)
    assert job.job_id == b_answer.job.job_id
    assert job.status == "pending"
    assert len(queue.messages) == 1


def test_a_retry_that_writes_the_job_first_makes_the_first_request_answer_202_too() -> None:
    # Given request A that has claimed its key but not yet written its job, and the client's
    # retry B (same key and body) that runs in between and writes it
    store = CreateWaitsOnce()
    queue = InMemoryJobQueue()
    service = SubmitService(store, queue, load_job_types())
    answers = []
    store.meanwhile = lambda: answers.append(service.submit(REQUEST))
    # When A goes on to write the job
    first = service.submit(REQUEST)
    # Then both answer with the one job, and it is queued
    (second,) = answers
    assert first.job.job_id == second.job.job_id
    assert [job.job_id for job in jobs_in(store)] == [first.job.job_id]
    assert queue.messages


def test_without_a_key_a_job_whose_message_cannot_be_sent_is_removed() -> None:
    # Given SQS refusing SendMessage and a request without an Idempotency-Key
    store = InMemoryJobStore()
    queue = InMemoryJobQueue()
    queue.fail_sends = True
    service = SubmitService(store, queue, load_job_types())
    # When it is submitted
    with pytest.raises(ServiceUnavailableError):
        service.submit(SubmitRequest(owner="alice", type="echo", params={}))
    # Then nothing is left behind: no other request can know the job
    assert jobs_in(store) == []


def test_with_a_key_a_job_whose_message_cannot_be_sent_stays_for_the_retry() -> None:
    # Given SQS refusing SendMessage once
    store = InMemoryJobStore()
    queue = InMemoryJobQueue()
    queue.fail_sends = True
    service = SubmitService(store, queue, load_job_types())
    with pytest.raises(ServiceUnavailableError):
        service.submit(REQUEST)
    # When the client retries with the same key
    queue.fail_sends = False
    retried = service.submit(REQUEST)
    # Then the job written the first time is the answer, pending and queued
    assert [job.job_id for job in jobs_in(store)] == [retried.job.job_id]
    assert len(queue.messages) == 1


# --- stored size ------------------------------------------------------------------------------


class Padded(BaseModel):
    text: str = ""
    padding: str = "p" * 2000  # the model adds what the request did not send


def padded_registry() -> Registry:
    registry = Registry()

    @job_type("padded", into=registry)
    def padded(params: Padded) -> None:
        return None

    return registry


def test_params_are_measured_as_stored_not_as_sent() -> None:
    # Given a params limit of 2,048 bytes and a model that adds 2,000 bytes of defaults
    store = InMemoryJobStore()
    service = SubmitService(store, InMemoryJobQueue(), padded_registry(), params_limit=2048)
    # When params of 100 bytes are sent
    with pytest.raises(ParamsTooLargeError) as refused:
        service.submit(SubmitRequest(owner="alice", type="padded", params={"text": "t" * 100}))
    # Then they are refused by what they would take on the job item, before anything is written
    assert refused.value.size > 2048
    assert jobs_in(store) == [] and store.keys == {}


def test_non_ascii_params_count_their_utf8_bytes() -> None:
    # Given a limit of 3,000 bytes and params of 1,000 "é" (2,000 bytes in UTF-8, 6,000 if the
    # text were stored escaped as \\u00e9)
    store = InMemoryJobStore()
    service = SubmitService(store, InMemoryJobQueue(), load_job_types(), params_limit=3000)
    # When they are submitted
    submitted = service.submit(SubmitRequest(owner="alice", type="echo", params={"t": "é" * 1000}))
    # Then they fit
    assert store.get(submitted.job.job_id) is not None


def test_params_with_text_that_has_no_utf8_form_are_invalid() -> None:
    store = InMemoryJobStore()
    service = SubmitService(store, InMemoryJobQueue(), load_job_types())
    with pytest.raises(InvalidParamsError):
        service.submit(SubmitRequest(owner="alice", type="echo", params={"t": "\ud800"}))
    assert jobs_in(store) == []
