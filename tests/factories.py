"""Jobs for tests, built the way the submit service builds them."""

from __future__ import annotations

import time
from typing import Any

from jobpipe.domain.job import Job, fingerprint, new_job_id, payload_of
from jobpipe.domain.states import JobStatus


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
