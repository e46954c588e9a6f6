"""Cancelling a job, as its owner asks: at once when it is not running, cooperatively when it
is (`cancel_requested`, which its code sees through `context.check()` / `context.progress()`).

A cancel races the worker's start, and both are conditional writes on the job: whichever is
first wins, and the other is refused — a job cancelled while scheduled, pending or retrying never
starts an attempt, and one that started first is asked to stop instead. A cancelled job's
one-time schedule is deleted; if that fails, the schedule fires anyway and the worker drops its
message (the job is cancelled).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from jobpipe.domain.job import Job, check_job_id
from jobpipe.domain.states import CANCEL, CANCELLABLE_AT_ONCE, REQUEST_CANCEL, JobStatus
from jobpipe.errors import (
    IllegalTransitionError,
    JobFinishedError,
    JobNotFoundError,
    SchedulerError,
    ServiceUnavailableError,
    StoreError,
)
from jobpipe.followups import FollowUps
from jobpipe.observability import log_transition, logger, metrics
from jobpipe.ports import JobStore, Scheduler
from jobpipe.topology import TOPOLOGY

# A job that keeps moving under the cancel (it is started, retried...) is looked at again this
# many times before the caller is told to try again.
TRIES = 4


class CancelService:
    def __init__(
        self,
        store: JobStore,
        *,
        followups: FollowUps | None = None,
        clock: Callable[[], float] = time.time,
        scheduler: Scheduler | None = None,
    ) -> None:
        self._store = store
        # What follows a cancelled job's end (its workflow moves on); without it, the reaper
        # does that later.
        self._followups = followups
        self._clock = clock
        self._scheduler = scheduler

    def cancel(self, owner: str, raw_job_id: str) -> Job:
        """The job after the cancel: `cancelled`, or `running` with `cancel_requested`.

        Raises InvalidJobIdError (400), JobNotFoundError (404, also for another's job),
        JobFinishedError (409: it succeeded or failed; a cancelled job is answered again) or
        ServiceUnavailableError (503, safe to retry)."""
        job_id = check_job_id(raw_job_id)
        try:
            for _ in range(TRIES):
                job = self._store.get(job_id)
                if job is None or job.owner != owner:
                    raise JobNotFoundError(f"no job {job_id}")
                if job.status is JobStatus.CANCELLED or (
                    job.status is JobStatus.RUNNING and job.cancel_requested
                ):
                    return job
                if job.is_terminal:
                    raise JobFinishedError(f"job {job_id} has already {job.status.value}")
                try:
                    return self._cancel(job)
                except IllegalTransitionError:
                    continue  # it moved on meanwhile (started, retried, finished): look again
        except StoreError as error:
            raise ServiceUnavailableError("the job store is unavailable; retry") from error
        raise ServiceUnavailableError(f"job {job_id} kept changing; retry the cancel")

    def _cancel(self, job: Job) -> Job:
        now = int(self._clock() * 1000)
        if job.status in CANCELLABLE_AT_ONCE:
            cancelled = self._store.apply(CANCEL, job.job_id, now=now)
            log_transition(cancelled, "cancel")
            metrics.add_metric(TOPOLOGY.metrics.cancelled, "Count", 1)
            if job.status is JobStatus.SCHEDULED and job.waits_on_schedule:
                self._delete_schedule(job)
            if self._followups is not None:
                self._followups.after_end(cancelled)
            return cancelled
        # Running: asked to stop. Its code sees it at its next check, and a failed attempt ends
        # the job cancelled instead of retrying it.
        asked = self._store.apply(REQUEST_CANCEL, job.job_id)
        log_transition(asked, "request_cancel")
        return asked

    def _delete_schedule(self, job: Job) -> None:
        """The cancelled job's schedule is no longer needed. A failure here loses nothing: the
        schedule fires, and the worker drops the message of a cancelled job."""
        if self._scheduler is None:
            return
        try:
            self._scheduler.cancel_once(job.job_id)
        except SchedulerError:
            logger.warning("could not delete a cancelled job's schedule", job_id=job.job_id)
