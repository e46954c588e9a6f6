"""The whole contract, over HTTP, against the local stack: moto, the gateway, the real handlers
and the worker behind the event-source harness."""

from __future__ import annotations

import json
import urllib.request

import pytest

from jobpipe.client import ApiError, JobInfo, JobsClient
from jobpipe.local.stack import LocalStack
from jobpipe.ops.dlq import Action, DeadLetterQueue, ReplayFilter
from tests.local.conftest import BROKEN

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("local")]

WAIT = 30.0


def wait(client: JobsClient, job_id: str) -> JobInfo:
    return client.wait(job_id, timeout=WAIT)


def dead_letter_queue(stack: LocalStack) -> DeadLetterQueue:
    import boto3

    from jobpipe.adapters.dynamodb import DynamoDBJobStore

    config = stack.config
    session = boto3.Session("local", "local", region_name=config.region)
    return DeadLetterQueue.on_sqs(
        session.client("sqs", endpoint_url=config.aws_endpoint_url),
        DynamoDBJobStore(
            config.table_name,
            client=session.client("dynamodb", endpoint_url=config.aws_endpoint_url),
        ),
        dlq_url=config.dlq_url,
        queue_url=config.queue_url,
        wait_seconds=0,
    )


def test_a_job_submitted_over_http_succeeds_with_its_result(client: JobsClient) -> None:
    # Given the local stack, when an echo job is submitted over HTTP
    submitted = client.submit("echo", {"hello": "world"})
    # Then it is pending at once, readable, and succeeds with its params as the result
    assert submitted.status == "pending"
    assert submitted.location == f"/jobs/{submitted.job_id}"
    assert submitted.poll_url == f"{client.base_url}/jobs/{submitted.job_id}"
    job = wait(client, submitted.job_id)
    assert job.succeeded and job.result == {"hello": "world"}
    assert job.attempts == 1 and job.is_terminal and job.retry_after is None


def test_a_pending_job_tells_the_client_when_to_poll_again(client: JobsClient) -> None:
    job = client.get(client.submit("sleep", {"seconds": 0.5}).job_id)
    assert not job.is_terminal and job.retry_after is not None and job.retry_after >= 1


def test_a_permanent_failure_fails_at_once_without_the_dlq(client: JobsClient) -> None:
    job = wait(client, client.submit("fail", {"message": "no"}).job_id)
    assert job.failed and job.attempts == 1 and not job.dead_lettered
    assert job.error is not None and job.error.type == "PermanentJobError"


def test_a_transient_failure_is_retried_then_succeeds(client: JobsClient) -> None:
    job = wait(client, client.submit("quick_flaky", {"fail_times": 2}).job_id)
    assert job.succeeded and job.attempts == 3 and job.result == {"attempt": 3}


def test_exhausted_attempts_land_in_the_dlq_and_a_replay_succeeds(
    local_stack: LocalStack, client: JobsClient
) -> None:
    # Given a job type that fails until a fix is deployed
    BROKEN.set()
    try:
        job_id = client.submit("until_fixed", {}).job_id
        # When it uses up its attempts
        job = wait(client, job_id)
    finally:
        BROKEN.clear()
    # Then it is failed, dead-lettered, and its message is in the DLQ with the error
    assert job.failed and job.dead_lettered and job.attempts == 2
    dlq = dead_letter_queue(local_stack)
    mine = ReplayFilter(job_ids=frozenset({job_id}))
    [letter] = dlq.list_messages(mine)
    assert (letter.job_type, letter.error_type, letter.attempts) == (
        "until_fixed",
        "TransientJobError",
        2,
    )
    # When the fix is out and the DLQ is replayed
    report = dlq.replay(mine)
    # Then the job runs again with fresh attempts and succeeds; the earlier ones stay on record
    assert [o.action for o in report.outcomes] == [Action.REPLAYED]
    job = wait(client, job_id)
    assert job.succeeded and job.attempts == 1 and job.replays == 1
    assert not job.dead_lettered
    assert dlq.list_messages(mine) == []
    # And a second replay finds nothing to do
    assert dlq.replay(mine).outcomes == []


def test_the_same_idempotency_key_gives_the_same_job(client: JobsClient) -> None:
    first = client.submit("echo", {"n": 1}, idempotency_key="e2e-key-1")
    again = client.submit("echo", {"n": 1}, idempotency_key="e2e-key-1")
    assert again.job_id == first.job_id
    with pytest.raises(ApiError) as conflict:
        client.submit("echo", {"n": 2}, idempotency_key="e2e-key-1")
    assert conflict.value.status == 409


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (json.dumps({"type": "nope", "params": {}}).encode(), 422),
        (json.dumps({"type": "quick_flaky", "params": {"fail_times": "x"}}).encode(), 422),
    ],
)
def test_rejected_requests_get_their_status_over_http(
    local_stack: LocalStack, body: bytes, status: int
) -> None:
    request = urllib.request.Request(
        f"{local_stack.api_url}/jobs",
        data=body,
        headers={"content-type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=5)
    assert answer.value.code == status
    assert "error" in json.loads(answer.value.read())


def test_unknown_and_malformed_ids(client: JobsClient) -> None:
    with pytest.raises(ApiError) as missing:
        client.get("01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert missing.value.status == 404
    with pytest.raises(ApiError) as malformed:
        client.get("not-a-job-id")
    assert malformed.value.status == 400


def test_the_openapi_document_and_the_local_config_are_served(local_stack: LocalStack) -> None:
    with urllib.request.urlopen(f"{local_stack.api_url}/openapi.json", timeout=5) as answer:
        document = json.loads(answer.read())
    assert {"/jobs", "/jobs/{id}"} <= set(document["paths"])
    with urllib.request.urlopen(local_stack.config_url, timeout=5) as answer:
        config = json.loads(answer.read())
    assert config["api_url"] == local_stack.api_url
    assert config["dlq_url"].startswith(config["aws_endpoint_url"])
