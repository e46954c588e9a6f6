"""The AWS clients: one call's worst case is known, and fits where the pipeline relies on it."""

from __future__ import annotations

from typing import Any

import pytest

from jobpipe.topology import TOPOLOGY
from tests.conftest import Aws, body_of


def test_one_call_at_its_worst_fits_the_api_function_and_the_workers_margin() -> None:
    # Given the clients' timeouts and attempts
    worst = TOPOLOGY.aws_client.worst_case_seconds()
    # Then a call that waits out every timeout and backoff still ends before the API function
    # times out, and within what the worker keeps back for a job's outcome write
    assert worst < TOPOLOGY.api.function_timeout_seconds
    assert worst < TOPOLOGY.worker_margin_seconds()
    assert TOPOLOGY.max_job_timeout_seconds() > 0


def test_the_clients_are_built_with_the_topologys_timeouts_and_attempts(aws: Aws) -> None:
    from jobpipe.adapters import clients

    shape = TOPOLOGY.aws_client
    for client in (clients.dynamodb(), clients.sqs()):
        config = client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (
            shape.connect_timeout_seconds,
            shape.read_timeout_seconds,
        )
        assert config.retries["total_max_attempts"] == shape.max_attempts


def test_a_request_with_too_little_time_left_answers_503_without_calling_aws(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobpipe.adapters import clients
    from jobpipe.handlers import submit as handler
    from jobpipe.local.event_source import LambdaContext
    from tests.conftest import ALICE, http_event

    calls: list[str] = []
    clients.dynamodb().meta.events.register(
        "before-send.*.*", lambda **kwargs: calls.append("sent")
    )
    # Given a submit invocation with less time left than one AWS call can take at its worst
    context = LambdaContext("jobpipe-submit", TOPOLOGY.aws_client.worst_case_seconds() - 1)
    event = http_event("POST", "/jobs", '{"type": "echo", "params": {}}', principal=ALICE)
    # When it runs
    response: dict[str, Any] = handler.handler(event, context)
    # Then it answers a retryable 503 and makes no request it could not finish
    assert response["statusCode"] == 503
    assert body_of(response)["error"]["type"] == "ServiceUnavailableError"
    assert calls == []
    assert aws.item_count() == 0


def test_a_call_that_times_out_is_a_store_or_queue_error_not_a_crash(aws: Aws) -> None:
    # Given the table and the queue answering slower than the clients' read timeout
    import boto3
    from botocore.exceptions import ReadTimeoutError

    from jobpipe.adapters.dynamodb import DynamoDBJobStore
    from jobpipe.adapters.sqs import SQSJobQueue
    from jobpipe.errors import QueueError, StoreError
    from tests.factories import pending_job

    def too_slow(**_: Any) -> None:
        raise ReadTimeoutError(endpoint_url="http://127.0.0.1:1/")

    dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
    dynamodb.meta.events.register("before-send.dynamodb.*", too_slow)
    sqs.meta.events.register("before-send.sqs.*", too_slow)
    store = DynamoDBJobStore(aws.table_name, dynamodb)
    queue = SQSJobQueue(aws.queue_url, aws.dlq_url, sqs)
    # When a job is written, many are, and messages are sent
    # Then each failure is the store's or the queue's own error (an API answers 503 for it),
    # naming the timeout
    with pytest.raises(StoreError, match="ReadTimeoutError"):
        store.create(pending_job())
    with pytest.raises(StoreError, match="ReadTimeoutError"):
        store.create_missing([pending_job(), pending_job()])
    with pytest.raises(QueueError, match="ReadTimeoutError"):
        queue.send("{}")
    assert queue.send_many(["{}"] * 25) == set(range(25))
