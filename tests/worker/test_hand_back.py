"""Records the worker hands back (no time left, a retry's backoff, a duplicate while the job
runs, a type it does not know yet) never use up the receives after which SQS dead-letters a
message: only Lambda's throttles and crashed invocations can."""

from __future__ import annotations

from typing import Any

import pytest

from jobpipe.domain.registry import JobContext
from jobpipe.domain.states import JobStatus
from jobpipe.handlers import worker as worker_handler
from jobpipe.local.event_source import LambdaContext, sqs_event
from jobpipe.topology import TOPOLOGY
from tests.worker.conftest import AnyParams, Pipeline
from tests.worker.test_worker import received


def test_a_backlog_of_long_jobs_leaves_the_receives_kept_for_lambda_untouched(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 30 jobs that each take 25 s of a 60 s invocation, queued at once: a batch of 10
    # runs one job and hands the other nine back for lack of time, so each message is received
    # about ten times before its turn comes
    job_ids = [pipeline.submit("hog", {"i": i}) for i in range(30)]
    receives: list[int] = []
    handler = pipeline.esm._handler

    def counting(event: dict[str, Any], context: Any) -> Any:
        receives.extend(int(r["attributes"]["ApproximateReceiveCount"]) for r in event["Records"])
        return handler(event, context)

    monkeypatch.setattr(pipeline.esm, "_handler", counting)
    # When the worker works through the backlog
    pipeline.drain(max_batches=200)
    # Then every job ran once and succeeded, nothing was dead-lettered, and no message was
    # received more often than the worker's threshold: the receives above it stay free for
    # Lambda's throttles and crashed invocations (SQS counts those too)
    assert [pipeline.job(job_id).status for job_id in job_ids] == [JobStatus.SUCCEEDED] * 30
    assert all(pipeline.runs(job_id) == 1 for job_id in job_ids)
    assert pipeline.aws.dlq_messages() == []
    assert max(receives) <= TOPOLOGY.queue.resend_from_receive()


def test_a_record_received_many_times_is_handed_back_as_a_fresh_message(
    pipeline: Pipeline,
) -> None:
    # Given a job whose message has been received one time short of the worker's threshold
    job_id = pipeline.submit("hog")
    for _ in range(TOPOLOGY.queue.resend_from_receive() - 1):
        (message,) = received(pipeline)
        pipeline.aws.sqs.change_message_visibility(
            QueueUrl=pipeline.aws.queue_url,
            ReceiptHandle=message["ReceiptHandle"],
            VisibilityTimeout=0,
        )
    # When an invocation with too little time left for the job receives it once more
    (message,) = received(pipeline)
    event = sqs_event([message], "arn:aws:sqs:us-east-1:123456789012:test-jobs", "us-east-1")
    response = worker_handler.handler(event, LambdaContext("jobpipe-worker", 20, pipeline.clock))
    # Then the record is done (not reported), and a fresh message for the job, received once
    # now, carries it on; the job itself is untouched
    assert response == {"batchItemFailures": []}
    (fresh,) = received(pipeline)
    assert fresh["MessageId"] != message["MessageId"] and fresh["Body"] == message["Body"]
    assert fresh["Attributes"]["ApproximateReceiveCount"] == "1"
    job = pipeline.job(job_id)
    assert (job.status, job.attempts) == (JobStatus.PENDING, 0)


def test_a_twelve_hour_backoff_hides_the_message_only_as_long_as_sqs_allows_and_never_runs_early(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobpipe.domain.registry import job_type
    from jobpipe.domain.retry import Backoff
    from jobpipe.errors import TransientJobError

    twelve_hours = 12 * 3600

    @job_type(
        "nightly", backoff=Backoff(base=twelve_hours, cap=twelve_hours), into=pipeline.registry
    )
    def nightly(params: AnyParams, context: JobContext) -> int:
        if context.attempt == 1:
            raise TransientJobError("try again tomorrow")
        return context.attempt

    hidden: list[int] = []
    change = pipeline.queue.change_visibility

    def recording(receipt_handle: str, seconds: int) -> None:
        hidden.append(seconds)
        change(receipt_handle, seconds)

    monkeypatch.setattr(pipeline.queue, "change_visibility", recording)
    # Given a job whose first attempt fails with a backoff of 12 hours
    job_id = pipeline.submit("nightly")
    first = pipeline.poll()
    # Then its message is hidden for less than SQS's 12 h, which count from the receive
    assert pipeline.job(job_id).status is JobStatus.RETRYING
    assert hidden == [TOPOLOGY.max_backoff_visibility_seconds()]
    assert hidden[0] < twelve_hours
    # When the message shows up before the retry is due
    pipeline.expire_visibility(first)
    early = pipeline.poll()
    # Then it is handed back until then, and the job does not start
    assert (early.received, early.left) == (1, 1)
    job = pipeline.job(job_id)
    assert (job.status, job.attempts) == (JobStatus.RETRYING, 1)
    assert 0 < hidden[-1] <= twelve_hours
    # And once the retry is due it runs
    pipeline.clock.advance(twelve_hours)
    pipeline.expire_visibility(early)
    pipeline.drain()
    assert pipeline.job(job_id).status is JobStatus.SUCCEEDED
