"""Time as declared: when a delayed job is due, and recurring schedules from Unix cron to
EventBridge's form, evaluated as EventBridge fires them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel

from jobpipe.domain.job import check_job_id
from jobpipe.domain.registry import Registry, job_type, recurring
from jobpipe.domain.schedule import (
    MAX_AHEAD_SECONDS,
    Cron,
    Rate,
    at_expression,
    at_time,
    definition,
    eventbridge_cron,
    firing_job_id,
    firings_after,
    paused_names,
    previous_firings,
    run_at_of,
    unix_of_eventbridge,
)
from jobpipe.errors import ConfigurationError, InvalidRequestError

NOW_MS = 1_790_000_000_000  # 2026-09-21T14:13:20Z
BERLIN = ZoneInfo("Europe/Berlin")


# --- delayed jobs ------------------------------------------------------------------------------


def test_a_delay_counts_from_now_and_zero_runs_now() -> None:
    assert run_at_of(delay_seconds=90, run_at=None, now_ms=NOW_MS) == NOW_MS + 90_000
    assert run_at_of(delay_seconds=0.25, run_at=None, now_ms=NOW_MS) == NOW_MS + 250
    assert run_at_of(delay_seconds=0, run_at=None, now_ms=NOW_MS) is None
    assert run_at_of(delay_seconds=None, run_at=None, now_ms=NOW_MS) is None


def test_run_at_is_an_rfc_3339_time_with_an_offset_and_a_past_one_runs_now() -> None:
    at = datetime.fromtimestamp(NOW_MS / 1000 + 3600, tz=UTC)
    # Given the same instant written with three offsets / Then each is the same due time
    for text in (
        at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        at.astimezone(BERLIN).isoformat(),
        at.astimezone(timezone(timedelta(hours=-7))).isoformat(),
    ):
        assert run_at_of(delay_seconds=None, run_at=text, now_ms=NOW_MS) == NOW_MS + 3_600_000
    assert run_at_of(delay_seconds=None, run_at="2001-01-01T00:00:00Z", now_ms=NOW_MS) is None


@pytest.mark.parametrize(
    ("delay", "run_at", "field"),
    [
        (-1, None, "delay_seconds"),
        (float("nan"), None, "delay_seconds"),
        (float("inf"), None, "delay_seconds"),
        (True, None, "delay_seconds"),
        ("60", None, "delay_seconds"),
        (MAX_AHEAD_SECONDS + 1, None, "delay_seconds"),
        (None, "2026-09-21T15:00:00", "run_at"),  # no offset
        (None, "tomorrow", "run_at"),
        (None, "2026-13-01T00:00:00Z", "run_at"),
        (None, "2028-01-01T00:00:00Z", "run_at"),  # beyond a year
        (10, "2026-09-21T15:00:00Z", "run_at"),  # both
    ],
)
def test_a_delay_that_is_not_0_s_to_a_year_ahead_is_refused_naming_its_field(
    delay: object, run_at: str | None, field: str
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        run_at_of(delay_seconds=delay, run_at=run_at, now_ms=NOW_MS)  # type: ignore[arg-type]
    assert refused.value.fields[0]["loc"] == field


def test_a_one_time_expression_never_fires_before_the_job_is_due() -> None:
    # Given a due time within a second / Then the schedule's time is the next whole second
    assert at_expression(1_790_000_000_001) == "at(2026-09-21T14:13:21)"
    assert at_expression(1_790_000_000_000) == "at(2026-09-21T14:13:20)"
    assert at_time("at(2026-09-21T14:13:21)") == datetime(2026, 9, 21, 14, 13, 21, tzinfo=UTC)


# --- cron: Unix to EventBridge -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("unix", "eventbridge"),
    [
        ("0 3 * * *", "cron(0 3 * * ? *)"),
        ("*/15 * * * *", "cron(0,15,30,45 * * * ? *)"),
        ("30 8 1 * *", "cron(30 8 1 * ? *)"),
        # Unix numbers days 0-6 from Sunday (and 7 is Sunday): EventBridge is given names
        ("0 9 * * 1", "cron(0 9 ? * MON *)"),
        ("0 9 * * 1-5", "cron(0 9 ? * MON-FRI *)"),
        ("0 9 * * 0", "cron(0 9 ? * SUN *)"),
        ("0 9 * * 7", "cron(0 9 ? * SUN *)"),
        ("0 9 * * 6,0", "cron(0 9 ? * SUN,SAT *)"),
        ("0 9 * * sat", "cron(0 9 ? * SAT *)"),
        ("0 0 1 jan,jul *", "cron(0 0 1 1,7 ? *)"),
        ("5/20 0-6/2 * * *", "cron(5,25,45 0,2,4,6 * * ? *)"),
        ("@daily", "cron(0 0 * * ? *)"),
        ("@weekly", "cron(0 0 ? * SUN *)"),
    ],
)
def test_unix_cron_becomes_eventbridges_six_fields(unix: str, eventbridge: str) -> None:
    assert eventbridge_cron(unix) == eventbridge


@pytest.mark.parametrize(
    "unix",
    ["0 3 * *", "60 * * * *", "0 24 * * *", "0 0 0 * *", "0 0 * 13 *", "0 0 * * 8", "x * * * *",
     "0 0 5-1 * *", "*/0 * * * *", "0 0 1 * 1"],
)  # fmt: skip
def test_a_cron_expression_eventbridge_cannot_run_is_refused_at_declaration(unix: str) -> None:
    with pytest.raises(ConfigurationError):
        Cron(unix)


def test_eventbridge_cron_reads_back_as_unix_with_the_same_days() -> None:
    # EventBridge 1-7 from Sunday: its 2 is Monday
    assert unix_of_eventbridge("cron(0 9 ? * 2 *)") == "0 9 * * MON"
    assert unix_of_eventbridge("cron(0 9 ? * 2-6 *)") == "0 9 * * MON-FRI"
    assert unix_of_eventbridge(eventbridge_cron("15 4 * * 7")) == "15 4 * * SUN"


def test_a_weekday_schedule_fires_on_that_weekday_in_its_time_zone() -> None:
    # Given "09:00 on Mondays" in Berlin, asked for its firings after a Saturday
    expression = eventbridge_cron("0 9 * * 1")
    after = datetime(2026, 3, 28, 12, tzinfo=UTC)  # Saturday; Berlin moves to CEST on the 29th
    fired = list(itertools.islice(firings_after(expression, "Europe/Berlin", after), 3))
    # Then each is a Monday at 09:00 Berlin time, in summer time (07:00 UTC)
    assert [w.weekday() for w in fired] == [0, 0, 0]
    assert {(w.hour, w.minute) for w in fired} == {(9, 0)}
    assert fired[0].astimezone(UTC) == datetime(2026, 3, 30, 7, tzinfo=UTC)


def test_a_rate_fires_every_interval_from_when_it_started() -> None:
    started = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    fired = list(
        itertools.islice(
            firings_after(
                "rate(5 minutes)", "UTC", started + timedelta(minutes=7), started=started
            ),
            2,
        )
    )
    assert fired == [started + timedelta(minutes=10), started + timedelta(minutes=15)]


def test_previous_firings_run_back_from_a_time() -> None:
    before = datetime(2026, 3, 28, 2, 59, tzinfo=BERLIN)
    latest = next(previous_firings(eventbridge_cron("0 3 * * *"), "Europe/Berlin", before))
    assert latest == datetime(2026, 3, 27, 3, 0, tzinfo=BERLIN)


def test_rates_are_written_as_eventbridge_reads_them() -> None:
    assert Rate(minutes=1).eventbridge() == "rate(1 minute)"
    assert Rate(hours=6).eventbridge() == "rate(6 hours)"
    with pytest.raises(ConfigurationError):
        Rate(minutes=5, hours=1)
    with pytest.raises(ConfigurationError):
        Rate()


# --- firings and declarations ------------------------------------------------------------------


def test_a_firing_names_one_job_whatever_the_delivery() -> None:
    first = firing_job_id("nightly", NOW_MS)
    # The same schedule and time, delivered again: the same id, a valid ULID of that time
    assert firing_job_id("nightly", NOW_MS) == first
    assert check_job_id(first) == first
    assert firing_job_id("nightly", NOW_MS + 60_000) != first
    assert firing_job_id("hourly", NOW_MS) != first


class ReportParams(BaseModel):
    kind: str


def test_a_schedule_is_declared_beside_its_type_and_deployed_with_its_input() -> None:
    # Given a type declared with a schedule, and one declared apart
    registry = Registry()

    @job_type(
        "report",
        schedules=[Cron("0 3 * * *", tz="Europe/Berlin", params={"kind": "daily"})],
        into=registry,
    )
    def report(params: ReportParams) -> None: ...

    recurring("report", Rate(hours=1, params={"kind": "hourly"}, name="hourly"), into=registry)
    # Then both are registered, named, and owned by their schedule
    assert set(registry.schedules) == {"report", "hourly"}
    nightly = registry.schedules["report"]
    assert nightly.owner == "schedule:report"
    assert registry.schedule_problems() == []
    # And each deploys as EventBridge holds it, its input carrying the scheduled time
    deployed = definition(nightly)
    assert (deployed.expression, deployed.timezone) == ("cron(0 3 * * ? *)", "Europe/Berlin")
    assert '"scheduled_time":"<aws.scheduler.scheduled-time>"' in deployed.input
    assert definition(nightly, paused=True).enabled is False


def test_a_declared_owner_is_named_as_the_api_names_callers() -> None:
    registry = Registry()
    role = "arn:aws:sts::123456789012:assumed-role/reports/session-1"
    recurring("x", Cron("@daily", owner=role, name="a"), into=registry)
    recurring("x", Cron("@daily", owner="https://issuer/#user-1", name="b"), into=registry)
    assert registry.schedules["a"].owner == "arn:aws:sts::123456789012:assumed-role/reports"
    assert registry.schedules["b"].owner == "jwt:https://issuer/#user-1"
    with pytest.raises(ConfigurationError):
        recurring("x", Cron("@daily", owner="nobody", name="c"), into=registry)


def test_schedules_that_could_never_create_their_job_are_problems() -> None:
    # Given schedules of an unknown type, with params the model refuses, in an unknown zone
    registry = Registry()

    @job_type("report", into=registry)
    def report(params: ReportParams) -> None: ...

    recurring("nope", Cron("@daily"), into=registry)
    recurring("report", Cron("@daily", params={"kind": 3}, name="typo"), into=registry)
    recurring("report", Cron("@daily", tz="Mars/Olympus", params={"kind": "x"}), into=registry)
    # Then each is named
    problems = "\n".join(registry.schedule_problems())
    assert "'nope'" in problems and "not declared" in problems
    assert "'typo'" in problems and "params.kind" in problems
    assert "Mars/Olympus" in problems


def test_bad_params_beside_the_type_and_a_name_used_twice_are_refused_at_import() -> None:
    registry = Registry()
    with pytest.raises(ConfigurationError, match="report"):

        @job_type("report", schedules=[Cron("@daily", params={})], into=registry)
        def report(params: ReportParams) -> None: ...

    with pytest.raises(ConfigurationError, match="twice"):
        recurring("other", Cron("@daily"), Cron("@hourly"), into=registry)
    with pytest.raises(ConfigurationError):
        recurring("other", Cron("@daily", name="job-1"), into=registry)


def test_a_pause_setting_names_all_or_declared_schedules() -> None:
    known = {"a": 1, "b": 2}
    assert paused_names(None, known) == frozenset()
    assert paused_names("all", known) == {"a", "b"}
    assert paused_names("b", known) == {"b"}
    with pytest.raises(ConfigurationError, match="zzz"):
        paused_names("a,zzz", known)
