"""The stuck-job reaper: what it finds (through its indexes), how it resolves each job, and that
it is safe beside the worker and beside another reaper."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, cast

import pytest

from jobpipe.domain.registry import job_type
from jobpipe.domain.states import JobStatus
from jobpipe.local.event_source import BatchResult, InvocationKilled
from jobpipe.ports import JobQueue, StuckJob
from jobpipe.reaper.service import Action, Reaper, ReaperPolicy
from jobpipe.topology import TOPOLOGY
from tests.factories import pending_job, start
from tests.worker.conftest import INSTANT, AnyParams, Pipeline

POLICY = ReaperPolicy.from_topology()
# Past every grace period: the lease's end + visibility timeout + margin, and the pending grace.
LONG_AFTER = (
    max(POLICY.running_grace_ms, POLICY.pending_grace_ms) / 1000
    + TOPOLOGY.worker.timeout_seconds
    + 60
)


class QueueWithBacklog:
    """The pipeline's queue, whose oldest message has waited `age` seconds on the test clock.
    (moto publishes no SQS metrics; the metric's own path is tested with the SQS adapter.)"""

    def __init__(self, queue: Any, age: float) -> None:
        self._queue = queue
        self._age = age

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)

    def oldest_message_age_seconds(self) -> float:
        return self._age


def reaper_of(pipeline: Pipeline, policy: ReaperPolicy = POLICY, backlog: float = 0.0) -> Reaper:
    return Reaper(
        pipeline.store,
        cast(JobQueue, QueueWithBacklog(pipeline.queue, backlog)),
        pipeline.registry,
        policy=policy,
        clock=pipeline.clock,
    )


def sqs_dead_letters(pipeline: Pipeline, result: BatchResult, *job_ids: str) -> None:
    """What SQS does after too many receives: the messages a batch left on the jobs queue move
    to the DLQ."""
    for receipt in result.left_receipts:
        pipeline.aws.sqs.delete_message(QueueUrl=pipeline.aws.queue_url, ReceiptHandle=receipt)
    for job_id in job_ids:
        body = pipeline.job(job_id).message().to_body()
        pipeline.aws.sqs.send_message(QueueUrl=pipeline.aws.dlq_url, MessageBody=body)


def stale_view(job_type: str, stale: list[StuckJob]) -> Iterator[StuckJob]:
    """A listing read earlier: what another reaper saw before the job moved on."""
    return iter(stale if job_type == "counted" else [])


def lose_messages(pipeline: Pipeline) -> None:
    """The jobs queue loses what it holds (a message that was never sent, or is gone)."""
    pipeline.aws.sqs.purge_queue(QueueUrl=pipeline.aws.queue_url)


def test_a_job_cut_off_on_its_last_attempt_whose_message_sqs_dead_lettered_is_failed(
    pipeline: Pipeline,
) -> None:
    # Given a job with one attempt whose worker died mid-run, and whose message SQS then moved
    # to the DLQ (so no worker will ever see it again)
    @job_type("one-shot", max_attempts=1, backoff=INSTANT, timeout=5, into=pipeline.registry)
    def one_shot(params: AnyParams) -> None:
        raise InvocationKilled("the Lambda timed out mid-job")

    job_id = pipeline.submit("one-shot")
    sqs_dead_letters(pipeline, pipeline.poll(), job_id)
    assert pipeline.job(job_id).status is JobStatus.RUNNING
    # When the reaper runs long after the lease ended
    pipeline.clock.advance(LONG_AFTER)
    report = reaper_of(pipeline).run()
    # Then the job is failed and dead-lettered, as exhausted
    assert report.of(Action.ABANDONED) == [job_id]
    job = pipeline.job(job_id)
    assert job.status is JobStatus.FAILED and job.dead_lettered is True
    assert job.error is not None and job.error.type == "AttemptsExhaustedError"
    # And nothing is queued again; the message SQS moved is the job's one DLQ entry
    assert pipeline.aws.queue_depth() == 0
    assert pipeline.aws.queue_depth(pipeline.aws.dlq_url) == 1
    # And a second run finds nothing
    assert reaper_of(pipeline).run().actions == {}


