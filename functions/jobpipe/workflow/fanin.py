"""Fan-in: a workflow member has ended, and what waits for it moves on — exactly once, however
often the end is reported (a redelivered message, a retried outcome write, the reaper doing a
follow-up that was cut off).

Each member knows what waits for it (`Step.waiters`): later steps, or the workflow itself. For
each:
- the member succeeded, or the waiter takes outcomes: it is counted. A waiter that waits for
  one job is released at once; one that waits for more adds the member's position to a set on
  its own item (`ARRIVE`: adding a position twice changes nothing), and the arrival that
  completes the set releases it. The release (`RELEASE`, `waiting → pending`) is a conditional
  write, so only one wins; its message is sent after it, and the reaper's pending index holds
  the released step until it starts, so a send cut off is re-sent. For the workflow, the arrival
  that completes it ends it `succeeded`.
- otherwise the waiter will never run: it is skipped (`SKIP`, `waiting → cancelled`) with the
  cause — the member that failed first — which it passes on to what waits for it in turn; the
  workflow ends `failed` (or `cancelled`, when the cause was a cancel) naming that member.

Every write is to the waiter's own item and at most two per member (the arrival and at most
one release), so a chord of thousands of members never grows one item past its count set or
writes it more than twice per member.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from jobpipe.domain.job import Cause, Job, Waiter
from jobpipe.domain.states import (
    ARRIVE,
    RELEASE,
    SKIP,
    WORKFLOW_ARRIVE,
    WORKFLOW_CANCEL,
    WORKFLOW_FAIL,
    WORKFLOW_SUCCEED,
    JobStatus,
)
from jobpipe.errors import IllegalTransitionError
from jobpipe.observability import log_transition, logger
from jobpipe.ports import JobQueue, JobStore

CANCELLED = "JobCancelled"


class FanIn:
    def __init__(
        self, store: JobStore, queue: JobQueue, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def member_ended(self, member: Job) -> list[Job]:
        """Move on what waits for `member` (terminal). Returns the steps skipped because of it:
        they have ended too, and what waits for them follows in turn. Raises StoreError or
        QueueError when cut short; doing it all again is harmless."""
        assert member.step is not None and member.is_terminal
        skipped = []
        for waiter in member.step.waiters:
            if waiter.job_id is None:
                self._workflow_notified(member, waiter)
                continue
            step = self._step_notified(member, waiter)
            if step is not None:
                skipped.append(step)
        return skipped

    def _step_notified(self, member: Job, waiter: Waiter) -> Job | None:
        assert waiter.job_id is not None
        if member.status is not JobStatus.SUCCEEDED and not waiter.takes_outcomes:
            try:
                skipped = self._store.apply(
                    SKIP, waiter.job_id, cause=cause_of(member).as_dict(), now=self._now_ms()
                )
            except IllegalTransitionError:
                return None  # already skipped (or cancelled)
            log_transition(skipped, "skip")
            return skipped
        if waiter.wait_count > 1:
            try:
                counted = self._store.apply(ARRIVE, waiter.job_id, position=waiter.position)
            except IllegalTransitionError:
                return None  # released, skipped or cancelled already
            if len(counted.arrived) < waiter.wait_count:
                return None
        self._release(waiter.job_id)
        return None

    def _release(self, job_id: str) -> None:
        try:
            released = self._store.apply(RELEASE, job_id, now=self._now_ms())
        except IllegalTransitionError as refused:
            seen: Job | None = refused.job
            if seen is None or seen.status is not JobStatus.PENDING:
                return  # skipped or cancelled, or it has started: nothing to send
            # Released by an earlier report of this end, which may have been cut off before it
            # sent the message: send it (again; a second message is harmless).
            released = seen
        else:
            log_transition(released, "release")
        self._queue.send(released.message().to_body())

    def _workflow_notified(self, member: Job, waiter: Waiter) -> None:
        assert member.step is not None
        workflow_id = member.step.workflow_id
        now = self._now_ms()
        try:
            if member.status is JobStatus.SUCCEEDED or waiter.takes_outcomes:
                if waiter.wait_count > 1:
                    counted = self._store.apply_workflow(
                        WORKFLOW_ARRIVE, workflow_id, position=waiter.position
                    )
                    if len(counted.arrived) < waiter.wait_count:
                        return
                self._store.apply_workflow(WORKFLOW_SUCCEED, workflow_id, now=now)
                logger.info("workflow succeeded", workflow_id=workflow_id)
                return
            cause = cause_of(member)
            ending = WORKFLOW_CANCEL if cause.type == CANCELLED else WORKFLOW_FAIL
            self._store.apply_workflow(ending, workflow_id, error=cause.as_dict(), now=now)
            logger.info(f"workflow {ending.target}", workflow_id=workflow_id, member=cause.job_id)
        except IllegalTransitionError:
            pass  # it has ended already: the first member that decided it wins


def cause_of(member: Job) -> Cause:
    """Why what waits for `member` cannot run: the member that failed first."""
    assert member.step is not None
    if member.cause is not None:
        return member.cause
    if member.status is JobStatus.CANCELLED:
        return Cause(CANCELLED, "the step was cancelled", member.job_id, member.step.path)
    error = member.error
    return Cause(
        error.type if error else "JobFailed",
        error.message if error else "the step failed",
        member.job_id,
        member.step.path,
    )
