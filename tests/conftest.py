"""Shared fixtures: AWS emulated by moto (in-process), events shaped as AWS sends them."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# Fake credentials and a fixed region before anything creates a boto3 client; never real AWS.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_NAMESPACE": "JobpipeTest",
    "POWERTOOLS_TRACE_DISABLED": "true",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)


@dataclass
class Aws:
    """The moto-backed resources of one test, and clients for them."""

    table_name: str
    queue_url: str
    dlq_url: str
    dynamodb: Any
    sqs: Any

    def queue_depth(self, url: str | None = None) -> int:
        """Every message in the queue: visible, in flight, and delayed."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def dlq_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.dlq_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                VisibilityTimeout=60,
            ).get("Messages", [])
            if not batch:
                return messages
            messages.extend(batch)

    def item_count(self) -> int:
        return int(self.dynamodb.scan(TableName=self.table_name, Select="COUNT")["Count"])


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """A fresh moto account with the jobs table, queue and DLQ, created from the topology."""
    import boto3
    from moto import mock_aws

    from jobpipe import wiring
    from jobpipe.local.resources import create_resources

    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        sqs = boto3.client("sqs")
        resources = create_resources(dynamodb, sqs, prefix="test")
        for name, value in resources.environment().items():
            monkeypatch.setenv(name, value)
        wiring.reset()
        yield Aws(resources.table_name, resources.queue_url, resources.dlq_url, dynamodb, sqs)
        wiring.reset()


def http_event(
    method: str,
    path: str,
    body: str | bytes | None = None,
    *,
    headers: dict[str, str] | None = None,
    principal: str | None = None,
    route_key: str | None = None,
    path_parameters: dict[str, str] | None = None,
    authorizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as API Gateway sends it with IAM auth
    (or with `authorizer` as the request context's authorizer, or with no authorizer at all when
    both are None)."""
    is_binary = isinstance(body, bytes)
    request_context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "a1b2c3d4e5",
        "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "a1b2c3d4e5",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": "pytest",
        },
        "requestId": "JKJaXmPLvHcESHA=",
        "routeKey": route_key or f"{method} {path}",
        "stage": "$default",
        "time": "24/Nov/2026:12:00:00 +0000",
        "timeEpoch": 1795521600000,
    }
    if authorizer is not None:
        request_context["authorizer"] = authorizer
    if principal is not None:
        request_context["authorizer"] = {
            "iam": {
                "accessKey": "ASIAEXAMPLE",
                "accountId": "123456789012",
                "callerId": "AROAEXAMPLE:session",
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": principal,
                "userId": "AROAEXAMPLE:session",
            }
        }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": request_context["routeKey"],
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "*/*",
            "content-length": str(len(body or "")),
            "host": request_context["domainName"],
            "user-agent": "pytest",
            "x-forwarded-for": "127.0.0.1",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
            **({"content-type": "application/json"} if body is not None else {}),
            **{k.lower(): v for k, v in (headers or {}).items()},
        },
        "requestContext": request_context,
        "isBase64Encoded": is_binary,
    }
    if body is not None:
        event["body"] = base64.b64encode(body).decode() if is_binary else body
    if path_parameters:
        event["pathParameters"] = path_parameters
    return event


# Two callers: sessions of two different roles (the owner of an assumed role is the role).
ALICE = "arn:aws:sts::123456789012:assumed-role/alice-app/i-0a1b2c3d"
BOB = "arn:aws:sts::123456789012:assumed-role/bob-app/i-0a1b2c3d"


@pytest.fixture
def local_principal(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> str:
    """The process names a local principal, as the local stack does."""
    from jobpipe import wiring
    from jobpipe.api.identity import LOCAL_PRINCIPAL
    from jobpipe.settings import ENV_LOCAL_PRINCIPAL

    monkeypatch.setenv(ENV_LOCAL_PRINCIPAL, LOCAL_PRINCIPAL)
    wiring.reset()
    return LOCAL_PRINCIPAL


@pytest.fixture
def lambda_context() -> Any:
    from jobpipe.local.event_source import LambdaContext

    return LambdaContext("jobpipe-test", timeout_seconds=10)


@pytest.fixture
def submit(lambda_context: Any) -> Callable[..., dict[str, Any]]:
    """POST /jobs through the real submit handler; returns the Lambda proxy response."""
    from jobpipe.handlers import submit as handler_module

    def call(
        body: Any,
        *,
        headers: dict[str, str] | None = None,
        principal: str | None = ALICE,
        raw: bool = False,
        authorizer: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        payload = body if raw else json.dumps(body)
        event = http_event(
            "POST", "/jobs", payload, headers=headers, principal=principal, authorizer=authorizer
        )
        return handler_module.handler(event, lambda_context)  # type: ignore[no-any-return]

    return call


@pytest.fixture
def get_status(lambda_context: Any) -> Callable[..., dict[str, Any]]:
    """GET /jobs/{id} through the real status handler."""
    from jobpipe.handlers import status as handler_module

    def call(
        job_id: str, *, principal: str | None = ALICE, authorizer: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        event = http_event(
            "GET",
            f"/jobs/{job_id}",
            principal=principal,
            route_key="GET /jobs/{id}",
            path_parameters={"id": job_id},
            authorizer=authorizer,
        )
        return handler_module.handler(event, lambda_context)  # type: ignore[no-any-return]

    return call


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])