def test_a_running_job_with_attempts_left_is_requeued_once_and_then_runs_once(
    pipeline: Pipeline,
) -> None:
    # Given a job whose first run was cut off and whose message is gone from the jobs queue
    job_id = pipeline.submit("counted")
    pipeline.kill_next.add(job_id)
    sqs_dead_letters(pipeline, pipeline.poll(), job_id)
    # When the reaper runs long after the lease ended, twice in a row
    pipeline.clock.advance(LONG_AFTER)
    first = reaper_of(pipeline).run()
    second = reaper_of(pipeline).run()
    # Then the first run re-enqueued it, and the second found nothing to do
    assert first.of(Action.REQUEUED) == [job_id]
    assert second.actions == {}
    assert pipeline.aws.queue_depth() == 1
    # And the worker then runs it exactly once, on its second attempt
    pipeline.drain()
    assert pipeline.runs(job_id) == 1
    job = pipeline.job(job_id)
    assert job.status is JobStatus.SUCCEEDED and job.attempts == 2
    assert pipeline.aws.queue_depth() == 0


def test_a_pending_job_without_a_message_is_requeued_and_then_succeeds(pipeline: Pipeline) -> None:
    # Given a pending job whose message never reached the queue
    job_id = pipeline.submit("counted")
    lose_messages(pipeline)
    # When the reaper runs after the pending grace period
    pipeline.clock.advance(LONG_AFTER)
    report = reaper_of(pipeline).run()
    # Then it re-enqueued the job, which the worker then runs once
    assert report.of(Action.REQUEUED) == [job_id]
    pipeline.drain()
    assert pipeline.runs(job_id) == 1
    assert pipeline.job(job_id).status is JobStatus.SUCCEEDED


def test_a_retrying_job_whose_message_is_gone_is_requeued_once_its_retry_is_overdue(
    pipeline: Pipeline,
) -> None:
    # Given a job retrying after a failed first attempt, whose message SQS then lost (moved to
    # the DLQ after throttled receives, say)
    job_id = pipeline.submit("flaky-fast", {"fail_times": 1})
    pipeline.poll()
    assert pipeline.job(job_id).status is JobStatus.RETRYING
    lose_messages(pipeline)
    # When the reaper runs before the retry is overdue, then it leaves the job alone
    assert reaper_of(pipeline).run().actions == {}
    # When it runs after the retry is overdue by the pending grace period
    pipeline.clock.advance(LONG_AFTER)
    report = reaper_of(pipeline).run()
    # Then it re-enqueued the job, whose second attempt then succeeds
    assert report.of(Action.REQUEUED) == [job_id]
    pipeline.drain()
    job = pipeline.job(job_id)
    assert job.status is JobStatus.SUCCEEDED and job.attempts == 2
    assert pipeline.runs(job_id) == 1


def test_fresh_pending_live_running_and_recently_expired_jobs_are_left_alone(
    pipeline: Pipeline,
) -> None:
    # Given a job whose worker died two minutes ago (SQS has not redelivered its message yet:
    # the visibility timeout has not passed)
    died = pipeline.submit("counted", {"n": 1})
    pipeline.kill_next.add(died)
    pipeline.poll()
    pipeline.clock.advance(120)
    # And a job pending since just now, and one running under a live lease
    fresh = pipeline.submit("counted", {"n": 2})
    live = pending_job("counted", now_ms=int(pipeline.clock() * 1000))
    pipeline.store.create(live)
    now_ms = int(pipeline.clock() * 1000)
    start(
        pipeline.store,
        live.job_id,
        payload_hash=live.payload_hash,
        lease_expires_at=now_ms + 60_000,
        now_ms=now_ms,
    )
    depth = pipeline.aws.queue_depth()
    # When the reaper runs
    report = reaper_of(pipeline).run()
    # Then it touches none of them
    assert report.actions == {}
    assert pipeline.aws.queue_depth() == depth
    statuses = [pipeline.job(j).status for j in (died, fresh, live.job_id)]
    assert statuses == [JobStatus.RUNNING, JobStatus.PENDING, JobStatus.RUNNING]
    # And only once their grace periods have passed are all three stuck
    pipeline.clock.advance(LONG_AFTER)
    later = reaper_of(pipeline).run()
    assert sorted(later.of(Action.REQUEUED)) == sorted([died, fresh, live.job_id])


