"""The lifecycle contract over HTTP against the local stack (worker processes, the real
handlers): cancel, progress, the attempt history, soft time limits and async jobs."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from jobpipe.client import ApiError, JobInfo, JobsClient
from jobpipe.local.stack import LocalStack
from tests.local.test_security import call

pytestmark = pytest.mark.slow


def wait_until(client: JobsClient, job_id: str, done: Callable[[JobInfo], bool]) -> JobInfo:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = client.get(job_id)
        if done(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never got there: {client.get(job_id)}")


def test_a_running_job_is_asked_to_cancel_and_stops_at_its_next_check(
    client: JobsClient,
) -> None:
    # Given a job that sleeps for 20 s, reporting progress, and is running
    job_id = client.submit("sleep", {"seconds": 20}).job_id
    wait_until(client, job_id, lambda j: j.status == "running")
    # When its owner cancels it
    asked = client.cancel(job_id)
    # Then the answer is the job asked to stop, and it ends cancelled soon after, not after 20 s
    assert asked.status in ("running", "cancelled") and asked.cancel_requested
    stopped = client.wait(job_id, timeout=10)
    assert stopped.status == "cancelled" and stopped.is_terminal
    assert stopped.progress is not None and stopped.progress.current < 20


def test_cancelling_again_answers_the_cancelled_job_and_a_finished_job_is_409(
    client: JobsClient,
) -> None:
    job_id = client.submit("sleep", {"seconds": 20}).job_id
    client.cancel(job_id)
    client.wait(job_id, timeout=10)
    assert client.cancel(job_id).status == "cancelled"
    done = client.submit("echo", {"n": 1}).job_id
    client.wait(done, timeout=20)
    with pytest.raises(ApiError) as refused:
        client.cancel(done)
    assert refused.value.status == 409


def test_cancelling_another_callers_job_is_404_and_a_malformed_id_400(
    client: JobsClient, local_stack: LocalStack
) -> None:
    # Given Alice's job
    status, submitted = call(local_stack, "POST", "/jobs", {"type": "echo"}, subject="alice")
    assert status == 202
    # When Bob cancels it / Then it is not his to see
    status, _ = call(local_stack, "POST", f"/jobs/{submitted['job_id']}/cancel", subject="bob")
    assert status == 404
    # And a malformed id is a 400
    with pytest.raises(ApiError) as malformed:
        client.cancel("not-a-job-id")
    assert malformed.value.status == 400


def test_progress_and_the_attempt_history_show_on_the_status(client: JobsClient) -> None:
    # Given a job that reports progress, and one that fails twice before it succeeds
    sleeping = client.submit("sleep", {"seconds": 1.5}).job_id
    flaky = client.submit("quick_flaky", {"fail_times": 2}).job_id
    # When they are read while and after they run
    seen = wait_until(client, sleeping, lambda j: j.progress is not None)
    done = client.wait(flaky, timeout=20)
    # Then the status shows how far the one got, and each failed attempt of the other
    assert seen.progress is not None and seen.progress.total == 1.5
    assert seen.progress.message == "sleeping"
    assert done.status == "succeeded"
    assert [(e.attempt, e.type) for e in done.errors] == [
        (1, "TransientJobError"),
        (2, "TransientJobError"),
    ]
    finished = client.wait(sleeping, timeout=20)
    assert finished.progress is not None and finished.progress.current == 1.5


def test_a_soft_time_limit_ends_an_attempt_inside_the_job(client: JobsClient) -> None:
    # Given a job type with a 0.2 s soft limit (listed as permanent) whose job sleeps 3 s
    job = client.wait(client.submit("overtime").job_id, timeout=20)
    # Then the limit was raised inside it, and the job failed with it
    assert job.status == "failed"
    assert job.error is not None and job.error.type == "SoftTimeLimitExceeded"


def test_an_async_job_is_awaited(client: JobsClient) -> None:
    ids = [client.submit("sleep_async", {"seconds": 0.5}).job_id for _ in range(3)]
    for job_id in ids:
        job = client.wait(job_id, timeout=20)
        assert (job.status, job.result) == ("succeeded", {"slept": 0.5})
