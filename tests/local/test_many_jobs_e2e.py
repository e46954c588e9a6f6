"""Listing and batch submit over HTTP on the local stack: pagination, filters, foreign cursors,
and a batch refused in part."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from jobpipe.client import ApiError, BatchJob, JobsClient, SubmittedJob
from jobpipe.local.stack import LocalStack
from tests.local.test_security import call

pytestmark = pytest.mark.slow


def listed(stack: LocalStack, subject: str, **query: Any) -> tuple[int, dict[str, Any]]:
    encoded = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
    return call(stack, "GET", f"/jobs?{encoded}", subject=subject)


def batch(stack: LocalStack, subject: str, jobs: list[Any]) -> tuple[int, dict[str, Any]]:
    return call(stack, "POST", "/jobs/batch", {"jobs": jobs}, subject=subject)


def test_a_callers_jobs_come_back_newest_first_page_by_page(local_stack: LocalStack) -> None:
    # Given 25 jobs Carol submitted in one batch, and one of Dan's
    status, body = batch(
        local_stack, "carol", [{"type": "echo", "params": {"i": i}} for i in range(25)]
    )
    assert status == 200 and [r["status"] for r in body["results"]] == [202] * 25
    submitted = [r["job"]["job_id"] for r in body["results"]]
    call(local_stack, "POST", "/jobs", {"type": "echo"}, subject="dan")
    # When Carol lists them 10 a page, following the cursor
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        status, page = listed(local_stack, "carol", limit=10, cursor=cursor)
        assert status == 200 and len(page["jobs"]) <= 10
        seen += [job["job_id"] for job in page["jobs"]]
        pages += 1
        cursor = page.get("next_cursor")
        if cursor is None:
            break
    # Then she sees exactly her 25, newest first, in three pages, without results
    assert seen == sorted(submitted, reverse=True)
    assert pages == 3


def test_filters_combine_and_an_unknown_status_is_422(local_stack: LocalStack) -> None:
    # Given Erin's echo jobs finished and a sleep job cancelled
    client = JobsClient(local_stack.api_url)
    erin = _as(client, "erin")
    echoes = [erin.submit("echo", {"i": i}).job_id for i in range(3)]
    for job_id in echoes:
        erin.wait(job_id, timeout=30)
    sleeper = erin.submit("sleep", {"seconds": 20}).job_id
    erin.cancel(sleeper)
    assert erin.wait(sleeper, timeout=15).cancelled
    # When she lists by type, by status, and by both
    by_type = listed(local_stack, "erin", type="sleep")[1]["jobs"]
    cancelled = listed(local_stack, "erin", status="cancelled")[1]["jobs"]
    both = listed(local_stack, "erin", type="echo", status="succeeded,failed")[1]["jobs"]
    # Then each answers exactly its jobs
    assert [j["job_id"] for j in by_type] == [sleeper]
    assert [j["job_id"] for j in cancelled] == [sleeper]
    assert [j["job_id"] for j in both] == sorted(echoes, reverse=True)
    assert all(j["status"] == "succeeded" and "result" not in j for j in both)
    # And a status that does not exist is refused with the ones that do
    status, refused = listed(local_stack, "erin", status="done")
    assert status == 422 and "succeeded" in refused["error"]["message"]
    assert listed(local_stack, "erin", limit=101)[0] == 422


def test_another_callers_cursor_is_refused_and_a_forged_one_too(local_stack: LocalStack) -> None:
    # Given Frank's jobs, more than a page
    batch(local_stack, "frank", [{"type": "echo"} for _ in range(3)])
    batch(local_stack, "grace", [{"type": "echo"} for _ in range(2)])
    frank_cursor = listed(local_stack, "frank", limit=1)[1]["next_cursor"]
    # When Grace passes Frank's cursor, or one made up, or Frank's with other filters
    graces = listed(local_stack, "grace", limit=1, cursor=frank_cursor)
    made_up = listed(local_stack, "grace", cursor="eyJ2IjoxfQ")
    other_filter = listed(local_stack, "frank", limit=1, cursor=frank_cursor, type="sleep")
    # Then each is a 400 that says what to do, and shows no job
    for status, body in (graces, made_up, other_filter):
        assert status == 400 and "jobs" not in body
        assert body["error"]["type"] == "InvalidCursorError"
        assert "start again" in body["error"]["message"]
    # And Frank's own cursor still works for him
    assert listed(local_stack, "frank", limit=1, cursor=frank_cursor)[0] == 200


def test_a_batch_answers_each_job_in_place_and_writes_none_it_refused(
    local_stack: LocalStack,
) -> None:
    # Given a batch of a good job, an unknown type, invalid params, a job that is not an
    # object, a good keyed job and the same key again with another body
    jobs: list[Any] = [
        {"type": "echo", "params": {"n": 1}},
        {"type": "nope"},
        {"type": "sleep", "params": {"seconds": "soon"}},
        "echo",
        {"type": "echo", "params": {"n": 2}, "idempotency_key": "k-1"},
        {"type": "echo", "params": {"n": 3}, "idempotency_key": "k-1"},
    ]
    # When Heidi sends it
    status, body = batch(local_stack, "heidi", jobs)
    results = body["results"]
    # Then each job is answered in its place with the status it would get alone
    assert status == 200
    assert [r["status"] for r in results] == [202, 422, 422, 422, 202, 409]
    alone = call(local_stack, "POST", "/jobs", {"type": "nope"}, subject="heidi")
    assert alone[0] == 422 and results[1]["error"] == alone[1]["error"]
    assert results[2]["error"]["fields"][0]["loc"] == "params.seconds"
    # And only the two accepted jobs exist, and run
    accepted = [results[0]["job"]["job_id"], results[4]["job"]["job_id"]]
    listed_ids = [j["job_id"] for j in listed(local_stack, "heidi")[1]["jobs"]]
    assert sorted(listed_ids) == sorted(accepted)
    client = _as(JobsClient(local_stack.api_url), "heidi")
    assert all(client.wait(job_id, timeout=30).succeeded for job_id in accepted)
    # And the same batch sent again answers the keyed job with the same job
    again = batch(local_stack, "heidi", [jobs[4]])[1]["results"]
    assert again[0]["job"]["job_id"] == accepted[1]


def test_a_batch_over_the_limits_is_refused_whole(local_stack: LocalStack) -> None:
    too_many = batch(local_stack, "ivan", [{"type": "echo"}] * 101)
    empty = batch(local_stack, "ivan", [])
    large_job = batch(local_stack, "ivan", [{"type": "echo", "params": {"x": "y" * 300_000}}])
    # 21 jobs of 250 KB: each within the single-job limit, together over the batch's 5 MiB
    over = batch(local_stack, "ivan", [{"type": "echo", "params": {"x": "y" * 250_000}}] * 21)
    assert too_many[0] == 422 and empty[0] == 422
    assert over[0] == 413 and over[1]["error"]["type"] == "RequestTooLargeError"
    assert large_job[0] == 200 and large_job[1]["results"][0]["status"] == 413
    assert listed(local_stack, "ivan")[1]["jobs"] == []


def test_the_client_submits_many_and_lists_page_by_page(local_stack: LocalStack) -> None:
    client = _as(JobsClient(local_stack.api_url), "judy")
    # Given 120 jobs submitted at once (two requests) and one refused
    answers = client.submit_many([BatchJob("echo", {"i": i}) for i in range(120)] + [BatchJob("x")])
    assert all(isinstance(a, SubmittedJob) for a in answers[:120])
    refused = answers[120]
    assert isinstance(refused, ApiError) and refused.status == 422
    # When they are listed 50 a page
    pages = list(client.list(limit=50, job_type="echo"))
    # Then every one comes once, newest first
    ids = [job.job_id for page in pages for job in page.jobs]
    assert ids == sorted(
        (a.job_id for a in answers[:120] if isinstance(a, SubmittedJob)), reverse=True
    )
    assert [len(page.jobs) for page in pages] == [50, 50, 20]


def _as(client: JobsClient, subject: str) -> JobsClient:
    """The client, calling as `subject` (a JWT the local gateway passes on as API Gateway's
    authorizer would)."""
    from tests.local.test_security import token

    class Bearer:
        def sign(
            self, method: str, url: str, headers: dict[str, str], body: bytes
        ) -> dict[str, str]:
            return {**headers, "authorization": f"Bearer {token(subject)}"}

    return JobsClient(client.base_url, signer=Bearer())
