"""Job types: one function and one decorator each.

    class ResizeParams(BaseModel):
        url: str
        width: int

    @job_type("resize", max_attempts=5, permanent=(ValueError,))
    def resize(params: ResizeParams) -> dict: ...

The params model is taken from the function's annotation. A job function may take a second
parameter, a `JobContext` (`jobpipe.domain.context`): its job id and attempt, progress,
cancellation. An `async def` job function is awaited, concurrently with the batch's other async
jobs. Recurring schedules (`jobpipe.domain.schedule`) are declared with the type
(`schedules=[Cron(...)]`) or apart (`recurring("resize", Rate(hours=1))`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import BaseModel, ValidationError

from jobpipe.domain.context import JobContext as JobContext  # job functions import it here
from jobpipe.domain.retry import Backoff
from jobpipe.domain.schedule import (
    Cron as Cron,  # job modules import the declarations here, beside `job_type`
)
from jobpipe.domain.schedule import (
    Rate as Rate,
)
from jobpipe.domain.schedule import (
    Recurrence,
    RecurringSchedule,
    check_owner,
    check_schedule_name,
)
from jobpipe.errors import (
    ConfigurationError,
    InvalidParamsError,
    PermanentJobError,
    TransientJobError,
    UnknownJobTypeError,
)

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_TIMEOUT_SECONDS = 30.0
JOB_TYPE_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff: Backoff = field(default_factory=Backoff)
    # The hard limit: a record is started only with this much invocation time left.
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    permanent: tuple[type[BaseException], ...] = ()
    # Raises SoftTimeLimitExceeded inside the job this long into it, so that it can clean up.
    soft_timeout: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 100:
            raise ConfigurationError("max_attempts must be between 1 and 100")
        if self.timeout <= 0:
            raise ConfigurationError("timeout must be positive")
        if self.soft_timeout is not None and not 0 < self.soft_timeout < self.timeout:
            raise ConfigurationError("soft_timeout must be positive and below timeout")

    def is_permanent(self, error: BaseException) -> bool:
        """Job code may say so itself (PermanentJobError/TransientJobError) or the type may list
        exception classes that must not be retried; anything else is retried."""
        if isinstance(error, PermanentJobError):
            return True
        if isinstance(error, TransientJobError):
            return False
        return isinstance(error, self.permanent)


JobFunction = Callable[..., Any]


@dataclass(frozen=True)
class JobType:
    name: str
    params_model: type[BaseModel]
    policy: RetryPolicy
    function: JobFunction
    wants_context: bool

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)

    def parse_params(self, raw: Any) -> BaseModel:
        try:
            return self.params_model.model_validate(raw)
        except ValidationError as exc:
            fields = [
                {"loc": ".".join(["params", *(str(p) for p in err["loc"])]), "msg": err["msg"]}
                for err in exc.errors(include_url=False, include_input=False)
            ]
            raise InvalidParamsError(f"invalid params for job type {self.name!r}", fields) from None

    def call(self, params: BaseModel, context: JobContext) -> Any:
        """The job function's return value (a coroutine, for an async job)."""
        if self.wants_context:
            return self.function(params, context)
        return self.function(params)


