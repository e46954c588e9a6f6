"""POST /jobs through the real submit handler, with AWS-shaped HTTP API v2 events, on moto."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from jobpipe.domain.job import check_job_id
from tests.conftest import ALICE, BOB, Aws, body_of, http_event

Submit = Callable[..., dict[str, Any]]


def test_an_accepted_job_is_202_with_its_id_location_and_poll_url(aws: Aws, submit: Submit) -> None:
    # When a valid job is submitted
    response = submit({"type": "echo", "params": {"hello": "world"}})
    # Then it is accepted at once, pending, with where to poll
    assert response["statusCode"] == 202
    body = body_of(response)
    assert set(body) == {"job_id", "type", "status", "created_at", "poll_url"}
    assert body["status"] == "pending" and body["type"] == "echo"
    assert check_job_id(body["job_id"]) == body["job_id"]
    assert response["headers"]["Location"] == f"/jobs/{body['job_id']}"
    assert body["poll_url"].startswith("https://") and body["poll_url"].endswith(
        f"/jobs/{body['job_id']}"
    )
    # And exactly one message is queued
    assert aws.queue_depth() == 1


def test_the_job_is_readable_as_soon_as_202_is_returned(
    aws: Aws, submit: Submit, get_status: Callable[..., dict[str, Any]]
) -> None:
    job_id = body_of(submit({"type": "echo", "params": {}}))["job_id"]
    response = get_status(job_id)
    assert response["statusCode"] == 200
    assert body_of(response)["status"] == "pending"


def test_job_ids_sort_by_creation_time(aws: Aws, submit: Submit) -> None:
    ids = [body_of(submit({"type": "echo", "params": {"i": i}}))["job_id"] for i in range(5)]
    assert ids == sorted(ids)


def test_an_assumed_role_callers_job_belongs_to_the_role_not_the_session(
    aws: Aws, submit: Submit
) -> None:
    # Given a caller signing as one session of an assumed role / When it submits a job
    job_id = body_of(submit({"type": "echo", "params": {}}, principal=BOB))["job_id"]
    # Then the job's owner is the role, without the session name
    item = aws.dynamodb.get_item(TableName=aws.table_name, Key={"pk": {"S": job_id}})["Item"]
    assert item["owner"]["S"] == "arn:aws:sts::123456789012:assumed-role/bob-app"


NO_IDENTITY = [
    pytest.param(None, id="no-authorizer"),
    pytest.param({}, id="empty-authorizer"),
    pytest.param({"iam": {}}, id="empty-iam-context"),
    pytest.param({"jwt": {"claims": {"claim1": "value1"}, "scopes": ["scope1"]}}, id="jwt-no-sub"),
    pytest.param({"lambda": {"key": "value"}}, id="lambda-authorizer"),
]


@pytest.mark.parametrize("authorizer", NO_IDENTITY)
def test_a_request_that_names_no_caller_is_403_and_nothing_is_written(
    aws: Aws, submit: Submit, authorizer: dict[str, Any] | None
) -> None:
    # Given a request whose authorizer context names no one (as AWS's sample events do), on a
    # deployment, which names no local principal
    # When it submits a job
    response = submit({"type": "echo", "params": {}}, principal=None, authorizer=authorizer)
    # Then it is refused with a JSON error, not given a shared owner
    assert response["statusCode"] == 403, response["body"]
    assert body_of(response)["error"]["type"] == "UnidentifiedCallerError"
    # And nothing is written or queued
    assert aws.item_count() == 0 and aws.queue_depth() == 0


def test_with_a_local_principal_a_request_without_credentials_is_its_caller(
    aws: Aws, submit: Submit, local_principal: str
) -> None:
    # Given the process names a local principal, as the local stack does
    # When a request without credentials submits a job
    response = submit({"type": "echo", "params": {}}, principal=None)
    # Then the job is accepted and belongs to the local principal
    assert response["statusCode"] == 202
    job_id = body_of(response)["job_id"]
    item = aws.dynamodb.get_item(TableName=aws.table_name, Key={"pk": {"S": job_id}})["Item"]
    assert item["owner"]["S"] == local_principal == "local"


@pytest.mark.parametrize("raw", ["{not json", "", "[1, 2", '{"type": "echo",}'])
def test_malformed_json_is_400_and_nothing_is_written(aws: Aws, submit: Submit, raw: str) -> None:
    response = submit(raw, raw=True)
    assert response["statusCode"] == 400, response["body"]
    assert body_of(response)["error"]["type"] == "MalformedRequestError"
    assert aws.item_count() == 0 and aws.queue_depth() == 0


MULTIPART = (
    b'--jobpipe\r\nContent-Disposition: form-data; name="type"\r\n\r\necho\r\n--jobpipe--\r\n'
)
JOB = json.dumps({"type": "echo", "params": {}})


def post(lambda_context: Any, body: str | bytes, content_type: str | None) -> dict[str, Any]:
    """POST /jobs with exactly this Content-Type (None: no such header)."""
    from jobpipe.handlers import submit as handler_module

    event = http_event("POST", "/jobs", body, principal=ALICE)
    event["headers"].pop("content-type")
    if content_type is not None:
        event["headers"]["content-type"] = content_type
    return handler_module.handler(event, lambda_context)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("text/plain", JOB, id="text"),
        pytest.param("application/xml", JOB, id="xml"),
        pytest.param("text/html", JOB, id="html"),
        pytest.param("application/octet-stream", JOB.encode(), id="octet-stream"),
        pytest.param("application/x-www-form-urlencoded", "type=echo&params=x", id="form"),
        pytest.param("multipart/form-data; boundary=jobpipe", MULTIPART, id="multipart"),
        pytest.param("multipart/form-data", MULTIPART, id="multipart-without-boundary"),
        pytest.param("application/jsonx", JOB, id="jsonx"),
        pytest.param("application/json-patch+json", JOB, id="json-patch"),
        pytest.param("text/json", JOB, id="text-json"),
        pytest.param(None, JOB, id="no-content-type"),
        pytest.param("", JOB, id="empty-content-type"),
    ],
)
def test_a_body_not_sent_as_application_json_is_415_and_nothing_is_written(
    aws: Aws, lambda_context: Any, content_type: str | None, body: str | bytes
) -> None:
    # Given a job sent as another media type (a form, a multipart upload, JSON's look-alikes,
    # or none at all) / When it is submitted
    response = post(lambda_context, body, content_type)
    # Then it is refused with 415 and a JSON error that does not echo the body
    assert response["statusCode"] == 415, response["body"]
    assert body_of(response) == {
        "error": {
            "type": "UnsupportedMediaTypeError",
            "message": "send the job as JSON with Content-Type: application/json",
        }
    }
    # And nothing is written or queued
    assert aws.item_count() == 0 and aws.queue_depth() == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "Application/JSON",
        "APPLICATION/JSON",
        "application/json; charset=utf-8",
        "Application/JSON;Charset=UTF-8",
        " application/json ; version=1",
    ],
)
def test_application_json_in_any_case_and_with_parameters_is_json(
    aws: Aws, lambda_context: Any, content_type: str
) -> None:
    # Given a job sent as application/json, written as a browser or curl may write it
    # When it is submitted
    response = post(lambda_context, JOB, content_type)
    # Then it is accepted
    assert response["statusCode"] == 202, response["body"]
    assert aws.queue_depth() == 1


def test_an_oversized_body_of_another_media_type_is_413(aws: Aws, lambda_context: Any) -> None:
    # Given a form body over the size limit / When it is submitted
    response = post(lambda_context, "a=" + "x" * (300 * 1024), "application/x-www-form-urlencoded")
    # Then its size is the refusal the caller hears first
    assert response["statusCode"] == 413


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "echo", "params": {"text": "\\ud800"}}',
        '{"type": "echo", "params": {"\\udfff": 1}}',
        '{"type": "echo", "params": {"deep": [{"a": "x\\uDC00y"}]}}',
        '{"type": "\\ud800", "params": {}}',
        '{"type": "echo", "params": {"pair": "\\udc00\\ud800"}}',
    ],
)
def test_a_lone_surrogate_anywhere_in_the_body_is_400_and_nothing_is_written(
    aws: Aws, submit: Submit, raw: str
) -> None:
    # Given a body whose JSON escapes half of a UTF-16 surrogate pair (no Unicode text can hold
    # it) / When it is submitted
    response = submit(raw, raw=True)
    # Then it is refused as malformed, not as a server error
    assert response["statusCode"] == 400, response["body"]
    assert body_of(response)["error"]["type"] == "MalformedRequestError"
    # And nothing is written or queued
    assert aws.item_count() == 0 and aws.queue_depth() == 0


def test_an_escaped_surrogate_pair_is_an_ordinary_character(
    aws: Aws, submit: Submit, get_status: Callable[..., dict[str, Any]]
) -> None:
    # Given params holding an emoji written as a surrogate-pair escape
    raw = '{"type": "echo", "params": {"face": "\\ud83d\\ude00"}}'
    # When they are submitted
    response = submit(raw, raw=True)
    # Then the job is accepted with the character itself
    assert response["statusCode"] == 202, response["body"]
    job_id = body_of(response)["job_id"]
    assert body_of(get_status(job_id))["status"] == "pending"
    item = aws.dynamodb.get_item(TableName=aws.table_name, Key={"pk": {"S": job_id}})["Item"]
    assert json.loads(item["params"]["S"]) == {"face": "\N{GRINNING FACE}"}


@pytest.mark.parametrize(("depth", "status"), [(100, 422), (5000, 400)])
def test_params_nested_too_deep_are_refused_and_nothing_is_written(
    aws: Aws, submit: Submit, depth: int, status: int
) -> None:
    # Given params nested far deeper than any job needs
    raw = '{"type": "echo", "params": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    # When they are submitted
    response = submit(raw, raw=True)
    # Then the request is refused with a JSON error (not a 500), and nothing is written
    assert response["statusCode"] == status, response["body"]
    assert aws.item_count() == 0 and aws.queue_depth() == 0


def test_an_unknown_type_is_422_listing_the_known_types(aws: Aws, submit: Submit) -> None:
    response = submit({"type": "nope", "params": {}})
    assert response["statusCode"] == 422
    error = body_of(response)["error"]
    assert error["type"] == "UnknownJobTypeError"
    assert {"echo", "sleep", "fail", "flaky"} <= set(error["known_types"])
    assert error["fields"] == [{"loc": "type", "msg": "unknown job type"}]
    assert aws.item_count() == 0 and aws.queue_depth() == 0


def test_an_unknown_type_is_not_echoed_back(aws: Aws, submit: Submit) -> None:
    # Given a type name no job has (whatever the caller put in it) / When it is submitted
    response = submit({"type": "<script>jobpipe.internal</script>", "params": {}})
    # Then the answer names the field and the known types, never the caller's text
    assert response["statusCode"] == 422
    assert "script" not in response["body"] and "internal" not in response["body"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "sleep", "params": {"seconds": "soon"}}, "params.seconds"),
        ({"type": "sleep", "params": {}}, "params.seconds"),
        ({"type": "flaky", "params": {"fail_times": -1}}, "params.fail_times"),
        ({"params": {}}, "type"),
        ({"type": "echo", "params": [1, 2]}, "params"),
        ({"type": "echo", "params": {}, "extra": 1}, "extra"),
    ],
)
def test_bad_params_are_422_naming_the_fields(
    aws: Aws, submit: Submit, body: dict[str, Any], field: str
) -> None:
    response = submit(body)
    assert response["statusCode"] == 422, response["body"]
    locs = [f["loc"] for f in body_of(response)["error"]["fields"]]
    assert field in locs
    assert aws.item_count() == 0 and aws.queue_depth() == 0


def test_a_body_over_the_limit_is_413(aws: Aws, submit: Submit) -> None:
    big = {"type": "echo", "params": {"blob": "x" * (256 * 1024)}}
    response = submit(big)
    assert response["statusCode"] == 413
    assert body_of(response)["error"]["type"] == "RequestTooLargeError"
    assert aws.item_count() == 0 and aws.queue_depth() == 0


def test_an_oversized_malformed_body_is_413_not_400(aws: Aws, submit: Submit) -> None:
    response = submit("{" * (300 * 1024), raw=True)
    assert response["statusCode"] == 413


def test_a_body_just_under_the_limit_is_accepted(aws: Aws, submit: Submit) -> None:
    envelope = len(json.dumps({"type": "echo", "params": {"blob": ""}}))
    response = submit({"type": "echo", "params": {"blob": "x" * (256 * 1024 - envelope)}})
    assert response["statusCode"] == 202


def test_non_ascii_params_under_the_body_limit_are_accepted_at_their_utf8_size(
    aws: Aws, submit: Submit
) -> None:
    # Given params of 100,000 "é": 200 KB of UTF-8 in the body (600 KB if stored as \u00e9)
    body = json.dumps({"type": "echo", "params": {"text": "é" * 100_000}}, ensure_ascii=False)
    # When they are submitted
    response = submit(body, raw=True)
    # Then the job is accepted and stored at the size it was sent
    assert response["statusCode"] == 202, response["body"]
    item = aws.dynamodb.get_item(
        TableName=aws.table_name, Key={"pk": {"S": body_of(response)["job_id"]}}
    )["Item"]
    assert len(item["params"]["S"].encode()) < 200_100


def test_params_over_the_stored_limit_are_413_even_under_a_raised_body_limit(
    aws: Aws, submit: Submit, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobpipe import wiring

    # Given a request body limit raised to 1 MiB (the params limit stays 256 KiB)
    monkeypatch.setenv("JOBPIPE_MAX_BODY_BYTES", str(1024 * 1024))
    wiring.reset()
    # When params of 300 KiB are submitted with an Idempotency-Key
    response = submit(
        {"type": "echo", "params": {"blob": "x" * (300 * 1024)}}, headers={"Idempotency-Key": "k"}
    )
    # Then they are refused before anything is written: no job, no key, no message
    assert response["statusCode"] == 413, response["body"]
    assert body_of(response)["error"]["type"] == "ParamsTooLargeError"
    assert aws.item_count() == 0 and aws.queue_depth() == 0


def test_same_idempotency_key_and_body_give_the_same_job_and_one_message(
    aws: Aws, submit: Submit
) -> None:
    body = {"type": "echo", "params": {"n": 1}}
    first = submit(body, headers={"Idempotency-Key": "order-42"})
    second = submit(body, headers={"Idempotency-Key": "order-42"})
    assert first["statusCode"] == second["statusCode"] == 202
    assert body_of(first)["job_id"] == body_of(second)["job_id"]
    # one job item (plus the key record), and the second call found the job pending and
    # re-queued it at most once more: the worker is idempotent on the job id
    jobs = [i for i in _items(aws) if not i["pk"]["S"].startswith("idem#")]
    assert len(jobs) == 1


def test_same_idempotency_key_with_another_body_is_409(aws: Aws, submit: Submit) -> None:
    submit({"type": "echo", "params": {"n": 1}}, headers={"Idempotency-Key": "k"})
    response = submit({"type": "echo", "params": {"n": 2}}, headers={"Idempotency-Key": "k"})
    assert response["statusCode"] == 409
    assert body_of(response)["error"]["type"] == "IdempotencyConflictError"


def test_idempotency_keys_are_per_caller(aws: Aws, submit: Submit) -> None:
    body = {"type": "echo", "params": {}}
    alice = submit(body, headers={"Idempotency-Key": "same"}, principal=ALICE)
    bob = submit(body, headers={"Idempotency-Key": "same"}, principal=BOB)
    assert body_of(alice)["job_id"] != body_of(bob)["job_id"]


def test_an_idempotency_key_over_255_characters_is_422(aws: Aws, submit: Submit) -> None:
    response = submit({"type": "echo", "params": {}}, headers={"Idempotency-Key": "k" * 256})
    assert response["statusCode"] == 422


def test_when_send_message_fails_no_job_stays_pending_without_a_message(
    aws: Aws, submit: Submit, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given SQS refuses SendMessage
    _break_send_message(monkeypatch)
    # When a job is submitted
    response = submit({"type": "echo", "params": {}})
    # Then the caller gets a retryable 503 with no AWS detail, and no job is left behind
    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "1"
    assert "SQS" not in response["body"] and "Throttl" not in response["body"]
    assert aws.item_count() == 0


def test_a_retry_with_the_same_key_after_a_failed_send_repairs_the_job(
    aws: Aws, submit: Submit, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a first attempt whose SendMessage failed (503)
    body = {"type": "echo", "params": {"n": 7}}
    undo = _break_send_message(monkeypatch)
    assert submit(body, headers={"Idempotency-Key": "retry-me"})["statusCode"] == 503
    # When the client retries with the same key once SQS is back
    undo()
    response = submit(body, headers={"Idempotency-Key": "retry-me"})
    # Then it gets one job, pending, with its message queued
    assert response["statusCode"] == 202
    assert aws.queue_depth() == 1
    jobs = [i for i in _items(aws) if not i["pk"]["S"].startswith("idem#")]
    assert [j["pk"]["S"] for j in jobs] == [body_of(response)["job_id"]]


def test_a_store_failure_is_a_503_without_internal_detail(
    aws: Aws, submit: Submit, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from jobpipe.adapters import clients

    client = clients.dynamodb()

    def throttled(**_: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
            "PutItem",
        )

    monkeypatch.setattr(client, "put_item", throttled)
    response = submit({"type": "echo", "params": {}})
    assert response["statusCode"] == 503
    assert "Provisioned" not in response["body"] and "Traceback" not in response["body"]
    assert aws.queue_depth() == 0


def test_an_unexpected_error_is_a_plain_500(
    aws: Aws, submit: Submit, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobpipe import wiring

    service = wiring.submit_service()
    monkeypatch.setattr(service, "submit", lambda _request: 1 / 0)
    response = submit({"type": "echo", "params": {}})
    assert response["statusCode"] == 500
    assert body_of(response) == {"error": {"type": "InternalError", "message": "internal error"}}


def test_the_openapi_document_describes_both_routes_and_their_answers() -> None:
    from jobpipe.api.app import openapi_document

    document = openapi_document()
    post = document["paths"]["/jobs"]["post"]
    assert {"202", "400", "403", "409", "413", "415", "422", "503"} <= set(post["responses"])
    assert set(post["requestBody"]["content"]) == {"application/json"}
    assert any(p["name"] == "idempotency-key" for p in post.get("parameters", []))
    get = document["paths"]["/jobs/{id}"]["get"]
    assert {"200", "400", "403", "404"} <= set(get["responses"])


def _items(aws: Aws) -> list[dict[str, Any]]:
    return list(aws.dynamodb.scan(TableName=aws.table_name)["Items"])


def _break_send_message(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    from botocore.exceptions import ClientError

    from jobpipe.adapters import clients

    client = clients.sqs()
    original = client.send_message

    def refused(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "no"}}, "Send")

    monkeypatch.setattr(client, "send_message", refused)
    return lambda: monkeypatch.setattr(client, "send_message", original)
