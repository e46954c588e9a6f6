"""The local stack runs the reaper beside the worker, and stops it with everything else."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from jobpipe.domain.states import JobStatus
from jobpipe.local.stack import LocalStack
from tests.factories import pending_job

pytestmark = pytest.mark.xdist_group("local")

GRACE_S = 15 * 60 + 60


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def test_the_local_stack_reaps_a_stuck_job_and_stops_its_reaper() -> None:
    from jobpipe import wiring

    # Given the local stack with the reaper on a short interval
    with LocalStack(port=0, prefix="reap", reaper_interval_seconds=0.05) as stack:
        (thread,) = [t for t in threading.enumerate() if t.name == "jobpipe-reaper"]
        _wait_for(lambda: stack.reaper_runs >= 1)
        # When a job has been pending past the grace period without a message
        stuck = pending_job("echo", now_ms=int((time.time() - GRACE_S) * 1000))
        wiring.job_store().create(stuck)
        # Then the reaper re-enqueues it and the worker runs it
        _wait_for(
            lambda: (
                (job := wiring.job_store().get(stuck.job_id)) is not None
                and job.status is JobStatus.SUCCEEDED
            )
        )
    # And stopping the stack stops the reaper
    assert not thread.is_alive()
