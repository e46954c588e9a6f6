"""Callers cannot see each other's jobs, through the local stack over HTTP: the gateway passes a
bearer token's claims on as API Gateway's JWT authorizer does, and the handlers own jobs by
issuer and subject."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from jobpipe.local.stack import LocalStack

pytestmark = [pytest.mark.xdist_group("local")]

ISSUER = "https://issuer.example"


def token(subject: str) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'iss': ISSUER, 'sub': subject})}.signature"


def call(
    stack: LocalStack, method: str, path: str, body: Any = None, subject: str | None = None
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        stack.api_url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"content-type": "application/json"},
    )
    if subject is not None:
        request.add_header("authorization", f"Bearer {token(subject)}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_a_caller_cannot_read_another_callers_job(local_stack: LocalStack) -> None:
    # Given a job Alice submitted
    status, submitted = call(local_stack, "POST", "/jobs", {"type": "echo"}, subject="alice")
    assert status == 202
    path = f"/jobs/{submitted['job_id']}"
    # When Alice, Bob and an anonymous caller read it
    alice = call(local_stack, "GET", path, subject="alice")
    bob = call(local_stack, "GET", path, subject="bob")
    anonymous = call(local_stack, "GET", path)
    # Then only Alice sees it; for the others it does not exist (404, not 403)
    assert alice[0] == 200 and alice[1]["job_id"] == submitted["job_id"]
    for status, body in (bob, anonymous):
        assert status == 404
        assert body["error"]["type"] == "JobNotFoundError"
        assert "alice" not in json.dumps(body)


def test_idempotency_keys_do_not_cross_callers(local_stack: LocalStack) -> None:
    # Given Alice used an Idempotency-Key
    key = {"idempotency-key": "same-key"}

    def submit(subject: str) -> str:
        request = urllib.request.Request(
            local_stack.api_url + "/jobs",
            data=json.dumps({"type": "echo", "params": {"by": subject}}).encode(),
            method="POST",
            headers={
                "content-type": "application/json",
                "authorization": f"Bearer {token(subject)}",
                **key,
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(json.loads(response.read())["job_id"])

    # When Bob sends another body under the same key
    alice_job, bob_job = submit("alice"), submit("bob")
    # Then Bob gets his own job, not a conflict and not Alice's job
    assert alice_job != bob_job
