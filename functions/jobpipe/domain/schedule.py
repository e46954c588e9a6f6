"""Time: when a delayed job runs, and the recurring schedules declared beside job types.

A delayed job (`delay_seconds` or `run_at` at submit) is `scheduled` until its time: its message
is delayed on the queue when that is at most 15 minutes away (SQS `DelaySeconds`), and held by a
one-time EventBridge Scheduler schedule otherwise.

A recurring schedule is declared in code, beside its job type, in the 5-field Unix cron syntax
Celery's beat users know, or as a rate:

    @job_type("report", schedules=[Cron("0 3 * * *", tz="Europe/Berlin", params={"kind": "daily"})])
    def report(params: ReportParams) -> dict: ...

    recurring("cleanup", Rate(minutes=15))

The CDK app deploys each one as an EventBridge Scheduler schedule (`definition()`: its 6-field
EventBridge expression, time zone and the input of each firing), and the local stack creates and
fires the same. Each firing creates one job, whose id is made from the schedule's name and the
time it fired for (`firing_job_id`), so a firing delivered twice still makes one job.

Plain data and pure functions; the cron evaluator (`cronsim`) is imported only where next firing
times are computed (the local stack and the CLI), never in a Lambda function.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from jobpipe.domain.job import MAX_AHEAD_SECONDS as MAX_AHEAD_SECONDS
from jobpipe.errors import ConfigurationError, InvalidRequestError

# EventBridge Scheduler names: letters, digits, `-`, `_` and `.`, at most 64 characters.
SCHEDULE_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
# One-time schedules of delayed jobs are named after their job; a recurring one may not be.
ONE_TIME_PREFIX = "job-"
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
# Paused schedules (a deploy-time setting: `-c pausedSchedules=...` for the CDK app,
# JOBPIPE_PAUSED_SCHEDULES for the local stack): comma-separated names, or `all`.
ENV_PAUSED = "JOBPIPE_PAUSED_SCHEDULES"
PAUSE_ALL = "all"


# --- delayed jobs ----------------------------------------------------------------------------


def run_at_of(
    *, delay_seconds: float | None, run_at: datetime | str | None, now_ms: int
) -> int | None:
    """When a job submitted now with `delay_seconds` or `run_at` is due (epoch ms), or None to
    run it now (no delay, a delay of 0, or a time already past). Raises InvalidRequestError
    (422) for both at once, a delay that is not a non-negative number, a time without an offset,
    or one more than a year ahead."""
    if delay_seconds is not None and run_at is not None:
        raise InvalidRequestError(
            "give delay_seconds or run_at, not both",
            [{"loc": "run_at", "msg": "give delay_seconds or run_at, not both"}],
        )
    if delay_seconds is not None:
        if (
            isinstance(delay_seconds, bool)
            or not isinstance(delay_seconds, int | float)
            or not math.isfinite(delay_seconds)
            or delay_seconds < 0
        ):
            raise _invalid("delay_seconds", "must be a number of seconds, 0 or more")
        if delay_seconds > MAX_AHEAD_SECONDS:
            raise _invalid("delay_seconds", f"must be at most {MAX_AHEAD_SECONDS} (a year)")
        return now_ms + math.ceil(delay_seconds * 1000) if delay_seconds > 0 else None
    if run_at is None:
        return None
    when = parse_rfc3339(run_at) if isinstance(run_at, str) else run_at
    if when is None or when.tzinfo is None or when.utcoffset() is None:
        raise _invalid("run_at", "must be an RFC 3339 time with an offset, e.g. 2026-05-01T09:00Z")
    at_ms = math.ceil(when.timestamp() * 1000)
    if at_ms - now_ms > MAX_AHEAD_SECONDS * 1000:
        raise _invalid("run_at", "must be at most a year ahead")
    return at_ms if at_ms > now_ms else None


def parse_rfc3339(text: str) -> datetime | None:
    """`2026-05-01T09:00:00+02:00` or `...Z` (a space for the `T` too, as RFC 3339 allows); None
    when it is not such a time or has no offset."""
    if not re.fullmatch(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?([Zz]|[+-]\d\d:\d\d)", text):
        return None
    try:
        parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _invalid(field_name: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{field_name} {message}", [{"loc": field_name, "msg": message}])


def one_time_name(job_id: str) -> str:
    """The one-time schedule that holds a delayed job's message."""
    return f"{ONE_TIME_PREFIX}{job_id}"


