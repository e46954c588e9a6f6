"""Workflows on the in-memory fakes: a member's end moves its workflow on exactly once however
often (and however concurrently) it is reported, each item takes a bounded number of writes,
and what a crash cuts short is finished by a retry or the reaper."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jobpipe.adapters.memory import InMemoryJobQueue, InMemoryJobStore
from jobpipe.client import chain, chord, group, step
from jobpipe.domain.job import ErrorInfo, Job, JobMessage
from jobpipe.domain.record import workflow_key
from jobpipe.domain.registry import load_job_types
from jobpipe.domain.states import CANCEL, JobStatus, WorkflowStatus
from jobpipe.domain.workflow import INPUT_KEY, received
from jobpipe.errors import QueueError, StoreError
from jobpipe.followups import FollowUps
from jobpipe.reaper.service import Action, Reaper, ReaperPolicy
from jobpipe.workflow.service import WorkflowRequest, WorkflowService, WorkflowState
from tests.factories import fail, replay, start, succeed

POLICY = ReaperPolicy(running_grace_ms=60_000, pending_grace_ms=60_000, max_jobs_per_run=500)


def add(value: float) -> dict[str, Any]:
    return step("add", {"value": value})


class Pipeline:
    """A workflow service and the follow-ups over the fakes, and a runner that plays the
    worker's part: it starts each queued job, ends it, and reports the end."""

    def __init__(self, store: InMemoryJobStore | None = None) -> None:
        self.store = store or InMemoryJobStore()
        self.queue = InMemoryJobQueue()
        self.registry = load_job_types()
        self.service = WorkflowService(self.store, self.queue, self.registry)
        self.followups = FollowUps(self.store, self.queue, finish_workflow=self.service.finish)
        self.ended: list[Job] = []

    def submit(self, tree: dict[str, Any], key: str | None = None) -> str:
        request = WorkflowRequest(owner="alice", tree=tree, idempotency_key=key)
        return self.service.submit(request).workflow.workflow_id

    def state(self, workflow_id: str) -> WorkflowState:
        return self.service.get("alice", workflow_id)

    def queued(self) -> Iterator[Job]:
        while self.queue.messages:
            message = self.queue.messages.pop(0)
            job = self.store.get(JobMessage.from_body(message.body).job_id)
            if job is not None and job.status is JobStatus.PENDING:
                yield job

    def end(self, job: Job) -> Job:
        """Run one job as the worker would, without reporting its end."""
        now = int(time.time() * 1000)
        running = start(
            self.store,
            job.job_id,
            payload_hash=job.payload_hash,
            lease_expires_at=now + 60_000,
            now_ms=now,
        )
        params = dict(job.params)
        if job.step is not None and job.step.inputs is not None:
            inputs = self.store.get_many(_ids(job.step.inputs))
            params[INPUT_KEY] = received(job.step.inputs, inputs, job.step.takes_outcomes)
        if job.type == "fail":
            error = ErrorInfo("PermanentJobError", params.get("message", "failed"))
            ended = fail(self.store, running, error=error, dead_lettered=False, now_ms=now)
        else:
            result = params if job.type == "echo" else _add(params)
            ended = succeed(self.store, running, result=result, now_ms=now)
        self.ended.append(ended)
        return ended

    def run(self) -> None:
        """Run every queued job, reporting each end, until nothing is queued."""
        for job in self.queued():
            self.followups.job_ended(self.end(job))


def _ids(ref: Any) -> list[str]:
    return [i for r in ref for i in _ids(r)] if isinstance(ref, list) else [ref]


def _add(params: dict[str, Any]) -> float:
    def total(value: Any) -> float:
        if isinstance(value, list):
            return sum(total(v) for v in value)
        return float(value or 0)

    return float(params.get("value", 0)) + total(params.get(INPUT_KEY))


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline()


def test_a_chain_runs_in_order_and_ends_with_its_last_result(pipeline: Pipeline) -> None:
    # Given a chain of three adds / When it runs
    workflow_id = pipeline.submit(chain(add(1), add(2), add(3)))
    pipeline.run()
    # Then each step ran once, in order, and the workflow's result is the last one's
    state = pipeline.state(workflow_id)
    assert state.workflow.status is WorkflowStatus.SUCCEEDED
    assert state.result() == (6.0, None)
    assert [job.result for job in pipeline.ended] == [1.0, 3.0, 6.0]


