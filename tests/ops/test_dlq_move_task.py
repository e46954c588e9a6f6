"""DLQ replay through SQS's own message move task (AWS only; moto has no StartMessageMoveTask):
the SQS calls are checked against botocore's Stubber, the jobs live in the in-memory store."""

from __future__ import annotations

import time
from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import ANY, Stubber

from jobpipe.adapters.memory import InMemoryJobStore
from jobpipe.domain.job import ErrorInfo, Job
from jobpipe.domain.states import JobStatus
from jobpipe.ops.dlq import Action, DeadLetterQueue, MoveTaskActiveError
from tests.factories import fail, pending_job, start

DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/jobpipe-dlq"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/jobpipe-jobs"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:jobpipe-dlq"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:jobpipe-jobs"
NOW_MS = int(time.time() * 1000)


@pytest.fixture
def sqs() -> Iterator[tuple[object, Stubber]]:
    client = boto3.client("sqs", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def failed_job(store: InMemoryJobStore) -> Job:
    params = {"n": 1}
    job = pending_job(params=params, max_attempts=1, now_ms=NOW_MS)
    store.create(job)
    running = start(
        store, job.job_id, payload_hash=job.payload_hash, lease_expires_at=NOW_MS, now_ms=NOW_MS
    )
    return fail(store, running, error=ErrorInfo("E", "x"), dead_lettered=True, now_ms=NOW_MS)


def expect_arn(stubber: Stubber, url: str, arn: str) -> None:
    stubber.add_response(
        "get_queue_attributes",
        {"Attributes": {"QueueArn": arn}},
        {"QueueUrl": url, "AttributeNames": ["QueueArn"]},
    )


def expect_tasks(stubber: Stubber, *statuses: str) -> None:
    stubber.add_response(
        "list_message_move_tasks",
        {
            "Results": [
                {"TaskHandle": f"task-{i}", "Status": status, "SourceArn": DLQ_ARN}
                for i, status in enumerate(statuses)
            ]
        },
        {"SourceArn": DLQ_ARN, "MaxResults": 10},
    )


def expect_receive(stubber: Stubber, jobs: list[Job]) -> None:
    messages = [
        {
            "MessageId": f"m-{i}",
            "ReceiptHandle": f"r-{i}",
            "Body": job.message().to_body(),
            "Attributes": {"SentTimestamp": str(NOW_MS)},
            "MessageAttributes": {
                "job_id": {"DataType": "String", "StringValue": job.job_id},
                "job_type": {"DataType": "String", "StringValue": job.type},
            },
        }
        for i, job in enumerate(jobs)
    ]
    receive = {
        "QueueUrl": DLQ_URL,
        "MaxNumberOfMessages": 10,
        "VisibilityTimeout": ANY,
        "WaitTimeSeconds": ANY,
        "MessageAttributeNames": ["All"],
        "MessageSystemAttributeNames": ANY,
    }
    if messages:
        stubber.add_response("receive_message", {"Messages": messages}, receive)
        stubber.add_response("receive_message", {}, receive)
        stubber.add_response(
            "change_message_visibility_batch",
            {"Successful": [{"Id": str(i)} for i in range(len(messages))], "Failed": []},
            {
                "QueueUrl": DLQ_URL,
                "Entries": [
                    {"Id": str(i), "ReceiptHandle": f"r-{i}", "VisibilityTimeout": 0}
                    for i in range(len(messages))
                ],
            },
        )
    else:
        stubber.add_response("receive_message", {}, receive)


def dlq(client: object, store: InMemoryJobStore) -> DeadLetterQueue:
    return DeadLetterQueue.on_sqs(
        client,  # type: ignore[arg-type]
        store,
        dlq_url=DLQ_URL,
        queue_url=QUEUE_URL,
        wait_seconds=0,
    )


@pytest.mark.parametrize("status", ["RUNNING", "SCHEDULED", "CANCELLING"])
def test_refuses_while_a_move_task_is_active(sqs: tuple[object, Stubber], status: str) -> None:
    client, stubber = sqs
    store = InMemoryJobStore()
    job = failed_job(store)
    expect_arn(stubber, DLQ_URL, DLQ_ARN)
    expect_tasks(stubber, "COMPLETED", status)
    with pytest.raises(MoveTaskActiveError, match=status):
        dlq(client, store).replay_with_move_task()
    # Nothing was reset
    assert store.jobs[job.job_id].status is JobStatus.FAILED


def test_resets_the_jobs_then_starts_a_move_task_at_the_rate(sqs: tuple[object, Stubber]) -> None:
    # Given two dead-lettered jobs and only finished move tasks
    client, stubber = sqs
    store = InMemoryJobStore()
    jobs = [failed_job(store), failed_job(store)]
    expect_arn(stubber, DLQ_URL, DLQ_ARN)
    expect_tasks(stubber, "COMPLETED", "FAILED", "CANCELLED")
    expect_receive(stubber, jobs)
    expect_arn(stubber, QUEUE_URL, QUEUE_ARN)
    stubber.add_response(
        "start_message_move_task",
        {"TaskHandle": "new-task"},
        {"SourceArn": DLQ_ARN, "DestinationArn": QUEUE_ARN, "MaxNumberOfMessagesPerSecond": 50},
    )
    # When the DLQ is replayed with a move task
    report = dlq(client, store).replay_with_move_task(rate=50)
    # Then every job was reset to pending with fresh attempts before SQS moves the messages
    assert report.method == "move-task" and report.task_handle == "new-task"
    assert [o.action for o in report.outcomes] == [Action.REPLAYED, Action.REPLAYED]
    for job in jobs:
        stored = store.jobs[job.job_id]
        assert stored.status is JobStatus.PENDING and stored.replays == 1


def test_an_empty_dlq_starts_no_task(sqs: tuple[object, Stubber]) -> None:
    client, stubber = sqs
    expect_arn(stubber, DLQ_URL, DLQ_ARN)
    expect_tasks(stubber)
    expect_receive(stubber, [])
    report = dlq(client, InMemoryJobStore()).replay_with_move_task()
    assert report.outcomes == [] and report.task_handle is None


def test_a_dry_run_resets_nothing_and_starts_nothing(sqs: tuple[object, Stubber]) -> None:
    client, stubber = sqs
    store = InMemoryJobStore()
    job = failed_job(store)
    expect_arn(stubber, DLQ_URL, DLQ_ARN)
    expect_tasks(stubber)
    expect_receive(stubber, [job])
    report = dlq(client, store).replay_with_move_task(dry_run=True)
    assert [o.action for o in report.outcomes] == [Action.REPLAYED]
    assert store.jobs[job.job_id].status is JobStatus.FAILED and report.task_handle is None
