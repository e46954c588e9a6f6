"""GET /jobs/{id} through the real status handler."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from jobpipe.adapters.dynamodb import DynamoDBJobStore
from jobpipe.domain.job import ErrorInfo, new_job_id
from tests.conftest import BOB, Aws, body_of
from tests.factories import abandon, retry, start, succeed

Call = Callable[..., dict[str, Any]]
FIELDS = {
    "job_id", "type", "status", "attempts", "max_attempts", "created_at", "started_at",
    "completed_at", "next_attempt_at", "is_terminal", "dead_lettered", "replays",
    "cancel_requested", "progress", "errors",
}  # fmt: skip


def _submitted(submit: Call, body: dict[str, Any] | None = None) -> str:
    return str(body_of(submit(body or {"type": "echo", "params": {"a": 1}}))["job_id"])


def test_a_pending_job_has_every_field_and_a_retry_after(
    aws: Aws, submit: Call, get_status: Call
) -> None:
    job_id = _submitted(submit)
    response = get_status(job_id)
    assert response["statusCode"] == 200
    body = body_of(response)
    assert set(body) == FIELDS
    assert body["status"] == "pending" and body["is_terminal"] is False
    assert body["attempts"] == 0 and body["max_attempts"] == 3
    assert int(response["headers"]["Retry-After"]) >= 1


def test_a_succeeded_job_shows_its_result_and_no_retry_after(
    aws: Aws, submit: Call, get_status: Call
) -> None:
    job_id = _submitted(submit)
    store = DynamoDBJobStore(aws.table_name)
    job = store.get(job_id)
    assert job is not None
    now = int(time.time() * 1000)
    running = start(
        store, job_id, payload_hash=job.payload_hash, lease_expires_at=now + 60_000, now_ms=now
    )
    succeed(store, running, result={"a": 1}, now_ms=now + 1)
    response = get_status(job_id)
    body = body_of(response)
    assert body["status"] == "succeeded" and body["is_terminal"] is True
    assert body["result"] == {"a": 1}
    assert "error" not in body
    assert "Retry-After" not in response["headers"]


def test_a_failed_job_shows_its_error_and_no_result(
    aws: Aws, submit: Call, get_status: Call
) -> None:
    job_id = _submitted(submit)
    store = DynamoDBJobStore(aws.table_name)
    abandon(store, job_id, error=ErrorInfo("Boom", "it broke"), now_ms=int(time.time() * 1000))
    body = body_of(get_status(job_id))
    assert body["error"] == {"type": "Boom", "message": "it broke"}
    assert body["dead_lettered"] is True
    assert "result" not in body


def test_a_retrying_job_says_when_to_poll_again(aws: Aws, submit: Call, get_status: Call) -> None:
    import time

    job_id = _submitted(submit)
    store = DynamoDBJobStore(aws.table_name)
    job = store.get(job_id)
    assert job is not None
    now = int(time.time() * 1000)
    running = start(
        store, job_id, payload_hash=job.payload_hash, lease_expires_at=now + 9999, now_ms=now
    )
    retry(store, running, error=ErrorInfo("E", "m"), next_attempt_at=now + 8000, now_ms=now)
    response = get_status(job_id)
    body = body_of(response)
    assert body["status"] == "retrying" and body["next_attempt_at"] is not None
    assert "error" not in body  # only once failed
    assert 7 <= int(response["headers"]["Retry-After"]) <= 8


def test_an_unknown_id_is_404(aws: Aws, get_status: Call) -> None:
    response = get_status(new_job_id())
    assert response["statusCode"] == 404
    assert body_of(response)["error"]["type"] == "JobNotFoundError"


def test_another_owners_job_is_404_not_403(aws: Aws, submit: Call, get_status: Call) -> None:
    job_id = _submitted(submit)
    response = get_status(job_id, principal=BOB)
    assert response["statusCode"] == 404
    assert job_id in body_of(response)["error"]["message"]


def test_every_session_of_one_role_reads_the_roles_jobs(
    aws: Aws, submit: Call, get_status: Call
) -> None:
    # Given a job submitted by one session of a role (one ECS task, one Lambda instance)
    role = "arn:aws:sts::123456789012:assumed-role/orders-service"
    job_id = _submitted_by(submit, f"{role}/task-1")
    # When another session of the same role reads it
    response = get_status(job_id, principal=f"{role}/task-2")
    # Then it is the same caller's job
    assert response["statusCode"] == 200 and body_of(response)["job_id"] == job_id


def test_a_read_that_names_no_caller_is_403(aws: Aws, submit: Call, get_status: Call) -> None:
    # Given a job, and a deployment, which names no local principal
    job_id = _submitted(submit)
    # When a request with an empty authorizer context reads it
    response = get_status(job_id, principal=None, authorizer={})
    # Then it is refused, not answered as the shared local caller
    assert response["statusCode"] == 403
    assert body_of(response)["error"]["type"] == "UnidentifiedCallerError"


def _submitted_by(submit: Call, principal: str) -> str:
    return str(body_of(submit({"type": "echo", "params": {}}, principal=principal))["job_id"])


@pytest.mark.parametrize("bad", ["123", "not-a-ulid-at-all-xxxxxxxx", "8ZZZZZZZZZZZZZZZZZZZZZZZZZ",
                                 "01ARZ3NDEKTSV4RRFFQ69G5FAU", "idem%23abc", "0" * 65])  # fmt: skip
def test_a_malformed_id_is_400(aws: Aws, get_status: Call, bad: str) -> None:
    response = get_status(bad)
    assert response["statusCode"] == 400, response["body"]
    assert body_of(response)["error"]["type"] == "InvalidJobIdError"


def test_a_lowercase_id_finds_the_job(aws: Aws, submit: Call, get_status: Call) -> None:
    job_id = _submitted(submit)
    assert get_status(job_id.lower())["statusCode"] == 200


def test_an_aws_error_never_reaches_the_client(
    aws: Aws, get_status: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from jobpipe.adapters import clients

    def denied(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "arn:..."}}, "Get")

    monkeypatch.setattr(clients.dynamodb(), "get_item", denied)
    response = get_status(new_job_id())
    assert response["statusCode"] in (500, 503)
    assert "AccessDenied" not in response["body"] and "arn:" not in response["body"]
