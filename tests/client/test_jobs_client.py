"""JobsClient: typed results, waiting with Retry-After and a timeout, errors, SigV4 signing."""

from __future__ import annotations

import json
import socket

import pytest

from jobpipe.client import (
    ApiError,
    ConnectionFailedError,
    CredentialsError,
    JobsClient,
    SigV4Signer,
    WaitTimeoutError,
    region_of,
)
from tests.client.conftest import FakeApi, FakeTime, job_body

JOB_ID = "01KAAAAAAAAAAAAAAAAAAAAAAA"


def client(api: FakeApi, time: FakeTime | None = None, **kwargs: object) -> JobsClient:
    time = time or FakeTime()
    return JobsClient(api.url, sleep=time.sleep, clock=time.clock, **kwargs)  # type: ignore[arg-type]


def test_submit_posts_the_job_and_returns_a_typed_result(fake_api: FakeApi) -> None:
    fake_api.answer(
        202,
        {
            "job_id": JOB_ID,
            "type": "echo",
            "status": "pending",
            "created_at": "2026-11-24T12:00:00.000Z",
            "poll_url": f"{fake_api.url}/jobs/{JOB_ID}",
        },
        {"Location": f"/jobs/{JOB_ID}"},
    )
    submitted = client(fake_api).submit("echo", {"a": 1}, idempotency_key="k1")
    assert submitted.job_id == JOB_ID and submitted.status == "pending"
    assert submitted.location == f"/jobs/{JOB_ID}"
    [request] = fake_api.requests
    assert request["method"] == "POST" and request["path"] == "/jobs"
    assert request["headers"]["Idempotency-Key"] == "k1"
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == {"type": "echo", "params": {"a": 1}}


def test_get_returns_the_job_with_its_retry_after(fake_api: FakeApi) -> None:
    fake_api.answer(200, job_body("running", 1), {"Retry-After": "3"})
    job = client(fake_api).get(JOB_ID)
    assert (job.status, job.attempts, job.retry_after, job.is_terminal) == (
        "running",
        1,
        3.0,
        False,
    )


def test_a_failed_job_carries_its_error(fake_api: FakeApi) -> None:
    fake_api.answer(200, job_body("failed", 3, error={"type": "Boom", "message": "no"}))
    job = client(fake_api).get(JOB_ID)
    assert (
        job.failed
        and job.error is not None
        and (job.error.type, job.error.message)
        == (
            "Boom",
            "no",
        )
    )


def test_wait_sleeps_as_long_as_retry_after_says(fake_api: FakeApi) -> None:
    # Given a job that is pending, then retrying, then done
    fake_api.answer(200, job_body("pending"), {"Retry-After": "1"})
    fake_api.answer(200, job_body("retrying", 1), {"Retry-After": "7"})
    fake_api.answer(200, job_body("succeeded", 2, result={"ok": True}))
    time = FakeTime()
    seen: list[str] = []
    # When the client waits for it
    job = client(fake_api, time).wait(JOB_ID, on_update=lambda j: seen.append(j.status))
    # Then it polled after exactly the Retry-After delays, and returns the final job
    assert time.sleeps == [1.0, 7.0]
    assert job.succeeded and job.result == {"ok": True}
    assert seen == ["pending", "retrying", "succeeded"]


def test_wait_backs_off_when_there_is_no_retry_after(fake_api: FakeApi) -> None:
    for _ in range(3):
        fake_api.answer(200, job_body("running", 1))
    fake_api.answer(200, job_body("succeeded", 1))
    time = FakeTime()
    client(fake_api, time).wait(JOB_ID, initial_interval=1.0, max_interval=2.0)
    assert time.sleeps == [1.0, 1.5, 2.0]


def test_wait_gives_up_at_its_timeout_with_the_last_job_seen(fake_api: FakeApi) -> None:
    for _ in range(5):
        fake_api.answer(200, job_body("running", 1), {"Retry-After": "5"})
    time = FakeTime()
    with pytest.raises(WaitTimeoutError) as timed_out:
        client(fake_api, time).wait(JOB_ID, timeout=12)
    assert time.sleeps == [5.0, 5.0, 2.0]
    assert timed_out.value.job.status == "running"


def test_wait_rides_out_a_503_with_its_retry_after(fake_api: FakeApi) -> None:
    fake_api.answer(200, job_body("running", 1), {"Retry-After": "1"})
    fake_api.answer(
        503, {"error": {"type": "ServiceUnavailableError", "message": "x"}}, {"Retry-After": "4"}
    )
    fake_api.answer(200, job_body("succeeded", 1))
    time = FakeTime()
    assert client(fake_api, time).wait(JOB_ID).succeeded
    assert time.sleeps == [1.0, 4.0]