def at_time(expression: str, timezone: str = "UTC") -> datetime:
    """The time a one-time `at(yyyy-mm-ddThh:mm:ss)` expression names, in `timezone`."""
    from zoneinfo import ZoneInfo

    found = re.fullmatch(r"at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)", expression.strip())
    if found is None:
        raise ConfigurationError(f"not an EventBridge one-time expression: {expression!r}")
    return datetime.fromisoformat(found.group(1)).replace(tzinfo=ZoneInfo(timezone))


def at_expression(at_ms: int) -> str:
    """EventBridge's one-time expression for `at_ms` (UTC, to the second, rounded up so that
    the schedule never fires before the job is due)."""
    when = datetime.fromtimestamp(math.ceil(at_ms / 1000), tz=UTC)
    return f"at({when.strftime('%Y-%m-%dT%H:%M:%S')})"


# --- cron: Unix's 5 fields, EventBridge's 6 ---------------------------------------------------

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
# Unix numbers the days of the week 0-6 from Sunday (7 is Sunday too); EventBridge 1-7 from
# Sunday. Names mean the same in both, so the EventBridge expression is written with names.
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is the value `low + i`


_UNIX_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, tuple(_MONTHS)),
    # 7 is accepted as Sunday and folded into 0 below.
    _Field("day of week", 0, 7, (*_DAYS, "SUN")),
)


def _value(text: str, spec: _Field) -> int:
    upper = text.upper()
    if upper in spec.names:
        return spec.low + spec.names.index(upper)
    if not text.isdigit():
        raise ConfigurationError(f"cron {spec.name}: {text!r} is not a number or a name")
    value = int(text)
    if not spec.low <= value <= spec.high:
        raise ConfigurationError(f"cron {spec.name}: {value} is outside {spec.low}-{spec.high}")
    return value


def _unix_values(text: str, spec: _Field) -> frozenset[int] | None:
    """The values a Unix cron field matches; None for `*` (every value, unrestricted)."""
    if text == "*":
        return None
    values: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ConfigurationError(f"cron {spec.name}: bad step in {item!r}")
            step = int(step_text)
        if span == "*":
            low, high = spec.low, spec.high
        elif "-" in span:
            first, _, last = span.partition("-")
            low, high = _value(first, spec), _value(last, spec)
            if low > high:
                raise ConfigurationError(f"cron {spec.name}: range {item!r} runs backwards")
        else:
            low = _value(span, spec)
            # `5/15` is `5-59/15`, as cronie reads it.
            high = spec.high if step_text else low
        values.update(range(low, high + 1, step))
    if spec.name == "day of week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def _runs(values: frozenset[int]) -> list[tuple[int, int]]:
    ordered = sorted(values)
    runs: list[tuple[int, int]] = []
    for value in ordered:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _eventbridge_field(values: frozenset[int] | None, names: tuple[str, ...] = ()) -> str:
    """A field as an explicit list of values and ranges (which every cron dialect reads the
    same); days of the week by name."""
    if values is None:
        return "*"

    def show(value: int) -> str:
        return names[value] if names else str(value)

    return ",".join(
        show(low) if low == high else f"{show(low)}-{show(high)}" for low, high in _runs(values)
    )


def eventbridge_cron(unix: str) -> str:
    """A 5-field Unix cron expression as EventBridge Scheduler's 6-field `cron(...)`.

    EventBridge adds a year field, numbers the days of the week 1-7 from Sunday (Unix 0-6, or 7,
    from Sunday: here they are written by name, SUN-SAT, which both read alike) and needs `?` in
    day-of-month or day-of-week: the one left `*`. Unix runs a job whose day-of-month and
    day-of-week are both restricted on either day; EventBridge cannot say that, so such an
    expression is refused (declare two schedules)."""
    text = _MACROS.get(unix.strip().lower(), unix)
    parts = text.split()
    if len(parts) != 5:
        raise ConfigurationError(
            f"cron {unix!r}: expected 5 fields (minute hour day-of-month month day-of-week)"
        )
    minute, hour, dom, month, dow = (
        _unix_values(part, spec) for part, spec in zip(parts, _UNIX_FIELDS, strict=True)
    )
    if dom is not None and dow is not None:
        raise ConfigurationError(
            f"cron {unix!r}: EventBridge cannot run on a day of the month *or* a day of the "
            "week; leave one of them `*` (declare two schedules for both)"
        )
    return "cron({} {} {} {} {} *)".format(
        _eventbridge_field(minute),
        _eventbridge_field(hour),
        "?" if dom is None and dow is not None else _eventbridge_field(dom),
        _eventbridge_field(month),
        "?" if dow is None else _eventbridge_field(dow, tuple(_DAYS)),
    )


