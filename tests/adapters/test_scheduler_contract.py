"""The scheduler contract, run against the EventBridge Scheduler adapter (on moto) and the
in-memory fake: a delayed job's message is held by one schedule of its own, at its time, until
it fires or is deleted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from jobpipe.adapters.memory import InMemoryScheduler
from jobpipe.adapters.scheduler import EventBridgeScheduler
from jobpipe.ports import Scheduler

JOB = "01J9ZZZZZZZZZZZZZZZZZZZZZZ"
AT_MS = 1_790_000_000_400  # 2026-09-21T14:13:20.400Z


@pytest.fixture(params=["eventbridge", "memory"])
def scheduler(request: pytest.FixtureRequest) -> Iterator[Scheduler]:
    if request.param == "memory":
        yield InMemoryScheduler()
        return
    aws = request.getfixturevalue("aws")
    yield _eventbridge(aws)


def _eventbridge(aws: Any) -> EventBridgeScheduler:
    from jobpipe.settings import get_settings

    settings = get_settings()
    return EventBridgeScheduler(
        settings.schedule_group,
        queue_arn=settings.queue_arn,
        dlq_arn=settings.dlq_arn,
        role_arn=settings.scheduler_role_arn,
    )


def test_a_schedule_holds_the_message_until_its_time_rounded_up_to_the_second(
    scheduler: Scheduler,
) -> None:
    # Given a job due at .400 of a second
    scheduler.schedule_once(JOB, AT_MS, '{"job_id": "x"}')
    # Then its schedule fires at the next whole second, with the message as it was given
    held = scheduler.once(JOB)
    assert held is not None
    assert (held.at_ms, held.body) == (1_790_000_001_000, '{"job_id": "x"}')


def test_scheduling_a_job_twice_keeps_one_schedule_as_first_made(scheduler: Scheduler) -> None:
    # Given a retried submit that schedules the same job again
    scheduler.schedule_once(JOB, AT_MS, "first")
    scheduler.schedule_once(JOB, AT_MS + 60_000, "second")
    # Then the first schedule stands
    held = scheduler.once(JOB)
    assert held is not None and held.body == "first"


def test_a_deleted_schedule_is_gone_and_deleting_again_says_so(scheduler: Scheduler) -> None:
    scheduler.schedule_once(JOB, AT_MS, "body")
    assert scheduler.cancel_once(JOB) is True
    assert scheduler.once(JOB) is None
    assert scheduler.cancel_once(JOB) is False


def test_a_job_without_a_schedule_has_none(scheduler: Scheduler) -> None:
    assert scheduler.once(JOB) is None


def test_the_eventbridge_schedule_sends_to_the_jobs_queue_and_deletes_itself(aws: Any) -> None:
    # Given a job's schedule as the adapter makes it
    import boto3

    from jobpipe.settings import get_settings

    _eventbridge(aws).schedule_once(JOB, AT_MS, "body")
    settings = get_settings()
    made = boto3.client("scheduler").get_schedule(
        Name=f"job-{JOB}", GroupName=settings.schedule_group
    )
    # Then it is one-time, in UTC, exact, sends to the jobs queue with the scheduler's role, is
    # retried for a day into the DLQ, and is deleted after it fires
    assert made["ScheduleExpression"] == "at(2026-09-21T14:13:21)"
    assert made["ScheduleExpressionTimezone"] == "UTC"
    assert made["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert made["ActionAfterCompletion"] == "DELETE"
    target = made["Target"]
    assert target["Arn"] == settings.queue_arn
    assert target["RoleArn"] == settings.scheduler_role_arn
    assert target["DeadLetterConfig"] == {"Arn": settings.dlq_arn}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}


def test_a_scheduler_that_fails_raises_a_scheduler_error(aws: Any) -> None:
    from jobpipe.errors import SchedulerError

    # Given a group that does not exist (EventBridge answers an error)
    broken = EventBridgeScheduler("no-such-group", queue_arn="a", dlq_arn="b", role_arn="c")
    with pytest.raises(SchedulerError):
        broken.schedule_once(JOB, AT_MS, "body")
