"""Reading a job's status, as its owner sees it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from jobpipe.domain.job import Job, check_job_id
from jobpipe.domain.states import JobStatus
from jobpipe.errors import JobNotFoundError
from jobpipe.ports import JobStore

# How soon a client should poll again while a job is pending or running.
POLL_SECONDS = 1
MAX_RETRY_AFTER_SECONDS = 60


class StatusService:
    def __init__(self, store: JobStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def get(self, owner: str, raw_job_id: str) -> Job:
        """Raises InvalidJobIdError (400) or JobNotFoundError (404, also for another's job)."""
        job_id = check_job_id(raw_job_id)
        job = self._store.get(job_id)
        if job is None or job.owner != owner:
            raise JobNotFoundError(f"no job {job_id}")
        return job

    def retry_after(self, job: Job) -> int | None:
        """Seconds until polling again is worthwhile; None once the job is terminal."""
        if job.is_terminal:
            return None
        due = job.next_attempt_at if job.status is JobStatus.RETRYING else None
        if job.status is JobStatus.SCHEDULED:
            due = job.run_at
        if due is not None:
            wait = (due - self._clock() * 1000) / 1000
            return max(POLL_SECONDS, min(MAX_RETRY_AFTER_SECONDS, math.ceil(wait)))
        return POLL_SECONDS
