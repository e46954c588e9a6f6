"""What follows a job's end — the one seam every path that ends a job calls: the worker (a run's
outcome, an abandoned or poison job, a duplicate delivery of an ended one), a cancel, and the
reaper.

Every move into a terminal status marks the job `outbox_due` in the same write (declared in
`jobpipe.domain.states`). For a job that has follow-ups — a workflow's member — the mark puts it
in the outbox index until `FollowUps.job_ended` has done them and cleared it; if the process
dies in between, the reaper finds the job there and calls `job_ended` again. Every follow-up is
idempotent, so doing one twice is harmless. A job without follow-ups costs nothing: its mark is
in no index, and nothing is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from jobpipe.domain.job import Job
from jobpipe.domain.states import FOLLOWED_UP
from jobpipe.errors import IllegalTransitionError, JobError
from jobpipe.observability import logger
from jobpipe.ports import FollowUp, JobQueue, JobStore

if TYPE_CHECKING:
    from jobpipe.domain.workflow import Workflow
    from jobpipe.workflow.fanin import FanIn


def has_followups(job: Job) -> bool:
    return job.step is not None


class FollowUps:
    def __init__(
        self,
        store: JobStore,
        queue: JobQueue,
        *,
        finish_workflow: Callable[[Workflow], object] | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        # Finishes a workflow's creation (`WorkflowService.finish`): the reaper's, which knows
        # the job types.
        self._finish_workflow = finish_workflow

    @cached_property
    def _fan_in(self) -> FanIn:
        # Imported on first use: a process whose jobs have no follow-ups never loads workflows.
        from jobpipe.workflow.fanin import FanIn

        return FanIn(self._store, self._queue)

    def resume(self, due: FollowUp) -> None:
        """Do a follow-up the outbox index shows as due for a while (the reaper): it was cut
        off. Raises StoreError or QueueError when cut short again."""
        if due.workflow_id is not None:
            workflow = self._store.get_workflow(due.workflow_id)
            if workflow is not None and workflow.spec is not None and self._finish_workflow:
                self._finish_workflow(workflow)
            return
        job = self._store.get(due.key)
        if job is not None:
            self.job_ended(job)

    def job_ended(self, job: Job) -> None:
        """Do what follows `job`'s end, then clear its mark. Raises StoreError or QueueError
        when cut short: the mark stays, and the reaper does it later."""
        ended = [job]
        while ended:
            current = ended.pop()
            if not current.is_terminal or current.outbox_due is None:
                continue
            if current.step is not None:
                # Steps skipped because of it have ended too: theirs follow here as well.
                ended.extend(self._fan_in.member_ended(current))
            # Refused when another report of the same end cleared it, or it has ended again since.
            with contextlib.suppress(IllegalTransitionError):
                self._store.apply(FOLLOWED_UP, current.job_id, due=current.outbox_due)

    def after_end(self, job: Job) -> None:
        """`job_ended`, for a caller whose own work is done: a failure is logged, and the reaper
        finishes what was cut short."""
        if not has_followups(job):
            return
        try:
            self.job_ended(job)
        except JobError:
            logger.warning(
                "what follows the job's end was cut short; the reaper will finish it",
                job_id=job.job_id,
                exc_info=True,
            )
