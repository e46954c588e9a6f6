"""The event-source harness applies Lambda's rules for SQS batches, so the local stack behaves
like the deployed one: what it deletes, what it leaves, and when SQS redrives to the DLQ."""

from __future__ import annotations

from typing import Any

import pytest

from jobpipe.local.event_source import (
    EventSourceMapping,
    InvocationKilled,
    failed_ids,
)
from tests.conftest import Aws

IDS = {"a", "b", "c"}


@pytest.mark.parametrize(
    "response",
    [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}, {"batchitemfailures": [1]}],
    ids=["none", "empty-object", "empty-list", "null-list", "misspelt-key"],
)
def test_a_response_without_failures_deletes_the_whole_batch(response: Any) -> None:
    # Given a handler response that names no failure (even with a misspelt key, as Lambda does)
    # When Lambda reads it / Then nothing is left on the queue
    assert failed_ids(response, IDS) == set()


def test_the_listed_failures_stay_and_the_rest_is_deleted() -> None:
    # Given a response naming one record
    # When Lambda reads it / Then exactly that record stays
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, IDS) == {"b"}


@pytest.mark.parametrize(
    "response",
    [
        "a string",
        ["a", "list"],
        {"batchItemFailures": "b"},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"id": "b"}]},
        {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]},
        {"batchItemFailures": [{"itemIdentifier": "b"}, "junk"]},
        {"batchItemFailures": [{"itemIdentifier": object()}]},
    ],
    ids=[
        "string",
        "list",
        "failures-not-a-list",
        "empty-identifier",
        "null-identifier",
        "no-identifier",
        "unknown-identifier",
        "junk-entry",
        "not-json",
    ],
)
def test_a_malformed_response_fails_the_whole_batch(response: Any) -> None:
    # Given a response Lambda cannot interpret
    # When Lambda reads it / Then every record of the batch stays on the queue
    assert failed_ids(response, IDS) == IDS


def _send(aws: Aws, count: int) -> None:
    for n in range(count):
        aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=f'{{"n": {n}}}')


def _mapping(aws: Aws, handler: Any, **options: Any) -> EventSourceMapping:
    return EventSourceMapping(
        aws.sqs, aws.queue_url, handler, batching_window_seconds=0, poll_wait_seconds=0, **options
    )


def test_events_are_shaped_as_lambda_sends_them(aws: Aws) -> None:
    # Given a message on the queue
    _send(aws, 1)
    seen: list[dict[str, Any]] = []
    contexts: list[Any] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        seen.append(event)
        contexts.append(context)

    # When the harness delivers it
    _mapping(aws, handler).poll_once()
    # Then the event has Lambda's SQS record fields and the context a deadline
    (record,) = seen[0]["Records"]
    assert set(record) >= {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":test-jobs")
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert 0 < contexts[0].get_remaining_time_in_millis() <= 60_000


def test_batches_are_at_most_the_batch_size(aws: Aws) -> None:
    # Given more messages than one batch holds
    _send(aws, 7)
    sizes: list[int] = []
    mapping = _mapping(aws, lambda event, _: sizes.append(len(event["Records"])), batch_size=3)
    # When the harness drains the queue
    mapping.drain()
    # Then every batch had at most 3 records and every message was delivered and deleted
    assert max(sizes) <= 3
    assert sum(sizes) == 7
    assert aws.queue_depth() == 0


def test_a_handler_that_raises_leaves_the_whole_batch(aws: Aws) -> None:
    # Given a handler that crashes
    _send(aws, 3)

    def crash(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("boom")

    # When the harness delivers a batch
    result = _mapping(aws, crash).poll_once()
    # Then nothing was deleted and the error is reported
    assert result.whole_batch_failed
    assert (result.deleted, result.left) == (0, 3)
    assert result.error == "RuntimeError: boom"
    assert aws.queue_depth() == 3


def test_a_killed_invocation_leaves_the_whole_batch(aws: Aws) -> None:
    # Given an invocation that is cut off (timeout or crash of the runtime)
    _send(aws, 2)

    def killed(event: dict[str, Any], context: Any) -> None:
        raise InvocationKilled("timed out")

    # When the harness delivers a batch
    result = _mapping(aws, killed).poll_once()
    # Then the whole batch stays on the queue
    assert result.whole_batch_failed
    assert aws.queue_depth() == 2


def test_a_message_received_more_than_max_receive_count_times_moves_to_the_dlq(aws: Aws) -> None:
    # Given a message whose handler always reports it failed, visible again at once
    _send(aws, 1)
    from jobpipe.topology import TOPOLOGY

    def always_fail(event: dict[str, Any], context: Any) -> dict[str, Any]:
        ids = [record["messageId"] for record in event["Records"]]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}

    mapping = _mapping(aws, always_fail)
    # When it has been delivered maxReceiveCount times
    for _ in range(TOPOLOGY.queue.max_receive_count):
        result = mapping.poll_once()
        assert result.received == 1
        for receipt in result.left_receipts:
            aws.sqs.change_message_visibility(
                QueueUrl=aws.queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
            )
    # Then the next receive finds it in the DLQ instead of the queue
    assert mapping.poll_once().received == 0
    assert len(aws.dlq_messages()) == 1
