"""The local stack, started in this process on free loopback ports, with the example job types
plus test types whose backoff rounds to no wait at all."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from jobpipe.client import JobsClient
from jobpipe.domain.registry import JobContext, Registry, job_type, load_job_types
from jobpipe.domain.retry import Backoff
from jobpipe.errors import TransientJobError
from jobpipe.local.stack import LocalStack

INSTANT = Backoff(base=0.001, cap=0.001)
# While set, `until_fixed` jobs fail (a bug in production); the test "deploys the fix" by
# clearing it before replaying the dead-lettered jobs.
BROKEN = threading.Event()


class FailTimes(BaseModel):
    fail_times: int = 0


class Nothing(BaseModel):
    pass


def test_registry() -> Registry:
    registry = Registry()
    examples = load_job_types()
    for name in examples:
        registry.add(examples[name])

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

    return registry


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    """One stack per test module: it owns the process's AWS environment while it runs."""
    from jobpipe import wiring

    registry = test_registry()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wiring, "load_job_types", lambda: registry)
        # The handlers run in this process: keep their metrics off stdout (the CLI tests read it).
        patch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        with LocalStack(port=0, prefix="e2e") as stack:
            yield stack


@pytest.fixture
def client(local_stack: LocalStack) -> JobsClient:
    return JobsClient(local_stack.api_url)
