"""Time over HTTP on the local stack: delayed jobs (SQS DelaySeconds, and one-time EventBridge
Scheduler schedules beyond 15 minutes), cancelling a scheduled job, and a recurring schedule
fired on its weekday, each firing making one job however often it is delivered.

moto stores schedules but never fires them: the stack's scheduler fires them, here on a clock
the tests move (no sleeping for the schedules' times)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobpipe.client import JobInfo, JobsClient
from jobpipe.domain.registry import ENV_JOB_TYPES, Cron, Registry, recurring
from jobpipe.domain.schedule import firing_job_id, one_time_name
from jobpipe.local.stack import LocalStack
from tests.local.conftest import WORKER_TYPES
from tests.local.conftest import test_registry as example_registry
from tests.local.test_security import ISSUER, call

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("local")]

WEEKLY = "monday-echo"
BERLIN = ZoneInfo("Europe/Berlin")


class Clock:
    """The local scheduler's clock: never behind the real time, moved ahead by the tests."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def catch_up(self) -> datetime:
        """Not behind the real time (the submit service's clock); returns it."""
        self.now = max(self.now, time.time())
        return datetime.fromtimestamp(self.now, tz=UTC)


CLOCK = Clock()


def registry() -> Registry:
    types = example_registry()
    # Mondays at 09:00 in Berlin (Unix day 1), owned by a JWT caller who can read its jobs
    recurring(
        "echo",
        Cron(
            "0 9 * * 1",
            tz="Europe/Berlin",
            params={"greeting": "monday"},
            name=WEEKLY,
            owner=f"{ISSUER}#reports",
        ),
        into=types,
    )
    return types


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    from jobpipe import wiring

    types = registry()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wiring, "load_job_types", lambda: types)
        patch.setenv(ENV_JOB_TYPES, WORKER_TYPES)
        patch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        # The scheduler fires only when a test ticks it, on the tests' clock.
        with LocalStack(
            port=0, prefix="time", scheduler_interval_seconds=0, scheduler_clock=CLOCK
        ) as started:
            yield started


@pytest.fixture
def client(stack: LocalStack) -> JobsClient:
    return JobsClient(stack.api_url)


def wait_until(client: JobsClient, job_id: str, status: str) -> JobInfo:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = client.get(job_id)
        if job.status == status:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never got {status}: {client.get(job_id)}")


def schedule_names(stack: LocalStack) -> set[str]:
    import boto3

    assert stack.scheduler is not None
    page = boto3.client("scheduler").list_schedules(GroupName=stack.scheduler.group)
    return {s["Name"] for s in page["Schedules"]}


def tick(stack: LocalStack) -> list[str]:
    assert stack.scheduler is not None
    return [d.schedule for d in stack.scheduler.tick()]


def test_a_job_delayed_a_few_seconds_is_scheduled_then_runs(
    stack: LocalStack, client: JobsClient
) -> None:
    # Given a job submitted to run in 2 seconds
    submitted = client.submit("echo", {"n": 1}, delay_seconds=2)
    # Then it is scheduled, with its time, and waits on the queue (SQS DelaySeconds), not on a
    # schedule
    assert submitted.status == "scheduled" and submitted.run_at is not None
    seen = client.get(submitted.job_id)
    assert seen.status == "scheduled" and seen.run_at == submitted.run_at
    assert one_time_name(submitted.job_id) not in schedule_names(stack)
    # And it runs once its time has come, going straight from scheduled to running
    done = wait_until(client, submitted.job_id, "succeeded")
    assert done.attempts == 1
    assert done.started_at is not None and done.started_at >= submitted.run_at


def test_a_job_due_beyond_15_minutes_waits_on_one_schedule_and_runs_when_its_time_passes(
    stack: LocalStack, client: JobsClient
) -> None:
    # Given a job due in 20 minutes on the scheduler's clock, written with an offset
    due = CLOCK.catch_up() + timedelta(minutes=20)
    submitted = client.submit("echo", {"n": 2}, run_at=due.astimezone(BERLIN).isoformat())
    assert submitted.status == "scheduled"
    # Then one schedule holds its message
    assert one_time_name(submitted.job_id) in schedule_names(stack)
    # When the scheduler looks before its time / Then nothing fires
    assert one_time_name(submitted.job_id) not in tick(stack)
    assert client.get(submitted.job_id).status == "scheduled"
    # When its clock passes the job's time
    CLOCK.now += 21 * 60
    fired = tick(stack)
    # Then the schedule fires once, deletes itself, and the job runs
    assert fired.count(one_time_name(submitted.job_id)) == 1
    assert one_time_name(submitted.job_id) not in schedule_names(stack)
    assert wait_until(client, submitted.job_id, "succeeded").attempts == 1


