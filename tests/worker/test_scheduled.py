"""Scheduled jobs through the worker and the reaper, on moto with a controllable clock: a job
waiting on a one-time EventBridge Scheduler schedule runs when the schedule fires (fired by the
local scheduler, the path the local stack uses), straight from `scheduled` to `running`; a
message early is handed back; an overdue scheduled job whose message is gone is re-queued by the
reaper like a pending one."""

from __future__ import annotations

from typing import Any

import boto3

from jobpipe.adapters.scheduler import EventBridgeScheduler
from jobpipe.domain.schedule import one_time_name
from jobpipe.domain.states import JobStatus
from jobpipe.local.scheduler import LocalScheduler
from jobpipe.reaper.service import Action
from jobpipe.settings import get_settings
from jobpipe.submit.service import SubmitRequest, SubmitService
from jobpipe.topology import TOPOLOGY
from tests.reaper.test_reaper import reaper_of
from tests.worker.conftest import Pipeline

TWENTY_MINUTES = 20 * 60


def scheduler() -> EventBridgeScheduler:
    settings = get_settings()
    return EventBridgeScheduler(
        settings.schedule_group,
        queue_arn=settings.queue_arn,
        dlq_arn=settings.dlq_arn,
        role_arn=settings.scheduler_role_arn,
    )


def submit_later(pipeline: Pipeline, delay_seconds: float) -> str:
    service = SubmitService(
        pipeline.store,
        pipeline.queue,
        pipeline.registry,
        clock=pipeline.clock,
        scheduler=scheduler(),
    )
    request = SubmitRequest("alice", "counted", {}, delay_seconds=delay_seconds)
    return service.submit(request).job.job_id


def fire_due(pipeline: Pipeline) -> list[str]:
    """What EventBridge Scheduler does when the clock passes a schedule's time."""

    def no_functions(arn: str, event: dict[str, Any]) -> None:
        raise AssertionError(f"no function target expected: {arn}")

    local = LocalScheduler(
        boto3.client("scheduler"),
        boto3.client("sqs"),
        get_settings().schedule_group,
        no_functions,
        clock=pipeline.clock,
    )
    return [d.schedule for d in local.tick()]


def test_a_job_waiting_on_its_schedule_runs_once_when_the_schedule_fires(
    pipeline: Pipeline,
) -> None:
    # Given a job due in 20 minutes: scheduled, its message held by a schedule
    job_id = submit_later(pipeline, TWENTY_MINUTES)
    assert pipeline.job(job_id).status is JobStatus.SCHEDULED
    assert pipeline.aws.queue_depth() == 0
    # When the scheduler looks before its time / Then nothing is sent
    assert fire_due(pipeline) == []
    # When the clock passes its time and the schedule fires
    pipeline.clock.advance(TWENTY_MINUTES + 1)
    assert fire_due(pipeline) == [one_time_name(job_id)]
    pipeline.drain()
    # Then it ran once, on its first attempt, and its schedule is gone
    assert pipeline.runs(job_id) == 1
    job = pipeline.job(job_id)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)
    assert scheduler().once(job_id) is None


def test_a_scheduled_jobs_message_that_arrives_early_is_handed_back_not_run(
    pipeline: Pipeline,
) -> None:
    # Given a job due in 20 minutes whose message turns up now (a copy sent early)
    job_id = submit_later(pipeline, TWENTY_MINUTES)
    pipeline.queue.send(pipeline.job(job_id).message().to_body())
    # When the worker receives it
    pipeline.poll()
    # Then the job is not run, still scheduled, its attempts untouched
    assert pipeline.runs(job_id) == 0
    job = pipeline.job(job_id)
    assert (job.status, job.attempts) == (JobStatus.SCHEDULED, 0)


def test_an_overdue_scheduled_job_whose_schedule_is_gone_is_requeued_and_runs_once(
    pipeline: Pipeline,
) -> None:
    # Given a job due in 20 minutes whose schedule is lost (deleted, or its delivery dropped)
    job_id = submit_later(pipeline, TWENTY_MINUTES)
    assert scheduler().cancel_once(job_id)
    reaper = reaper_of(pipeline)  # the queue has no backlog
    # When the reaper runs at its time / Then it leaves the job alone (not overdue yet)
    pipeline.clock.advance(TWENTY_MINUTES + 1)
    assert reaper.run().actions == {}
    # When it runs once the job is overdue by the grace period
    pipeline.clock.advance(TOPOLOGY.reaper.pending_grace_seconds + 1)
    report = reaper.run()
    # Then it re-queued the job like a pending one, and the worker runs it once
    assert report.of(Action.REQUEUED) == [job_id]
    pipeline.drain()
    assert pipeline.runs(job_id) == 1
    assert pipeline.job(job_id).status is JobStatus.SUCCEEDED
