"""The one way a job comes into being — a submit, a batch item, a scheduled firing, a workflow
step all create their jobs here, so every job starts out the same."""

from __future__ import annotations

from typing import Any

from jobpipe.domain.job import Job, Step, fingerprint, new_job_id, payload_of
from jobpipe.domain.registry import JobType
from jobpipe.domain.states import JobStatus


def new_job(
    job_type: JobType,
    params: dict[str, Any],
    *,
    owner: str,
    now_ms: int,
    retention_seconds: int,
    job_id: str | None = None,
    step: Step | None = None,
    run_at_ms: int | None = None,
    schedule: str | None = None,
) -> Job:
    """A `pending` job of `job_type` with `params` as its model dumped them (JSON values); a
    `scheduled` one when `run_at_ms` is later than now (a time already past runs now); or, for a
    workflow's step that waits for others (`step.inputs`), a `waiting` one.

    Its payload hash covers type and params: the worker refuses a message whose payload differs
    from the one the job was submitted with. It is kept for `retention_seconds` after its last
    change, and a scheduled job that long after its `run_at`. `schedule` names the recurring
    schedule whose firing made it."""
    waits = step is not None and step.inputs is not None
    scheduled = run_at_ms is not None and run_at_ms > now_ms
    return Job(
        job_id=job_id or new_job_id(),
        type=job_type.name,
        params=params,
        owner=owner,
        status=JobStatus.WAITING
        if waits
        else (JobStatus.SCHEDULED if scheduled else JobStatus.PENDING),
        step=step,
        created_at=now_ms,
        updated_at=now_ms,
        expires_at=max(now_ms, run_at_ms or 0) // 1000 + retention_seconds,
        max_attempts=job_type.policy.max_attempts,
        payload_hash=fingerprint(payload_of(job_type.name, params)),
        run_at=run_at_ms if scheduled else None,
        schedule=schedule,
    )