def test_cancelling_a_scheduled_job_deletes_its_schedule(
    stack: LocalStack, client: JobsClient
) -> None:
    # Given a job due in an hour, waiting on its schedule
    due = CLOCK.catch_up() + timedelta(hours=1)
    submitted = client.submit("echo", {"n": 3}, run_at=due.isoformat())
    assert one_time_name(submitted.job_id) in schedule_names(stack)
    # When its owner cancels it
    assert client.cancel(submitted.job_id).status == "cancelled"
    # Then its schedule is gone, and nothing fires for it when its time passes
    assert one_time_name(submitted.job_id) not in schedule_names(stack)
    CLOCK.now += 2 * 3600
    assert one_time_name(submitted.job_id) not in tick(stack)
    assert client.get(submitted.job_id).status == "cancelled"


def test_a_schedule_that_fires_for_a_cancelled_job_is_dropped(
    stack: LocalStack, client: JobsClient
) -> None:
    from jobpipe import wiring
    from jobpipe.domain.states import CANCEL

    # Given a job due in an hour, cancelled while its schedule stayed (its delete failed)
    due = CLOCK.catch_up() + timedelta(hours=1)
    submitted = client.submit("echo", {"n": 4}, run_at=due.isoformat())
    wiring.job_store().apply(CANCEL, submitted.job_id, now=int(time.time() * 1000))
    # When the schedule fires anyway
    CLOCK.now += 2 * 3600
    assert one_time_name(submitted.job_id) in tick(stack)
    # Then the worker drops its message: the job stays cancelled, never started
    deadline = time.monotonic() + 20
    while _queue_depth(stack) > 0:
        assert time.monotonic() < deadline, "the message was never consumed"
        time.sleep(0.1)
    after = client.get(submitted.job_id)
    assert (after.status, after.attempts, after.dead_lettered) == ("cancelled", 0, False)


def _queue_depth(stack: LocalStack) -> int:
    import boto3

    from jobpipe.settings import get_settings

    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=get_settings().queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def _next_local(weekday: int, hour: int, after: datetime) -> datetime:
    """The next `weekday` (0 = Monday) at `hour`:00 Berlin time after `after`."""
    day = after.astimezone(BERLIN).replace(hour=hour, minute=0, second=0, microsecond=0)
    while day <= after or day.weekday() != weekday:
        day = (day + timedelta(days=1)).replace(hour=hour)
    return day


def test_a_weekday_schedule_fires_on_its_day_making_one_job_per_firing_delivered_twice(
    stack: LocalStack,
) -> None:
    assert stack.scheduler is not None
    # Given every firing delivered twice (EventBridge delivers at least once), and the
    # scheduler caught up to a Saturday noon
    stack.scheduler.extra_deliveries = 1
    try:
        saturday = _next_local(5, 12, CLOCK.catch_up())
        CLOCK.now = saturday.timestamp()
        tick(stack)
        # When its clock passes Sunday 09:00 (Unix day 0) / Then the Monday schedule stays quiet
        CLOCK.now = (saturday + timedelta(days=1, hours=-2)).timestamp()
        assert WEEKLY not in tick(stack)
        # When it passes Monday 09:00 Berlin time
        monday = _next_local(0, 9, saturday)
        CLOCK.now = monday.timestamp() + 30
        fired = tick(stack)
    finally:
        stack.scheduler.extra_deliveries = 0
    # Then the schedule fires once, for that time, and makes one job, owned by the declared
    # owner (who reads it over HTTP), that runs with the declared params
    assert fired.count(WEEKLY) == 1
    job_id = firing_job_id(WEEKLY, int(monday.timestamp() * 1000))
    deadline = time.monotonic() + 30
    while True:
        status, body = call(stack, "GET", f"/jobs/{job_id}", subject="reports")
        if status == 200 and body["status"] == "succeeded":
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    assert body["result"] == {"greeting": "monday"}
    assert body["attempts"] == 1
    # And the second delivery made no second job
    assert _jobs_of_schedule(WEEKLY, after_ms=int(saturday.timestamp() * 1000)) == [job_id]


def _jobs_of_schedule(name: str, *, after_ms: int) -> list[str]:
    """The ids of the jobs a schedule's firings made after a time (read as an operator)."""
    import boto3

    from jobpipe.settings import get_settings

    items = boto3.client("dynamodb").scan(
        TableName=get_settings().table_name,
        FilterExpression="#schedule = :name",
        ExpressionAttributeNames={"#schedule": "schedule"},
        ExpressionAttributeValues={":name": {"S": name}},
    )["Items"]
    from ulid import ULID

    from jobpipe.domain.record import KEY

    return sorted(
        item[KEY]["S"] for item in items if ULID.from_str(item[KEY]["S"]).milliseconds > after_ms
    )