def _eventbridge_dow_as_unix(text: str) -> str:
    """An EventBridge day-of-week field in a form Unix cron reads the same: numbers 1-7 (from
    Sunday) become names."""

    def day(token: str) -> str:
        if token.isdigit():
            number = int(token)
            if not 1 <= number <= 7:
                raise ConfigurationError(f"EventBridge day of week {number} is outside 1-7")
            return _DAYS[number - 1]
        return token

    items = []
    for item in text.split(","):
        span, slash, step = item.partition("/")
        nth = ""
        if "#" in span:
            span, nth = span.split("#", 1)
            nth = f"#{nth}"
        span = "-".join(day(t) for t in span.split("-")) if span != "*" else span
        items.append(f"{span}{nth}{slash}{step}")
    return ",".join(items)


def unix_of_eventbridge(expression: str) -> str:
    """An EventBridge `cron(m h dom month dow year)` as the Unix 5 fields that fire alike, for
    evaluating it off AWS (the local stack fires schedules by it). Years other than `*` are not
    supported here."""
    found = re.fullmatch(r"cron\((.*)\)", expression.strip())
    if found is None:
        raise ConfigurationError(f"not an EventBridge cron expression: {expression!r}")
    parts = found.group(1).split()
    if len(parts) != 6:
        raise ConfigurationError(f"EventBridge cron needs 6 fields: {expression!r}")
    minute, hour, dom, month, dow, year = parts
    if year not in ("*", "?"):
        raise ConfigurationError(f"a year field other than * is not supported: {expression!r}")
    dom = "*" if dom == "?" else dom
    dow = "*" if dow == "?" else _eventbridge_dow_as_unix(dow)
    return f"{minute} {hour} {dom} {month} {dow}"


# --- rates -----------------------------------------------------------------------------------

_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int:
    found = _RATE.fullmatch(expression.strip())
    if found is None:
        raise ConfigurationError(f"not an EventBridge rate expression: {expression!r}")
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2).rstrip("s")]


# --- next firing times ------------------------------------------------------------------------


def firings_after(
    expression: str, timezone: str, after: datetime, *, started: datetime | None = None
) -> Iterator[datetime]:
    """The times an EventBridge schedule expression fires after `after` (aware datetimes, in
    `timezone`). A rate fires every interval from `started` (when it was created), a one-time
    `at(...)` once."""
    from zoneinfo import ZoneInfo

    if expression.startswith("at("):
        when = at_time(expression, timezone)
        if when > after:
            yield when
        return
    zone = ZoneInfo(timezone)
    local_after = after.astimezone(zone)
    if expression.startswith("rate("):
        step = timedelta(seconds=rate_seconds(expression))
        origin = (started or after).astimezone(zone)
        ticks = max(0, math.floor((local_after - origin) / step) + 1)
        when = origin + ticks * step
        while True:
            if when > after:
                yield when
            when += step
    from cronsim import CronSim

    # Whole minutes: cron matches minutes, and CronSim starts from the next one.
    start = local_after.replace(second=0, microsecond=0)
    for when in CronSim(unix_of_eventbridge(expression), start):
        if when > after:
            yield when


def next_firing(expression: str, timezone: str, after: datetime) -> datetime | None:
    """A cron or one-time expression's next firing after `after`; None for a rate (it counts
    from when it was deployed) or a one-time expression already past."""
    if expression.startswith("rate("):
        return None
    return next(iter(firings_after(expression, timezone, after)), None)


