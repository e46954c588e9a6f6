"""Example job types used by the local stack, the tests, the benchmarks and the chaos runs."""

from __future__ import annotations

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


@job_type("echo", backoff=EXAMPLE_BACKOFF, timeout=5)
def echo(params: EchoParams) -> dict[str, Any]:
    """Returns its params."""
    return params.model_dump(mode="json")


@job_type("sleep", backoff=EXAMPLE_BACKOFF, timeout=25)
def sleep(params: SleepParams) -> dict[str, Any]:
    """Sleeps for `seconds`."""
    time.sleep(params.seconds)
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