def test_two_reapers_with_the_same_view_requeue_a_job_once(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a pending job without a message, and a second reaper that listed it at the same time
    # as the first (its index read is stale by the time it acts)
    job_id = pipeline.submit("counted")
    lose_messages(pipeline)
    pipeline.clock.advance(LONG_AFTER)
    stale = list(pipeline.store.pending_before("counted", before_ms=10**15, limit=10))
    first, second = reaper_of(pipeline), reaper_of(pipeline)
    # When both resolve it, one after the other
    report_one = first.run()
    monkeypatch.setattr(
        pipeline.store, "pending_before", lambda job_type, **_: stale_view(job_type, stale)
    )
    report_two = second.run()
    # Then only the first re-enqueued it; the second's claim was refused
    assert report_one.of(Action.REQUEUED) == [job_id]
    assert report_two.of(Action.SKIPPED) == [job_id]
    assert pipeline.aws.queue_depth() == 1
    # And the job runs once
    pipeline.drain()
    assert pipeline.runs(job_id) == 1


def test_a_job_the_worker_started_after_the_index_read_is_not_requeued(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a pending job past its grace period, listed by the reaper
    job_id = pipeline.submit("counted")
    pipeline.clock.advance(LONG_AFTER)
    stale = list(pipeline.store.pending_before("counted", before_ms=10**15, limit=10))
    # When the worker runs it before the reaper acts on its listing
    pipeline.drain()
    monkeypatch.setattr(
        pipeline.store, "pending_before", lambda job_type, **_: stale_view(job_type, stale)
    )
    report = reaper_of(pipeline).run()
    # Then the reaper skips it: nothing is queued and the job ran once
    assert report.of(Action.SKIPPED) == [job_id]
    assert pipeline.aws.queue_depth() == 0
    assert pipeline.runs(job_id) == 1


def test_a_backlog_is_not_mistaken_for_lost_messages(pipeline: Pipeline) -> None:
    # Given jobs waiting in a backlog: pending past the grace period, their messages in line
    waiting = [pipeline.submit("counted", {"n": n}) for n in range(3)]
    pipeline.clock.advance(LONG_AFTER)
    depth = pipeline.aws.queue_depth()
    # When the reaper runs while the queue's oldest message has waited as long as they have
    report = reaper_of(pipeline, backlog=LONG_AFTER).run()
    # Then it re-sends none of them
    assert report.actions == {}
    assert pipeline.aws.queue_depth() == depth
    # And when their messages are gone (the queue holds nothing), they are stuck
    lose_messages(pipeline)
    assert sorted(reaper_of(pipeline).run().of(Action.REQUEUED)) == sorted(waiting)


def test_a_busy_types_jobs_spread_over_the_index_shards_and_are_found_oldest_first(
    pipeline: Pipeline,
) -> None:
    # Given 120 jobs of one type waiting since 120 different times, their messages lost
    ids = []
    for n in range(120):
        job = pending_job("counted", {"n": n}, now_ms=int(pipeline.clock() * 1000) + n)
        pipeline.store.create(job)
        ids.append(job.job_id)
    # Then their index entries are spread over the shards: no single hot partition
    items = pipeline.aws.dynamodb.scan(TableName=pipeline.aws.table_name)["Items"]
    keys = {i[TOPOLOGY.table.stuck_index_partition_key]["S"] for i in items}
    assert len(keys) == TOPOLOGY.table.stuck_index_shards
    assert all(key.startswith("counted#") for key in keys)
    # And the reaper finds every one of them across the shards, oldest first
    pipeline.clock.advance(LONG_AFTER)
    found = list(
        pipeline.store.pending_before("counted", before_ms=int(pipeline.clock() * 1000), limit=200)
    )
    assert [stuck.job_id for stuck in found] == ids


def test_the_reaper_queries_its_indexes_and_never_scans(pipeline: Pipeline) -> None:
    # Given stuck jobs of both kinds, and a hook on every DynamoDB request
    died = pipeline.submit("counted")
    pipeline.kill_next.add(died)
    sqs_dead_letters(pipeline, pipeline.poll(), died)
    pending = pipeline.submit("counted")
    lose_messages(pipeline)
    calls: list[str] = []
    indexes: list[str | None] = []

    def record(event_name: str, **_: Any) -> None:
        calls.append(event_name.rsplit(".", 1)[1])

    def index_of(params: dict[str, Any], **_: Any) -> None:
        indexes.append(params.get("IndexName"))

    from jobpipe.adapters import clients

    events = clients.dynamodb().meta.events
    events.register("before-call.dynamodb.*", record)
    events.register("before-parameter-build.dynamodb.Query", index_of)
    # When the reaper runs
    pipeline.clock.advance(LONG_AFTER)
    report = reaper_of(pipeline).run()
    # Then it read only through Query on its three indexes (stuck leases, stuck pending jobs,
    # follow-ups cut short), and wrote one claim per job
    assert sorted(report.of(Action.REQUEUED)) == sorted([died, pending])
    assert "Scan" not in calls
    assert set(indexes) == {
        TOPOLOGY.table.lease_index,
        TOPOLOGY.table.pending_index,
        TOPOLOGY.table.outbox_index,
    }
    assert [op for op in calls if op != "Query"] == ["UpdateItem"] * 2


def test_a_run_does_bounded_work_and_the_next_run_continues(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given five stuck pending jobs, and index pages of two
    from jobpipe.adapters import dynamodb

    monkeypatch.setattr(dynamodb, "QUERY_PAGE", 2)
    ids = [pipeline.submit("counted", {"n": n}) for n in range(5)]
    lose_messages(pipeline)
    pipeline.clock.advance(LONG_AFTER)
    bounded = ReaperPolicy(POLICY.running_grace_ms, POLICY.pending_grace_ms, max_jobs_per_run=3)
    # When a reaper bounded to three jobs per run runs twice
    first = reaper_of(pipeline, bounded).run()
    second = reaper_of(pipeline, bounded).run()
    # Then the first run re-enqueued the three oldest, the second the other two
    assert first.of(Action.REQUEUED) == ids[:3]
    assert second.of(Action.REQUEUED) == ids[3:]
    pipeline.drain()
    assert sorted(pipeline.ledger) == sorted(ids)


def test_a_failed_send_leaves_the_job_to_a_later_run(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stuck pending job, and a queue that refuses sends
    from jobpipe.errors import QueueError

    job_id = pipeline.submit("counted")
    lose_messages(pipeline)
    pipeline.clock.advance(LONG_AFTER)

    def refuse(body: str, *, delay_seconds: int = 0) -> str:
        raise QueueError("SQS SendMessage failed: ServiceUnavailable")

    monkeypatch.setattr(pipeline.queue, "send", refuse)
    # When the reaper runs
    report = reaper_of(pipeline).run()
    # Then it reports the error, and the job is found again once the grace period passes
    assert report.of(Action.ERROR) == [job_id]
    monkeypatch.undo()
    pipeline.clock.advance(LONG_AFTER)
    assert reaper_of(pipeline).run().of(Action.REQUEUED) == [job_id]


def test_the_handler_runs_the_wired_reaper(aws: Any, lambda_context: Any) -> None:
    # Given a pending job written long ago, with no message
    from jobpipe import wiring
    from jobpipe.handlers import reaper as handler_module

    old = pending_job("echo", now_ms=int((time.time() - LONG_AFTER) * 1000))
    wiring.job_store().create(old)
    # When the scheduled event invokes the handler
    counts = handler_module.handler({"source": "aws.events"}, lambda_context)
    # Then it re-enqueued the job and answers with what it did
    assert counts["requeued"] == 1
    assert aws.queue_depth() == 1
