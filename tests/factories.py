"""Jobs for tests, built the way the submit service builds them."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from jobpipe.domain.job import ErrorInfo, Job, fingerprint, new_job_id, payload_of, stored_json
from jobpipe.domain.record import error_entries
from jobpipe.domain.retry import EARLY_START_TOLERANCE_MS
from jobpipe.domain.states import (
    ABANDON,
    ABANDON_ATTEMPT,
    CLAIM_RUNNING,
    CLAIM_WAITING,
    FAIL,
    MARK_DEAD_LETTER_SENT,
    REPLAY,
    RETRY,
    START,
    SUCCEED,
    JobStatus,
)
from jobpipe.errors import IllegalTransitionError
from jobpipe.ports import JobStore, StuckJob


def pending_job(
    job_type: str = "echo",
    params: dict[str, Any] | None = None,
    *,
    max_attempts: int = 3,
    owner: str = "alice",
    now_ms: int | None = None,
) -> Job:
    """A new `pending` job whose payload hash matches its type and params."""
    params = {"x": 1} if params is None else params
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return Job(
        job_id=new_job_id(),
        type=job_type,
        params=params,
        owner=owner,
        status=JobStatus.PENDING,
        created_at=now,
        updated_at=now,
        expires_at=now // 1000 + 86400,
        max_attempts=max_attempts,
        payload_hash=fingerprint(payload_of(job_type, params)),
    )


# --- bringing a job to a state through the store's own transitions ---------------------------


def start(
    store: JobStore, job_id: str, *, payload_hash: str, lease_expires_at: int, now_ms: int
) -> Job:
    return store.apply(
        START,
        job_id,
        payload_hash=payload_hash,
        lease=lease_expires_at,
        now=now_ms,
        due=now_ms + EARLY_START_TOLERANCE_MS,
    )


def succeed(store: JobStore, running: Job, *, result: Any, now_ms: int) -> Job:
    return store.apply(
        SUCCEED,
        running,
        attempt=running.attempts,
        result=stored_json(result),
        progress=None,
        now=now_ms,
    )


def retry(
    store: JobStore, running: Job, *, error: ErrorInfo, next_attempt_at: int, now_ms: int
) -> Job:
    return store.apply(
        RETRY,
        running,
        attempt=running.attempts,
        errors=error_entries(running.errors_with(error, now_ms)),
        next_attempt_at=next_attempt_at,
        progress=None,
        now=now_ms,
    )


def fail(
    store: JobStore, running: Job, *, error: ErrorInfo, dead_lettered: bool, now_ms: int
) -> Job:
    return store.apply(
        FAIL,
        running,
        attempt=running.attempts,
        errors=error_entries(running.errors_with(error, now_ms)),
        dead_lettered=dead_lettered,
        progress=None,
        now=now_ms,
    )


def abandon(
    store: JobStore,
    job_id: str,
    *,
    error: ErrorInfo,
    now_ms: int,
    lease_expires_at: int | None = None,
    dead_letter_sent: bool = False,
) -> Job:
    entry = {"type": error.type, "message": error.message}
    if lease_expires_at is None:
        return store.apply(
            ABANDON, job_id, error=entry, dead_letter_sent=dead_letter_sent, now=now_ms
        )
    return store.apply(
        ABANDON_ATTEMPT,
        job_id,
        error=entry,
        dead_letter_sent=dead_letter_sent,
        lease=lease_expires_at,
        now=now_ms,
    )


def replay(store: JobStore, job_id: str, *, now_ms: int) -> Job:
    return store.apply(REPLAY, job_id, now=now_ms)


def mark_dead_letter_sent(store: JobStore, job_id: str, *, replays: int) -> None:
    """Record the DLQ copy of the job's dead-lettering; nothing if the job moved on."""
    with contextlib.suppress(IllegalTransitionError):
        store.apply(MARK_DEAD_LETTER_SENT, job_id, replays=replays)


def claim_stuck(store: JobStore, stuck: StuckJob, *, now_ms: int) -> Job:
    """The reaper's claim of a stuck job, as its index showed it."""
    claim = CLAIM_RUNNING if stuck.status is JobStatus.RUNNING else CLAIM_WAITING
    return store.apply(claim, stuck.job_id, seen=stuck.since, now=now_ms)
