"""The test job types the local stack runs beside the examples: backoffs that round to no wait,
and a type that fails while `BROKEN` is set (a bug in production, fixed by a deploy). Declared
in the test process's own registry, and in each worker process's (`worker_types`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from jobpipe.domain.registry import JobContext, Registry, job_type
from jobpipe.domain.retry import Backoff
from jobpipe.errors import SoftTimeLimitExceeded, TransientJobError

INSTANT = Backoff(base=0.001, cap=0.001)
ENV_BROKEN_FLAG = "JOBPIPE_TEST_BROKEN_FLAG"


class FailTimes(BaseModel):
    fail_times: int = 0


class Nothing(BaseModel):
    pass


class Flag:
    """A flag every process of the local stack sees: a file that exists while it is set."""

    def __init__(self) -> None:
        if ENV_BROKEN_FLAG not in os.environ:
            os.environ[ENV_BROKEN_FLAG] = str(
                Path(tempfile.mkdtemp(prefix="jobpipe-test-")) / "broken"
            )
        self.path = Path(os.environ[ENV_BROKEN_FLAG])

    def set(self) -> None:
        self.path.touch()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def is_set(self) -> bool:
        return self.path.exists()


# While set, `until_fixed` jobs fail; the test "deploys the fix" by clearing it before
# replaying the dead-lettered jobs.
BROKEN = Flag()


def declare(registry: Registry) -> None:
    @job_type("quick_flaky", max_attempts=3, backoff=INSTANT, timeout=5, into=registry)
    def quick_flaky(params: FailTimes, context: JobContext) -> dict[str, Any]:
        if context.attempt <= params.fail_times:
            raise TransientJobError(f"planned failure {context.attempt}")
        return {"attempt": context.attempt}

    @job_type("until_fixed", max_attempts=2, backoff=INSTANT, timeout=5, into=registry)
    def until_fixed(params: Nothing) -> dict[str, Any]:
        if BROKEN.is_set():
            raise TransientJobError("still broken")
        return {"fixed": True}

    @job_type(
        "overtime",
        timeout=5,
        soft_timeout=0.2,
        permanent=(SoftTimeLimitExceeded,),
        into=registry,
    )
    def overtime(params: Nothing) -> None:
        import time

        time.sleep(3)