def test_an_error_answer_raises_api_error_with_type_and_message(fake_api: FakeApi) -> None:
    fake_api.answer(404, {"error": {"type": "JobNotFoundError", "message": "no job X"}})
    with pytest.raises(ApiError) as error:
        client(fake_api).get(JOB_ID)
    assert (error.value.status, error.value.error_type, error.value.message) == (
        404,
        "JobNotFoundError",
        "no job X",
    )
    assert error.value.is_not_found


def test_an_api_gateway_answer_without_our_error_shape_still_raises(fake_api: FakeApi) -> None:
    fake_api.answer(403, {"message": "Missing Authentication Token"})
    with pytest.raises(ApiError) as error:
        client(fake_api).get(JOB_ID)
    assert (error.value.status, error.value.error_type) == (403, "HTTP")
    assert error.value.message == "Missing Authentication Token"


def test_nothing_listening_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionFailedError, match="cannot reach"):
        JobsClient(f"http://127.0.0.1:{port}").get(JOB_ID)


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ConnectionFailedError):
        JobsClient("ftp://example.com")


def test_requests_are_signed_with_sigv4_by_botocore(fake_api: FakeApi) -> None:
    from botocore.credentials import Credentials

    fake_api.answer(200, job_body("pending"))
    signer = SigV4Signer(Credentials("AKIDEXAMPLE", "secret"), "eu-west-1")
    client(fake_api, signer=signer).get(JOB_ID)
    headers = fake_api.requests[0]["headers"]
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in headers["Authorization"]
    assert "X-Amz-Date" in headers


def test_no_credentials_is_a_clear_error() -> None:
    class NoCredentials:
        def get_credentials(self) -> None:
            return None

        def get_config_variable(self, name: str) -> str:
            return "us-east-1"

    with pytest.raises(CredentialsError, match="no AWS credentials"):
        SigV4Signer.from_session(session=NoCredentials())


def test_the_region_is_read_from_an_api_gateway_url() -> None:
    assert region_of("https://abc123.execute-api.eu-central-1.amazonaws.com/") == "eu-central-1"
    assert region_of("http://127.0.0.1:8000") is None


SUBMITTED = {
    "job_id": JOB_ID,
    "type": "echo",
    "status": "pending",
    "created_at": "2026-11-24T12:00:00.000Z",
    "poll_url": f"/jobs/{JOB_ID}",
}


def test_a_submit_with_an_idempotency_key_is_retried_after_a_503(fake_api: FakeApi) -> None:
    # Given an API whose first answer is a 503 (the queue failed)
    fake_api.answer(
        503, {"error": {"type": "ServiceUnavailableError", "message": "x"}}, {"Retry-After": "2"}
    )
    fake_api.answer(202, SUBMITTED)
    time = FakeTime()
    # When a job is submitted with an Idempotency-Key
    submitted = client(fake_api, time).submit("echo", {}, idempotency_key="k")
    # Then it is sent again with the same key after Retry-After, and accepted
    assert submitted.job_id == JOB_ID and time.sleeps == [2.0]
    assert [r["headers"]["Idempotency-Key"] for r in fake_api.requests] == ["k", "k"]


def test_a_submit_without_a_key_is_never_retried(fake_api: FakeApi) -> None:
    fake_api.answer(503, {"error": {"type": "ServiceUnavailableError", "message": "x"}})
    with pytest.raises(ApiError) as error:
        client(fake_api).submit("echo", {})
    assert error.value.status == 503 and len(fake_api.requests) == 1


def test_a_refused_submit_is_not_retried_even_with_a_key(fake_api: FakeApi) -> None:
    fake_api.answer(422, {"error": {"type": "UnknownJobTypeError", "message": "x"}})
    with pytest.raises(ApiError):
        client(fake_api).submit("nope", {}, idempotency_key="k")
    assert len(fake_api.requests) == 1


def test_the_clients_job_has_every_field_of_the_apis_job_body() -> None:
    # Given the one model of the job body (what the API answers and documents)
    from dataclasses import fields

    from jobpipe.api.bodies import JobBody
    from jobpipe.client import JobInfo

    # Then the client's own dataclass (it must not import the server's models) reads each field
    assert set(JobBody.model_fields) <= {f.name for f in fields(JobInfo)}


def test_the_clients_workflow_has_every_field_of_the_apis_workflow_body() -> None:
    # Given the models of the workflow body and its tree's nodes
    from dataclasses import fields

    from jobpipe.api.bodies import WorkflowBody, WorkflowFailureBody, WorkflowNodeBody
    from jobpipe.client import WorkflowFailure, WorkflowInfo, WorkflowNode

    # Then the client's dataclasses read each field
    assert set(WorkflowBody.model_fields) <= {f.name for f in fields(WorkflowInfo)}
    assert set(WorkflowNodeBody.model_fields) <= {f.name for f in fields(WorkflowNode)}
    assert set(WorkflowFailureBody.model_fields) <= {f.name for f in fields(WorkflowFailure)}
