"""A pipeline for worker tests: the real worker handler, DynamoDB/SQS adapters on moto, the
event-source harness, a controllable clock, and test job types that record each run."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from jobpipe.adapters.dynamodb import DynamoDBJobStore
from jobpipe.adapters.sqs import SQSJobQueue
from jobpipe.domain.job import Job
from jobpipe.domain.registry import JobContext, Registry, job_type, load_job_types
from jobpipe.domain.retry import Backoff
from jobpipe.errors import TransientJobError
from jobpipe.local.event_source import BatchResult, EventSourceMapping, InvocationKilled
from jobpipe.submit.service import SubmitRequest, SubmitService
from jobpipe.worker.service import Worker
from tests.conftest import Aws

# Backoffs that round to a 0-second visibility, so retried messages come straight back.
INSTANT = Backoff(base=0.001, cap=0.001)


class UpperBound:
    """A random source that always draws the largest delay: backoffs become deterministic."""

    def uniform(self, low: float, high: float) -> float:
        return high


class Clock:
    """Wall-clock time plus an offset that tests can advance."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class AnyParams(BaseModel):
    model_config = ConfigDict(extra="allow")


class FailTimes(BaseModel):
    fail_times: int = 0


class Sized(BaseModel):
    model_config = ConfigDict(extra="allow")
    chars: int
    char: str = "é"


@dataclass
class Pipeline:
    aws: Aws
    registry: Registry
    store: DynamoDBJobStore
    queue: SQSJobQueue
    worker: Worker
    esm: EventSourceMapping
    clock: Clock
    ledger: list[str] = field(default_factory=list)  # job ids, one per completed run
    kill_next: set[str] = field(default_factory=set)  # job ids whose next run is cut off

    def submit(self, job_type: str, params: dict[str, Any] | None = None) -> str:
        service = SubmitService(self.store, self.queue, self.registry, clock=self.clock)
        submitted = service.submit(SubmitRequest("alice", job_type, params or {}))
        return submitted.job.job_id

    def job(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        assert job is not None
        return job

    def poll(self) -> BatchResult:
        return self.esm.poll_once(wait_seconds=0)

    def drain(self, max_batches: int = 50) -> None:
        for _ in range(max_batches):
            if self.poll().received == 0:
                return

    def expire_visibility(self, result: BatchResult) -> None:
        """Let the visibility timeout of the messages a batch left behind pass."""
        for receipt in result.left_receipts:
            self.aws.sqs.change_message_visibility(
                QueueUrl=self.aws.queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
            )

    def runs(self, job_id: str) -> int:
        return self.ledger.count(job_id)


@pytest.fixture
def pipeline(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    from jobpipe import wiring
    from jobpipe.handlers import worker as worker_handler

    clock = Clock()
    registry = Registry()
    for declared in load_job_types().values():
        registry.add(declared)
    ledger: list[str] = []
    kill_next: set[str] = set()

    @job_type("counted", backoff=INSTANT, timeout=5, into=registry)
    def counted(params: AnyParams, context: JobContext) -> dict[str, Any]:
        if context.job_id in kill_next:
            kill_next.discard(context.job_id)
            raise InvocationKilled("the Lambda timed out mid-job")
        ledger.append(context.job_id)
        return params.model_dump()

    @job_type("flaky-fast", max_attempts=3, backoff=INSTANT, timeout=5, into=registry)
    def flaky_fast(params: FailTimes, context: JobContext) -> dict[str, int]:
        if context.attempt <= params.fail_times:
            raise TransientJobError(f"planned failure {context.attempt}")
        ledger.append(context.job_id)
        return {"attempt": context.attempt}

    @job_type("broken", backoff=INSTANT, timeout=5, permanent=(ValueError,), into=registry)
    def broken(params: AnyParams) -> None:
        raise ValueError("bad input, never retry")

    @job_type("long", backoff=INSTANT, timeout=45, into=registry)
    def long(params: AnyParams, context: JobContext) -> None:
        ledger.append(context.job_id)

    @job_type("sized-result", backoff=INSTANT, timeout=5, into=registry)
    def sized_result(params: Sized, context: JobContext) -> str:
        ledger.append(context.job_id)
        return params.char * params.chars

    @job_type("hog", backoff=INSTANT, timeout=30, into=registry)
    def hog(params: AnyParams, context: JobContext) -> None:
        """Uses 25 s of the invocation (on the test clock): one fits an invocation at a time."""
        clock.advance(25)
        ledger.append(context.job_id)

    @job_type("bad-result", backoff=INSTANT, timeout=5, into=registry)
    def bad_result(params: AnyParams) -> object:
        return object()

    store = DynamoDBJobStore(aws.table_name)
    queue = SQSJobQueue(aws.queue_url, aws.dlq_url)
    worker = Worker(store, queue, registry, clock=clock, rng=UpperBound())
    # Cached like the real composition root, so wiring.reset() can clear it.
    monkeypatch.setattr(wiring, "worker", functools.cache(lambda: worker))
    esm = EventSourceMapping(
        aws.sqs,
        aws.queue_url,
        worker_handler.handler,
        clock=clock,
        batching_window_seconds=0,
        poll_wait_seconds=0,
    )
    yield Pipeline(aws, registry, store, queue, worker, esm, clock, ledger, kill_next)
