"""The dashboard in a real browser against the local stack (worker processes, moto): load it,
filter, open a job, cancel it, replay a dead letter and read the result back, watch it refresh.

With JOBPIPE_SCREENSHOTS=1 the tests also write the README's screenshots under docs/."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from jobpipe.client import JobInfo, JobsClient
from jobpipe.local.stack import LocalStack
from tests.local.conftest import BROKEN

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

DOCS = Path(__file__).parents[2] / "docs"


def screenshot(page: Any, name: str) -> None:
    if os.environ.get("JOBPIPE_SCREENSHOTS"):
        page.screenshot(path=str(DOCS / f"{name}.png"))


def wait_for(client: JobsClient, job_id: str, ok: Any) -> JobInfo:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = client.get(job_id)
        if ok(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"{job_id} never got there: {client.get(job_id)}")


def row_ids(page: Any) -> list[str]:
    return list(
        page.locator("#jobs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.jobId)")
    )


def test_an_operator_filters_opens_and_cancels_a_job(
    page: Any, local_stack: LocalStack, client: JobsClient
) -> None:
    # Given a finished echo job, a job that failed, and a long job running
    done = client.submit("echo", {"hello": "browser"}).job_id
    failed = client.submit("fail", {"message": "no luck"}).job_id
    running = client.submit("sleep", {"seconds": 20}).job_id
    client.wait(done, timeout=30)
    client.wait(failed, timeout=30)
    wait_for(client, running, lambda j: j.status == "running")
    # When the operator loads the dashboard
    page.goto(f"{local_stack.api_url}/ui")
    # Then the counts by state and by type, and the jobs newest first, are shown
    assert page.locator("#counts-status [data-count='succeeded']").count() == 1
    assert page.locator("#counts-type [data-count='sleep']").count() == 1
    assert row_ids(page)[:3] == [running, failed, done]
    screenshot(page, "dashboard")
    # When they filter to failed jobs
    page.select_option("#filter-status", "failed")
    page.click("#apply-filters")
    page.wait_for_url("**status=failed**")
    # Then only failed jobs are listed, the one that failed among them
    assert failed in row_ids(page)
    assert all(s == "failed" for s in page.locator("#jobs tbody .status").all_inner_texts())
    # When they open it / Then its owner, error and failed attempt are shown
    page.click(f"a[href$='/jobs/{failed}']")
    assert page.inner_text("#job-id") == failed
    assert page.inner_text("#job-owner") == "local"
    assert "no luck" in page.inner_text("#job-error")
    assert page.locator("#cancel").count() == 0  # a finished job cannot be cancelled
    # When they open the running job and cancel it
    page.goto(f"{local_stack.api_url}/ui/jobs/{running}")
    assert '"seconds": 20' in page.inner_text("#job-params")
    screenshot(page, "dashboard-job")
    page.click("#cancel")
    # Then the page says so, and the job ends cancelled well before its 20 s
    assert "Asked to stop" in page.inner_text("#flash") or "Cancelled" in page.inner_text("#flash")
    assert client.wait(running, timeout=10).cancelled
    page.reload()
    assert page.inner_text("#job-status").startswith("cancelled")


def test_an_operator_replays_a_dead_letter_and_reads_the_result(
    page: Any, local_stack: LocalStack, client: JobsClient
) -> None:
    # Given a job dead-lettered while its type was broken
    BROKEN.set()
    try:
        job_id = client.submit("until_fixed", {}).job_id
        assert client.wait(job_id, timeout=30).dead_lettered
    finally:
        BROKEN.clear()
    # When the operator opens the DLQ / Then the job is there with its error
    page.goto(f"{local_stack.api_url}/ui")
    page.click("nav >> text=Dead letters")
    letter = page.locator(f"#dead-letters tr[data-job-id='{job_id}']")
    assert "TransientJobError" in letter.inner_text()
    # When they dry-run a replay of that type
    page.fill("#dlq-type", "until_fixed")
    page.click("#dry-run")
    # Then it says what it would do, and the job is still dead-lettered
    assert page.inner_text("#report-title").startswith("Dry run")
    assert job_id in page.inner_text("#report")
    assert client.get(job_id).status == "failed"
    screenshot(page, "dashboard-dlq")
    # When they replay it (the fix deployed)
    page.click("#replay")
    assert page.inner_text("#report-title") == "Replayed"
    # Then the job runs again and its result can be read on its page
    wait_for(client, job_id, lambda j: j.status == "succeeded")
    page.goto(f"{local_stack.api_url}/ui/jobs/{job_id}")
    assert page.inner_text("#job-status") == "succeeded"
    assert page.locator("#job-result").count() == 1
    assert page.locator(f"#dead-letters tr[data-job-id='{job_id}']").count() == 0


def test_the_job_list_refreshes_itself(
    page: Any, local_stack: LocalStack, client: JobsClient
) -> None:
    # Given the dashboard open on echo jobs
    page.goto(f"{local_stack.api_url}/ui?type=echo")
    # When a job is submitted meanwhile
    job_id = client.submit("echo", {"late": True}).job_id
    # Then it appears in the list without a reload
    page.wait_for_selector(f"#jobs tr[data-job-id='{job_id}']", timeout=15_000)
    assert int(page.get_attribute("#refreshed", "data-refreshes") or "0") >= 1


def test_a_form_from_elsewhere_cannot_cancel_a_job(
    local_stack: LocalStack, client: JobsClient
) -> None:
    import urllib.error
    import urllib.request

    # Given a running job
    job_id = client.submit("sleep", {"seconds": 2}).job_id
    # When a page elsewhere posts the cancel form without the dashboard's token
    request = urllib.request.Request(
        f"{local_stack.api_url}/ui/jobs/{job_id}/cancel", data=b"token=guess", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    # Then it is refused, and the job is not cancelled
    assert refused.value.code == 403
    assert not client.get(job_id).cancel_requested
