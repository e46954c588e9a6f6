"""The local stack, started in this process on free loopback ports, with the example job types
plus test types whose backoff rounds to no wait at all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobpipe.client import JobsClient
from jobpipe.domain.registry import ENV_JOB_TYPES, Registry, load_job_types
from jobpipe.local.stack import LocalStack
from tests.local.job_types import BROKEN as BROKEN
from tests.local.job_types import declare

WORKER_TYPES = "jobpipe.jobs,tests.local.worker_types"


def test_registry() -> Registry:
    registry = Registry()
    examples = load_job_types()
    for name in examples:
        registry.add(examples[name])
    declare(registry)
    return registry


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    """One stack per test module: it owns the process's AWS environment while it runs."""
    from jobpipe import wiring

    registry = test_registry()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wiring, "load_job_types", lambda: registry)
        # The worker processes load the same types by name.
        patch.setenv(ENV_JOB_TYPES, WORKER_TYPES)
        # The handlers run in this process: keep their metrics off stdout (the CLI tests read it).
        patch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        with LocalStack(port=0, prefix="e2e") as stack:
            yield stack


@pytest.fixture
def client(local_stack: LocalStack) -> JobsClient:
    return JobsClient(local_stack.api_url)
