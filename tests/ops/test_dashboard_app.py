"""The dashboard's own rules, on the in-memory fakes: it is never part of the deployed API, it
answers only on loopback and only to its own forms, and it shows what jobs hold as text."""

from __future__ import annotations

import time
from typing import Any

from werkzeug.test import Client

from jobpipe.adapters.memory import InMemoryJobStore
from jobpipe.api.routes import ROUTES
from jobpipe.ops.dashboard.app import Dashboard
from tests.factories import pending_job

LOCAL = {"Host": "127.0.0.1:8000"}


def dashboard(store: InMemoryJobStore) -> Dashboard:
    def no_dlq() -> Any:
        raise AssertionError("the DLQ is not read here")

    return Dashboard(store, no_dlq)


def test_the_dashboard_is_no_route_of_the_api_and_ships_outside_the_lambda_asset() -> None:
    from infra.bundling import NOT_SHIPPED

    assert not any(route.path.startswith("/ui") for route in ROUTES)
    assert "ops" in NOT_SHIPPED


def test_a_request_for_another_host_is_refused() -> None:
    # Given the dashboard / When a page on another name (DNS rebinding) asks for it
    browser = Client(dashboard(InMemoryJobStore()))
    answer = browser.get("/ui", headers={"Host": "evil.example:8000"})
    # Then it is refused, and the same request on loopback is served
    assert answer.status_code == 403
    assert browser.get("/ui", headers=LOCAL).status_code == 200
    assert browser.get("/ui", headers={"Host": "localhost:8001"}).status_code == 200


def test_cancel_needs_the_token_the_page_was_served_with() -> None:
    # Given a pending job
    store = InMemoryJobStore()
    job = pending_job(owner="bob")
    store.create(job)
    app = dashboard(store)
    browser = Client(app)
    path = f"/ui/jobs/{job.job_id}/cancel"
    # When the cancel form is posted without the token, then with it
    refused = browser.post(path, data={"token": "guess"}, headers=LOCAL)
    assert refused.status_code == 403 and store.get(job.job_id) == job
    done = browser.post(path, data={"token": app.token}, headers=LOCAL)
    # Then only the second cancels the job (for its owner, whoever that is)
    assert done.status_code == 303
    cancelled = store.get(job.job_id)
    assert cancelled is not None and cancelled.status.value == "cancelled"
    assert "Cancelled" in browser.get(done.headers["Location"], headers=LOCAL).get_data(True)


def test_what_a_job_holds_is_shown_as_text_never_as_markup() -> None:
    # Given a job whose type, owner and params hold markup
    store = InMemoryJobStore()
    job = pending_job("echo", {"note": "<script>alert(1)</script>"}, owner="<b>eve</b>")
    store.create(job)
    browser = Client(dashboard(store))
    # When its page and the list are read
    pages = [
        browser.get(f"/ui/jobs/{job.job_id}", headers=LOCAL).get_data(True),
        browser.get("/ui", headers=LOCAL).get_data(True),
    ]
    # Then the markup is escaped everywhere, and no page allows inline script
    for page in pages:
        assert "<script>alert" not in page and "<b>eve</b>" not in page
        assert "&lt;b&gt;eve&lt;/b&gt;" in page
    headers = browser.get("/ui", headers=LOCAL).headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]


def test_an_unknown_job_or_page_is_404() -> None:
    browser = Client(dashboard(InMemoryJobStore()))
    assert browser.get("/ui/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=LOCAL).status_code == 404
    assert browser.get("/ui/nothing", headers=LOCAL).status_code == 404


def test_an_aws_error_is_a_page_that_names_its_code_not_a_traceback() -> None:
    from botocore.exceptions import ClientError

    # Given credentials that may not read the DLQ
    def denied() -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ReceiveMessage")

    browser = Client(Dashboard(InMemoryJobStore(), denied))
    # When the DLQ page is read / Then it says what AWS answered, and nothing else
    answer = browser.get("/ui/dlq", headers=LOCAL)
    page = answer.get_data(True)
    assert answer.status_code == 500
    assert "AWS answered AccessDenied" in page and "Traceback" not in page


def test_a_workflow_step_links_to_its_workflow_shown_as_a_tree() -> None:
    # Given a chain of two whose first step failed (on the fakes)
    from jobpipe.adapters.memory import InMemoryJobQueue
    from jobpipe.domain.registry import load_job_types
    from jobpipe.domain.states import FAIL, START
    from jobpipe.followups import FollowUps
    from jobpipe.workflow.service import WorkflowRequest, WorkflowService

    store, queue = InMemoryJobStore(), InMemoryJobQueue()
    service = WorkflowService(store, queue, load_job_types())
    tree = {"chain": [{"type": "fail", "params": {"message": "<b>bad</b>"}}, {"type": "echo"}]}
    state = service.submit(WorkflowRequest(owner="bob", tree=tree))
    first = state.members[0]
    assert first is not None
    now = int(time.time() * 1000)
    running = store.apply(
        START, first.job_id, payload_hash=first.payload_hash, lease=now + 60_000, now=now, due=now
    )
    error = [{"type": "PermanentJobError", "message": "<b>bad</b>", "attempt": 1, "at": now}]
    failed = store.apply(
        FAIL, running, attempt=1, errors=error, dead_lettered=False, progress=None, now=now
    )
    FollowUps(store, queue).job_ended(failed)
    browser = Client(dashboard(store))
    # When the failed step's page and then its workflow's are opened
    job_page = browser.get(f"/ui/jobs/{first.job_id}", headers=LOCAL).get_data(True)
    workflow_id = state.workflow.workflow_id
    assert f"/ui/workflows/{workflow_id}" in job_page
    page = browser.get(f"/ui/workflows/{workflow_id}", headers=LOCAL).get_data(True)
    # Then the tree shows each step's status and job, the cause is named, and markup is text
    assert "chain[0]" in page and "chain[1]" in page and "cancelled" in page
    assert "&lt;b&gt;bad&lt;/b&gt;" in page and "<b>bad</b>" not in page
    assert browser.get("/ui/workflows/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=LOCAL).status_code == 404