def previous_firings(expression: str, timezone: str, before: datetime) -> Iterator[datetime]:
    """The times a cron expression fired at or before `before`, latest first."""
    from zoneinfo import ZoneInfo

    from cronsim import CronSim

    zone = ZoneInfo(timezone)
    start = before.astimezone(zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
    for when in CronSim(unix_of_eventbridge(expression), start, reverse=True):
        if when <= before:
            yield when


# --- recurring declarations -------------------------------------------------------------------


@dataclass(frozen=True)
class Cron:
    """Fire at the times a 5-field Unix cron expression names (`@daily` and the other macros
    too), in the time zone `tz` (IANA, e.g. `Europe/Berlin`; EventBridge follows its daylight
    saving time). `params` are the job's; `name` names the schedule (the job type's name by
    default); `owner` owns its jobs (an IAM ARN, or `issuer#subject` of a JWT caller)."""

    expression: str
    tz: str = "UTC"
    params: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    owner: str | None = None

    def __post_init__(self) -> None:
        eventbridge_cron(self.expression)  # refuses a bad expression at declaration

    def eventbridge(self) -> str:
        return eventbridge_cron(self.expression)

    @property
    def timezone(self) -> str:
        return self.tz

    def describe(self) -> str:
        return f"cron {self.expression} ({self.tz})"


@dataclass(frozen=True)
class Rate:
    """Fire every so many minutes, hours or days (exactly one of them), counted from when the
    schedule was deployed."""

    minutes: int = 0
    hours: int = 0
    days: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    owner: str | None = None

    def __post_init__(self) -> None:
        given = [
            (n, u)
            for n, u in ((self.minutes, "minute"), (self.hours, "hour"), (self.days, "day"))
            if n
        ]
        if len(given) != 1 or given[0][0] < 1:
            raise ConfigurationError("Rate takes one positive amount: minutes=, hours= or days=")

    def eventbridge(self) -> str:
        ((amount, unit),) = [
            (n, u)
            for n, u in ((self.minutes, "minute"), (self.hours, "hour"), (self.days, "day"))
            if n
        ]
        return f"rate({amount} {unit}{'s' if amount > 1 else ''})"

    @property
    def timezone(self) -> str:
        return "UTC"

    def describe(self) -> str:
        return self.eventbridge()


Recurrence = Cron | Rate


@dataclass(frozen=True)
class RecurringSchedule:
    """A recurring schedule of a job type, as the registry holds it."""

    name: str
    job_type: str
    when: Recurrence

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.when.params)

    @property
    def owner(self) -> str:
        """Who owns the jobs it creates: the declared owner, as the API names callers, or
        `schedule:<name>` (seen by operators: `jobpipe schedules`)."""
        declared = self.when.owner
        if not declared:
            return f"schedule:{self.name}"
        if declared.startswith("arn:"):
            from jobpipe.api.identity import owner_of_arn

            return owner_of_arn(declared)
        if declared.startswith("jwt:"):
            return declared
        return f"jwt:{declared}"

    def firing_input(self) -> str:
        """What each firing sends the function that creates its job: the time it fired for is
        filled in by EventBridge Scheduler."""
        return json.dumps(
            {"schedule": self.name, "type": self.job_type, "scheduled_time": SCHEDULED_TIME},
            sort_keys=True,
            separators=(",", ":"),
        )


def check_schedule_name(name: str, job_type: str) -> str:
    if not re.fullmatch(SCHEDULE_NAME_PATTERN, name) or name.startswith(ONE_TIME_PREFIX):
        raise ConfigurationError(
            f"schedule name {name!r} (of job type {job_type!r}) must match "
            f"{SCHEDULE_NAME_PATTERN} and not start with {ONE_TIME_PREFIX!r}"
        )
    return name


def check_owner(owner: str | None, name: str) -> None:
    if owner is None:
        return
    if not (owner.startswith("arn:") or ("#" in owner and not owner.startswith("#"))):
        raise ConfigurationError(
            f"schedule {name!r}: owner must be an IAM ARN or `issuer#subject`, got {owner!r}"
        )


def firing_job_id(schedule_name: str, scheduled_ms: int) -> str:
    """The id of the job a firing creates: a ULID whose time is the firing's and whose random
    part is a hash of the schedule and that time, so every delivery of one firing names the
    same job."""
    from ulid import ULID

    digest = hashlib.sha256(f"{schedule_name}@{scheduled_ms}".encode()).digest()
    return str(ULID.from_bytes(scheduled_ms.to_bytes(6, "big") + digest[:10]))


@dataclass(frozen=True)
class ScheduleDefinition:
    """A recurring schedule as EventBridge Scheduler holds it: what the CDK app deploys and the
    local stack creates."""

    name: str
    expression: str
    timezone: str
    input: str
    description: str
    enabled: bool


def definition(schedule: RecurringSchedule, *, paused: bool = False) -> ScheduleDefinition:
    return ScheduleDefinition(
        name=schedule.name,
        expression=schedule.when.eventbridge(),
        timezone=schedule.when.timezone,
        input=schedule.firing_input(),
        description=f"jobpipe: a {schedule.job_type} job, {schedule.when.describe()}"[:512],
        enabled=not paused,
    )


def paused_names(setting: str | None, known: Mapping[str, Any]) -> frozenset[str]:
    """The schedules a pause setting names (`all`, or names separated by commas); refuses a
    name no schedule has."""
    if not setting or not setting.strip():
        return frozenset()
    if setting.strip().lower() == PAUSE_ALL:
        return frozenset(known)
    names = frozenset(n.strip() for n in setting.split(",") if n.strip())
    unknown = sorted(names - set(known))
    if unknown:
        raise ConfigurationError(
            f"paused schedules {', '.join(unknown)} are not declared; known: "
            f"{', '.join(sorted(known)) or '(none)'}"
        )
    return names
