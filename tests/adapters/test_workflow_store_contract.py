"""The job store's workflow methods, run against the DynamoDB adapter (on moto) and the in-memory
fake: many jobs written and read in few requests without overwriting any, a workflow's record
moving once, and the outbox listing only what has follow-ups."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from jobpipe.domain.job import Job, Step, Waiter, new_job_id
from jobpipe.domain.states import (
    SUCCEED,
    WORKFLOW_ARRIVE,
    WORKFLOW_CREATED,
    WORKFLOW_FAIL,
    WORKFLOW_SUCCEED,
    JobStatus,
    WorkflowStatus,
)
from jobpipe.domain.workflow import Workflow
from jobpipe.errors import IllegalTransitionError
from jobpipe.ports import JobStore
from tests.adapters.test_job_store_contract import new_job, started
from tests.adapters.test_job_store_contract import store as store

NOW = int(time.time() * 1000)
CAUSE = {"type": "PermanentJobError", "message": "bad", "job_id": "x", "path": "chain[0]"}


def a_workflow(members: int = 2) -> Workflow:
    return Workflow(
        workflow_id=new_job_id(),
        owner="alice",
        status=WorkflowStatus.RUNNING,
        created_at=NOW,
        updated_at=NOW,
        expires_at=NOW // 1000 + 86400,
        shape={"group": list(range(members))},
        members=members,
        result=list(range(members)),
        spec={"tree": {"group": []}, "params": []},
        outbox_due=NOW,
    )


def member(workflow_id: str, position: int = 0) -> Job:
    waiter = Waiter(job_id=None, position=position, takes_outcomes=False, wait_count=2)
    step = Step(workflow_id=workflow_id, path=f"group[{position}]", waiters=(waiter,))
    return replace(new_job(), step=step)


def test_many_jobs_are_written_once_and_an_existing_one_is_never_overwritten(
    store: JobStore,
) -> None:
    # Given one job that exists and has started
    first = new_job()
    store.create(first)
    started(store, first)
    # When it is written again among 249 new ones (more than one transaction holds)
    others = [new_job() for _ in range(249)]
    store.create_missing([first, *others])
    # Then every new one reads back whole, and the started one is still started
    found = store.get_many([job.job_id for job in [first, *others]])
    assert len(found) == 250
    assert found[first.job_id].status is JobStatus.RUNNING
    assert all(found[job.job_id] == job for job in others)


def test_reading_many_omits_the_missing_and_reads_each_once(store: JobStore) -> None:
    jobs = [new_job() for _ in range(3)]
    store.create_missing(jobs)
    ids = [jobs[0].job_id, new_job_id(), jobs[0].job_id, jobs[2].job_id]
    assert set(store.get_many(ids)) == {jobs[0].job_id, jobs[2].job_id}
    assert store.get_many([]) == {}


def test_a_workflow_is_created_once_and_reads_back_whole(store: JobStore) -> None:
    # Given a workflow / When it is created twice
    workflow = a_workflow()
    assert store.create_workflow(workflow) is None
    existing = store.create_workflow(replace(workflow, members=9))
    # Then the second creation answers the first, unchanged
    assert existing == workflow
    assert store.get_workflow(workflow.workflow_id) == workflow
    assert store.get_workflow(new_job_id()) is None


def test_a_workflow_counts_arrivals_once_and_ends_once(store: JobStore) -> None:
    # Given a running workflow of two
    workflow = a_workflow()
    store.create_workflow(workflow)
    # When a member arrives twice, then the other
    store.apply_workflow(WORKFLOW_ARRIVE, workflow.workflow_id, position=0)
    store.apply_workflow(WORKFLOW_ARRIVE, workflow.workflow_id, position=0)
    counted = store.apply_workflow(WORKFLOW_ARRIVE, workflow.workflow_id, position=1)
    # Then each is counted once
    assert counted.arrived == frozenset({0, 1})
    # And it ends once: a later end is refused, naming the workflow as it is
    store.apply_workflow(WORKFLOW_SUCCEED, workflow.workflow_id, now=NOW + 1)
    with pytest.raises(IllegalTransitionError) as refused:
        store.apply_workflow(WORKFLOW_FAIL, workflow.workflow_id, error=CAUSE, now=NOW + 2)
    assert isinstance(refused.value.job, Workflow)
    assert refused.value.job.status is WorkflowStatus.SUCCEEDED


def test_a_creation_is_marked_done_once_and_forgets_its_tree(store: JobStore) -> None:
    workflow = a_workflow()
    store.create_workflow(workflow)
    done = store.apply_workflow(WORKFLOW_CREATED, workflow.workflow_id)
    assert done.spec is None and done.outbox_due is None
    with pytest.raises(IllegalTransitionError):
        store.apply_workflow(WORKFLOW_CREATED, workflow.workflow_id)


def test_the_outbox_lists_members_and_creations_due_and_no_plain_job(store: JobStore) -> None:
    # Given a workflow being created, a member that ended and a plain job that ended
    workflow = a_workflow()
    store.create_workflow(workflow)
    step = member(workflow.workflow_id)
    plain = new_job()
    for job in (step, plain):
        store.create(job)
        running = started(store, job, now=NOW + 1)
        store.apply(SUCCEED, running, attempt=1, result="1", progress=None, now=NOW + 2)
    # When the outbox is read for what is due
    due = list(store.followups_due(before_ms=NOW + 10_000, limit=50))
    # Then it lists the member's end and the creation, and not the plain job (which has no
    # follow-ups, and is in no index)
    assert {(d.key, d.workflow_id) for d in due} == {
        (step.job_id, None),
        (f"wf#{workflow.workflow_id}", workflow.workflow_id),
    }
    assert list(store.followups_due(before_ms=NOW, limit=50)) == []
