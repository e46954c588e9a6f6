"""Example job types used by the local stack, the tests, the benchmarks and the chaos runs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobpipe.domain.registry import JobContext, job_type
from jobpipe.domain.retry import Backoff
from jobpipe.errors import PermanentJobError, TransientJobError

# Short backoff so that local runs finish in seconds.
EXAMPLE_BACKOFF = Backoff(base=1.0, cap=10.0)


class EchoParams(BaseModel):
    model_config = ConfigDict(extra="allow")


class SleepParams(BaseModel):
    seconds: float = Field(ge=0, le=20)


class FailParams(BaseModel):
    message: str = Field(default="this job always fails", max_length=1000)


class FlakyParams(BaseModel):
    fail_times: int = Field(ge=0, le=20)


class AddParams(BaseModel):
    value: float = 0
    # What a workflow step receives: a number, or a group's list of them (nested for nested
    # groups).
    input: float | list[Any] | None = None


@job_type("echo", backoff=EXAMPLE_BACKOFF, timeout=5)
def echo(params: EchoParams) -> dict[str, Any]:
    """Returns its params."""
    return params.model_dump(mode="json")


# How often the sleeping examples wake to report progress and look for a cancel.
SLEEP_STEP_SECONDS = 0.25


@job_type("sleep", backoff=EXAMPLE_BACKOFF, timeout=25)
def sleep(params: SleepParams, context: JobContext) -> dict[str, Any]:
    """Sleeps for `seconds`, reporting progress; stops early if it is cancelled."""
    slept = 0.0
    while slept < params.seconds:
        step = min(SLEEP_STEP_SECONDS, params.seconds - slept)
        time.sleep(step)
        slept += step
        context.progress(round(slept, 3), params.seconds, "sleeping")  # raises if cancelled
    return {"slept": params.seconds}


@job_type("sleep_async", backoff=EXAMPLE_BACKOFF, timeout=25)
async def sleep_async(params: SleepParams, context: JobContext) -> dict[str, Any]:
    """`sleep`, awaited: the async jobs of one batch sleep side by side."""
    slept = 0.0
    while slept < params.seconds:
        step = min(SLEEP_STEP_SECONDS, params.seconds - slept)
        await asyncio.sleep(step)
        slept += step
        context.progress(round(slept, 3), params.seconds, "sleeping")
    return {"slept": params.seconds}


@job_type("fail", backoff=EXAMPLE_BACKOFF, timeout=5)
def fail(params: FailParams) -> None:
    """Raises a permanent error."""
    raise PermanentJobError(params.message)


@job_type("flaky", max_attempts=5, backoff=EXAMPLE_BACKOFF, timeout=5)
def flaky(params: FlakyParams, context: JobContext) -> dict[str, Any]:
    """Raises a transient error on its first `fail_times` attempts, then succeeds."""
    if context.attempt <= params.fail_times:
        raise TransientJobError(
            f"attempt {context.attempt} of {params.fail_times} planned failures"
        )
    return {"attempts": context.attempt}


@job_type("add", backoff=EXAMPLE_BACKOFF, timeout=5)
def add(params: AddParams) -> float:
    """Adds `value` to what it receives (a number, or all the numbers of a group's results):
    a workflow's running total."""
    return params.value + _total(params.input)


def _total(received: Any) -> float:
    if isinstance(received, list):
        return sum(_total(item) for item in received)
    if isinstance(received, int | float):
        return float(received)
    return 0.0