class Registry(Mapping[str, JobType]):
    def __init__(self) -> None:
        self._types: dict[str, JobType] = {}
        # Recurring schedules, by name.
        self.schedules: dict[str, RecurringSchedule] = {}

    def __getitem__(self, name: str) -> JobType:
        return self._types[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def get_type(self, name: str) -> JobType:
        """The job type called `name`, or an error that lists the known ones."""
        try:
            return self._types[name]
        except KeyError:
            raise UnknownJobTypeError(name, sorted(self._types)) from None

    def add(self, job: JobType) -> None:
        if job.name in self._types:
            raise ConfigurationError(f"job type {job.name!r} is declared twice")
        self._types[job.name] = job

    def add_schedule(self, job_type_name: str, when: Recurrence) -> RecurringSchedule:
        """Declare a recurring schedule of a job type (checked against the type by
        `schedule_problems`, at load and at synth)."""
        name = check_schedule_name(when.name or job_type_name, job_type_name)
        if name in self.schedules:
            raise ConfigurationError(
                f"schedule {name!r} is declared twice: give each schedule of a type its own name="
            )
        check_owner(when.owner, name)
        schedule = RecurringSchedule(name, job_type_name, when)
        self.schedules[name] = schedule
        return schedule

    def schedule_problems(self) -> list[str]:
        """A sentence per recurring schedule that could never create its job: an unknown job
        type, params its model refuses, an unknown time zone."""
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        problems = []
        for schedule in self.schedules.values():
            job_type = self._types.get(schedule.job_type)
            if job_type is None:
                problems.append(
                    f"schedule {schedule.name!r} is for job type {schedule.job_type!r}, which is "
                    f"not declared (known: {', '.join(sorted(self._types)) or '(none)'})"
                )
                continue
            try:
                job_type.parse_params(schedule.params)
            except InvalidParamsError as invalid:
                fields = "; ".join(f"{f['loc']}: {f['msg']}" for f in invalid.fields)
                problems.append(
                    f"schedule {schedule.name!r}: its params are refused by the model of job "
                    f"type {schedule.job_type!r} ({fields})"
                )
            try:
                ZoneInfo(schedule.when.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(
                    f"schedule {schedule.name!r}: unknown time zone {schedule.when.timezone!r}"
                )
        return problems

    def max_attempts(self) -> int:
        """The largest max_attempts of any type (the queue's maxReceiveCount must exceed it)."""
        return max((t.policy.max_attempts for t in self._types.values()), default=0)

    def timeout_problems(
        self, max_timeout_seconds: float, worker_timeout_seconds: int
    ) -> list[str]:
        """A sentence per type whose `timeout` the worker can never give it: such a record would
        be handed back unstarted on every receive."""
        return [
            f"job type {t.name!r} declares timeout={t.policy.timeout:g} s, but a worker of "
            f"{worker_timeout_seconds} s can give a job at most {max_timeout_seconds:g} s (it "
            "keeps the rest for the outcome write): lower the timeout, or raise the worker's "
            "timeout in the topology"
            for t in self._types.values()
            if t.policy.timeout > max_timeout_seconds
        ]


registry = Registry()


def job_type(
    name: str,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff: Backoff | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    permanent: tuple[type[BaseException], ...] = (),
    soft_timeout: float | None = None,
    schedules: Sequence[Recurrence] = (),
    into: Registry | None = None,
) -> Callable[[JobFunction], JobFunction]:
    """Declare a job type, and any recurring schedules of it. See the module docstring."""
    import re

    if not re.fullmatch(JOB_TYPE_NAME_PATTERN, name):
        raise ConfigurationError(f"job type name {name!r} must match {JOB_TYPE_NAME_PATTERN}")
    policy = RetryPolicy(max_attempts, backoff or Backoff(), timeout, permanent, soft_timeout)

    def decorate(function: JobFunction) -> JobFunction:
        parameters = list(inspect.signature(function).parameters)
        if len(parameters) not in (1, 2):
            raise ConfigurationError(
                f"job function {function.__qualname__} must take (params) or (params, context)"
            )
        model = get_type_hints(function).get(parameters[0])
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigurationError(
                f"the first parameter of {function.__qualname__} must be annotated "
                "with a pydantic model"
            )
        target = into if into is not None else registry
        declared = JobType(name, model, policy, function, wants_context=len(parameters) == 2)
        target.add(declared)
        for when in schedules:
            schedule = target.add_schedule(name, when)
            # The type is known here: refuse its params at once.
            try:
                declared.parse_params(schedule.params)
            except InvalidParamsError as invalid:
                raise ConfigurationError(
                    f"schedule {schedule.name!r}: {invalid} ({invalid.fields})"
                ) from None
        return function

    return decorate


def recurring(job_type_name: str, *when: Recurrence, into: Registry | None = None) -> None:
    """Declare recurring schedules of a job type apart from it (the type may be declared in
    another module: an unknown one fails the load and the synth)."""
    for each in when:
        (into if into is not None else registry).add_schedule(job_type_name, each)


# The modules that declare the job types, comma-separated (default: `jobpipe.jobs`).
ENV_JOB_TYPES = "JOBPIPE_JOB_TYPES"
DEFAULT_JOB_TYPES = "jobpipe.jobs"


def load_job_types() -> Registry:
    """Import the modules that declare the job types (once) and return the registry. Refuses
    a type that could never run in the deployed worker's time."""
    import importlib
    import os

    from jobpipe.topology import TOPOLOGY

    for module in (os.environ.get(ENV_JOB_TYPES) or DEFAULT_JOB_TYPES).split(","):
        # Declares its job types as a side effect, the first time.
        importlib.import_module(module.strip())

    problems = (
        registry.timeout_problems(
            TOPOLOGY.max_job_timeout_seconds(), TOPOLOGY.worker.timeout_seconds
        )
        + registry.schedule_problems()
    )
    if problems:
        raise ConfigurationError("; ".join(problems))
    return registry
