"""What each transition of `jobpipe.domain.states` does to a job's fields.

Every transition moves the job's retention (`expires_at`) to its store's retention after now:
a job expires that long after its last change, never while it is still being retried or
replayed.

The in-memory store applies these to the jobs it holds. The DynamoDB store writes the same
fields in one conditional UpdateItem, and for the transitions out of `running` it answers with
these functions applied to the running job the caller holds, instead of reading the item back.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from jobpipe.domain.job import ErrorInfo, Job
from jobpipe.domain.states import JobStatus


def started(job: Job, *, lease_expires_at: int, now_ms: int, expires_at: int) -> Job:
    return replace(
        job,
        expires_at=expires_at,
        status=JobStatus.RUNNING,
        attempts=job.attempts + 1,
        started_at=now_ms,
        updated_at=now_ms,
        lease_expires_at=lease_expires_at,
        next_attempt_at=None,
    )


def succeeded(running: Job, *, result: Any, now_ms: int, expires_at: int) -> Job:
    return replace(
        running,
        expires_at=expires_at,
        status=JobStatus.SUCCEEDED,
        result=result,
        completed_at=now_ms,
        updated_at=now_ms,
        lease_expires_at=None,
        error=None,
    )


def retrying(
    running: Job, *, error: ErrorInfo, next_attempt_at: int, now_ms: int, expires_at: int
) -> Job:
    return replace(
        running,
        expires_at=expires_at,
        status=JobStatus.RETRYING,
        error=error,
        next_attempt_at=next_attempt_at,
        updated_at=now_ms,
        lease_expires_at=None,
    )


def failed(
    job: Job,
    *,
    error: ErrorInfo,
    dead_lettered: bool,
    now_ms: int,
    expires_at: int,
    dead_letter_sent: bool = False,
) -> Job:
    return replace(
        job,
        expires_at=expires_at,
        dead_letter_sent=dead_letter_sent,
        status=JobStatus.FAILED,
        error=error,
        dead_lettered=dead_lettered,
        completed_at=now_ms,
        updated_at=now_ms,
        lease_expires_at=None,
        next_attempt_at=None,
    )


def replayed(job: Job, *, now_ms: int, expires_at: int) -> Job:
    return replace(
        job,
        expires_at=expires_at,
        status=JobStatus.PENDING,
        prior_attempts=job.prior_attempts + job.attempts,
        attempts=0,
        replays=job.replays + 1,
        dead_lettered=False,
        dead_letter_sent=False,
        updated_at=now_ms,
        error=None,
        completed_at=None,
        started_at=None,
        next_attempt_at=None,
        lease_expires_at=None,
    )