def test_a_chord_body_is_released_once_however_often_each_end_is_reported(
    pipeline: Pipeline,
) -> None:
    # Given a chord of 30 header steps, all run, and each end reported three times over (a
    # redelivery, a retried write, the reaper) from what the store holds
    workflow_id = pipeline.submit(chord([add(i) for i in range(30)], add(0)))
    header = list(pipeline.queued())
    ended = [pipeline.end(job) for job in header]
    body_id = pipeline.state(workflow_id).workflow.member_ids()[-1]
    writes_before = pipeline.store.writes_to.get(body_id, 0)
    for _ in range(3):
        for job in ended:
            pipeline.followups.job_ended(job)
    # Then the body was released once, and queued once
    queued = [JobMessage.from_body(m.body).job_id for m in pipeline.queue.messages]
    assert queued == [body_id]
    # And its item took one write per header member's arrival and one for the release; each
    # later report was one refused conditional write (billed as one by DynamoDB too) that
    # changed nothing
    assert pipeline.store.writes_to[body_id] - writes_before == 30 + 1 + 2 * 30
    pipeline.run()
    state = pipeline.state(workflow_id)
    assert state.workflow.status is WorkflowStatus.SUCCEEDED
    assert state.result() == (float(sum(range(30))), None)


def test_ends_reported_at_the_same_time_release_the_body_exactly_once(pipeline: Pipeline) -> None:
    # Given a chord of 100 header steps that all end at once, on 8 threads
    workflow_id = pipeline.submit(chord([add(1) for _ in range(100)], add(0)))
    ended = [pipeline.end(job) for job in pipeline.queued()]
    barrier = threading.Barrier(8)

    def report(share: list[Job]) -> None:
        barrier.wait()
        for job in share:
            pipeline.followups.job_ended(job)

    threads = [threading.Thread(target=report, args=(ended[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then the body was released and queued once, and the workflow ends with all 100 results
    assert len(pipeline.queue.messages) == 1
    pipeline.run()
    assert pipeline.state(workflow_id).result() == (100.0, None)


def test_a_failed_step_skips_what_follows_and_fails_the_workflow_naming_it(
    pipeline: Pipeline,
) -> None:
    # Given a chain whose middle step is a group with a failing member
    tree = chain(add(1), group(add(1), step("fail", {"message": "bad input"})), add(1), add(1))
    workflow_id = pipeline.submit(tree)
    # When it runs
    pipeline.run()
    # Then the workflow failed naming the failed step, and the last two steps were skipped
    # (cancelled, never run) with the same cause
    state = pipeline.state(workflow_id)
    assert state.workflow.status is WorkflowStatus.FAILED
    error = state.workflow.error
    assert error is not None and (error.path, error.message) == ("chain[1].group[1]", "bad input")
    skipped = [job for job in state.members if job is not None][-2:]
    assert [job.status for job in skipped] == [JobStatus.CANCELLED] * 2
    assert all(job.attempts == 0 and job.cause == error for job in skipped)
    assert len(pipeline.ended) == 3


def test_a_group_that_continues_on_failure_passes_every_outcome_on(pipeline: Pipeline) -> None:
    # Given a chain of a group that continues on failure and an echo after it
    tree = chain(group(add(2), step("fail"), continue_on_failure=True), step("echo"))
    workflow_id = pipeline.submit(tree)
    # When it runs
    pipeline.run()
    # Then the echo ran with both outcomes, and the workflow succeeded
    state = pipeline.state(workflow_id)
    assert state.workflow.status is WorkflowStatus.SUCCEEDED
    result, _ = state.result()
    assert [o["status"] for o in result[INPUT_KEY]] == ["succeeded", "failed"]


def test_a_failed_member_replayed_later_leaves_its_workflow_failed(pipeline: Pipeline) -> None:
    # Given a chain whose first step failed, so the workflow failed and the second was skipped
    workflow_id = pipeline.submit(chain(step("fail"), add(1)))
    pipeline.run()
    first, second = pipeline.state(workflow_id).members
    assert first is not None and second is not None
    # When the failed step is replayed from the DLQ and then succeeds
    replay(pipeline.store, first.job_id, now_ms=int(time.time() * 1000))
    again = pipeline.store.get(first.job_id)
    assert again is not None
    now = int(time.time() * 1000)
    running = start(
        pipeline.store,
        first.job_id,
        payload_hash=again.payload_hash,
        lease_expires_at=now + 60_000,
        now_ms=now,
    )
    pipeline.followups.job_ended(succeed(pipeline.store, running, result=1, now_ms=now))
    # Then the workflow stays failed and the skipped step stays skipped: a workflow's end is
    # decided once (replay its members as a new workflow to run it again)
    state = pipeline.state(workflow_id)
    assert state.workflow.status is WorkflowStatus.FAILED
    assert state.members[1] is not None and state.members[1].status is JobStatus.CANCELLED
    assert pipeline.queue.messages == []


def test_a_fan_in_cut_short_is_finished_by_the_reaper(pipeline: Pipeline) -> None:
    # Given a chain of two whose first step succeeded, but the process died before its end
    # moved the workflow on
    workflow_id = pipeline.submit(chain(add(1), add(2)))
    first = next(pipeline.queued())
    pipeline.end(first)
    # When the reaper runs after the follow-up grace
    later = time.time() + 3600
    reaper = Reaper(
        pipeline.store,
        pipeline.queue,
        pipeline.registry,
        policy=POLICY,
        followups=pipeline.followups,
        clock=lambda: later,
    )
    report = reaper.run()
    # Then it did the follow-up: the second step is released and queued, and runs
    assert report.of(Action.FOLLOWED_UP) == [first.job_id]
    pipeline.run()
    assert pipeline.state(workflow_id).result() == (3.0, None)
    # And a second run finds nothing left to do
    assert reaper.run().of(Action.FOLLOWED_UP) == []


def test_a_release_whose_message_was_lost_is_sent_again(pipeline: Pipeline) -> None:
    # Given a chain of two whose first step succeeded, and a queue that fails the release's send
    workflow_id = pipeline.submit(chain(add(1), add(2)))
    ended = pipeline.end(next(pipeline.queued()))
    pipeline.queue.fail_sends = True
    with pytest.raises(QueueError):
        pipeline.followups.job_ended(ended)
    # When the end is reported again once the queue is back (the reaper's follow-up)
    pipeline.queue.fail_sends = False
    pipeline.followups.job_ended(ended)
    # Then the released step is sent, runs, and the workflow succeeds
    pipeline.run()
    assert pipeline.state(workflow_id).result() == (3.0, None)


class FailingCreates(InMemoryJobStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    def create_missing(self, jobs: Any) -> None:
        if self.fail:
            # Half the members are written, then the store is unavailable.
            super().create_missing(list(jobs)[: len(jobs) // 2])
            raise StoreError("DynamoDB TransactWriteItems failed: throttled")
        super().create_missing(jobs)


def test_a_creation_cut_short_is_finished_by_a_retry_with_the_same_key() -> None:
    # Given a workflow whose members could only be half written (503)
    pipeline = Pipeline(store := FailingCreates())
    tree = group(*[add(i) for i in range(10)])
    with pytest.raises(Exception, match="unavailable"):
        pipeline.submit(tree, key="k1")
    # When the caller retries with the same key
    store.fail = False
    workflow_id = pipeline.submit(tree, key="k1")
    # Then it is one workflow with every member written once and queued
    assert len(store.workflow_records) == 1 and len(store.records) == 10
    pipeline.run()
    assert pipeline.state(workflow_id).result() == ([float(i) for i in range(10)], None)


def test_a_keyless_creation_cut_short_is_finished_by_the_reaper() -> None:
    # Given a keyless workflow whose members could only be half written
    pipeline = Pipeline(store := FailingCreates())
    with pytest.raises(Exception, match="unavailable"):
        pipeline.submit(chain(add(1), add(1)))
    # When the reaper runs after the grace
    store.fail = False
    later = time.time() + 3600
    Reaper(
        store,
        pipeline.queue,
        pipeline.registry,
        policy=POLICY,
        followups=pipeline.followups,
        clock=lambda: later,
    ).run()
    # Then the workflow's members exist, its first step is queued, and it runs to the end
    (workflow_id,) = [k.removeprefix("wf#") for k in store.workflow_records]
    assert workflow_key(workflow_id) in store.workflow_records
    pipeline.run()
    assert pipeline.state(workflow_id).result() == (2.0, None)


def test_cancelling_a_workflow_cancels_its_steps_and_ends_it_cancelled(
    pipeline: Pipeline,
) -> None:
    # Given a chord whose header is queued
    workflow_id = pipeline.submit(chord([add(1), add(2)], add(0)))
    # When its owner cancels it
    state = pipeline.service.cancel("alice", workflow_id)
    # Then every step is cancelled, none runs, and the workflow is cancelled
    assert state.workflow.status is WorkflowStatus.CANCELLED
    assert all(job is not None and job.status is JobStatus.CANCELLED for job in state.members)
    pipeline.run()
    assert pipeline.ended == []


def test_a_member_cancelled_on_its_own_cancels_its_workflow(pipeline: Pipeline) -> None:
    # Given a chain whose first step is cancelled through the jobs API
    workflow_id = pipeline.submit(chain(add(1), add(1)))
    first_id = pipeline.state(workflow_id).workflow.member_ids()[0]
    cancelled = pipeline.store.apply(CANCEL, first_id, now=int(time.time() * 1000))
    # When its end is followed up
    pipeline.followups.job_ended(cancelled)
    # Then the workflow is cancelled, naming the step, and the rest never runs
    state = pipeline.state(workflow_id)
    assert state.workflow.status is WorkflowStatus.CANCELLED
    assert state.workflow.error is not None and state.workflow.error.job_id == first_id
    assert state.members[1] is not None and state.members[1].status is JobStatus.CANCELLED


def test_a_workflow_of_the_most_steps_allowed_is_written_whole_and_queued(
    pipeline: Pipeline,
) -> None:
    # Given a group of exactly the member limit / When it is submitted
    from jobpipe.topology import TOPOLOGY

    limit = TOPOLOGY.workflow.max_members
    workflow_id = pipeline.submit(group(*[add(1)] * limit))
    # Then every member is written once and queued once
    assert len(pipeline.store.records) == limit
    assert len(pipeline.queue.messages) == limit
    assert pipeline.state(workflow_id).workflow.members == limit


def test_first_steps_whose_messages_were_lost_are_queued_by_the_reaper() -> None:
    # Given a queue that takes none of a new workflow's first messages
    class Refusing(InMemoryJobQueue):
        refuse = True

        def send_many(self, bodies: list[str]) -> set[int]:
            return set(range(len(bodies))) if self.refuse else super().send_many(bodies)

    pipeline = Pipeline()
    pipeline.queue = queue = Refusing()
    pipeline.service = WorkflowService(pipeline.store, queue, pipeline.registry)
    pipeline.followups = FollowUps(pipeline.store, queue, finish_workflow=pipeline.service.finish)
    # When it is submitted
    workflow_id = pipeline.submit(group(add(1), add(2)))
    # Then the creation is done (nothing for a retry to send again) and nothing is queued yet
    assert pipeline.state(workflow_id).workflow.spec is None and queue.messages == []
    # And once the pending grace has passed, the reaper queues both, and the workflow runs
    queue.refuse = False
    later = time.time() + 3600
    Reaper(
        pipeline.store,
        queue,
        pipeline.registry,
        policy=POLICY,
        followups=pipeline.followups,
        clock=lambda: later,
    ).run()
    pipeline.run()
    assert pipeline.state(workflow_id).result() == ([1.0, 2.0], None)


def test_a_retry_after_a_creation_cut_short_writes_only_the_missing_steps() -> None:
    # Given a workflow of ten steps of which half were written before the store failed
    pipeline = Pipeline(store := FailingCreates())
    tree = group(*[add(i) for i in range(10)])
    with pytest.raises(Exception, match="unavailable"):
        pipeline.submit(tree, key="k2")
    store.fail = False
    # When the caller retries with the same key
    workflow_id = pipeline.submit(tree, key="k2")
    # Then each step was written once: the retry wrote the five missing ones and none that
    # existed (so a retry through throttling converges instead of failing again)
    ids = pipeline.state(workflow_id).workflow.member_ids()
    assert [store.writes_to.get(job_id) for job_id in ids] == [1] * 10
