"""The reaper: finds stuck jobs and resolves each, so that no job waits forever.

A job is stuck when nothing will move it on by itself:
- `running` with a lease (the worker's deadline) that expired longer ago than the queue's
  visibility timeout plus a margin. Its worker died, and SQS should have redelivered the message
  by now; since no worker started the job again, the message is gone (SQS moved it to the DLQ
  after too many receives, or it was lost).
- waiting to start for longer than a grace period — `pending` since then, or `retrying` with
  its retry due then: its message may never have been sent, or is gone.

Both are found through the table's two sparse indexes, one Query per job type (never a Scan),
and each is resolved:
- attempts left (every waiting job, a running one below its `max_attempts`): the job is claimed
  with one conditional write, then its message is sent to the jobs queue again. The claim moves
  the job's marker (its expired lease, or `pending_since`) to now, only if the job is still as
  the index showed it, so two reapers never both re-enqueue it, and a job started in the meantime
  is left alone. A message that still turns up is harmless: the worker runs a job at most once
  per attempt (idempotency on the job id).
- no attempts left (a running job cut off on its last attempt whose message SQS dead-lettered):
  the job is abandoned — `failed` and `dead_lettered` — guarded by that attempt's lease. The
  message is already in the DLQ, from where `jobpipe dlq replay` can replay the job.

Safe concurrently with the worker and with another reaper, and twice in a row: every change is a
conditional write, and a send that fails leaves the job to the next run after the grace period.
Each run does bounded work; what is left is found by the next run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from jobpipe.domain.job import ErrorInfo, Job
from jobpipe.domain.states import (
    ABANDON_ATTEMPT,
    CANCEL_STOPPED,
    CLAIM_RUNNING,
    CLAIM_WAITING,
    JobStatus,
)
from jobpipe.errors import IllegalTransitionError, JobError
from jobpipe.followups import FollowUps
from jobpipe.observability import log_transition, logger, metrics
from jobpipe.ports import JobQueue, JobStore, StuckJob
from jobpipe.topology import TOPOLOGY

UNKNOWN_BACKLOG_SECONDS = 3600
CUT_OFF = ErrorInfo(
    "AttemptsExhaustedError",
    "the last attempt was cut off and SQS dead-lettered the job's message",
)


class Action(StrEnum):
    REQUEUED = "requeued"  # claimed and its message sent again
    ABANDONED = "abandoned"  # failed and dead-lettered: no attempts left
    CANCELLED = "cancelled"  # asked to cancel, and its runner died: it ends cancelled
    SKIPPED = "skipped"  # moved on since the index read (started, finished, or another reaper)
    FOLLOWED_UP = "followed_up"  # what follows a write was cut off, and is done now
    ERROR = "error"  # the claim or the send failed; the next run tries again


@dataclass
class ReapReport:
    """What one run did, by action: job ids."""

    actions: dict[Action, list[str]] = field(default_factory=dict)

    def add(self, action: Action, job_id: str) -> None:
        self.actions.setdefault(action, []).append(job_id)

    def of(self, action: Action) -> list[str]:
        return self.actions.get(action, [])

    def counts(self) -> dict[str, int]:
        return {action.value: len(self.of(action)) for action in Action}


@dataclass(frozen=True)
class ReaperPolicy:
    running_grace_ms: int
    pending_grace_ms: int
    max_jobs_per_run: int
    followup_grace_ms: int = TOPOLOGY.reaper.followup_grace_seconds * 1000
    max_followups_per_run: int = TOPOLOGY.reaper.max_followups_per_run

    @classmethod
    def from_topology(cls) -> ReaperPolicy:
        reaper = TOPOLOGY.reaper
        return cls(
            running_grace_ms=(
                TOPOLOGY.queue.visibility_timeout_seconds + reaper.lease_margin_seconds
            )
            * 1000,
            pending_grace_ms=reaper.pending_grace_seconds * 1000,
            max_jobs_per_run=reaper.max_jobs_per_run,
        )


class Reaper:
    def __init__(
        self,
        store: JobStore,
        queue: JobQueue,
        job_types: Iterable[str],
        *,
        policy: ReaperPolicy | None = None,
        followups: FollowUps | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._queue = queue
        self._followups = followups or FollowUps(store, queue)
        self._job_types = sorted(job_types)
        self._policy = policy or ReaperPolicy.from_topology()
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def run(self) -> ReapReport:
        """One pass over every registered job type; at most `max_jobs_per_run` jobs.

        A backlog is not a lost message: a job waits in line as long as the queue's oldest
        message has, so every grace period is extended by that age (the queue's own metric, no
        write per job). The work bound is shared fairly: each type first gets an equal share,
        then what the others left is handed out in turn, so one busy type cannot starve the
        rest."""
        report = ReapReport()
        now = self._now_ms()
        backlog_ms = self._backlog_ms()
        searches = [
            (job_type, finder, now - grace - backlog_ms)
            for job_type in self._job_types
            for finder, grace in (
                (self._store.expired_leases, self._policy.running_grace_ms),
                (self._store.pending_before, self._policy.pending_grace_ms),
            )
        ]
        left = self._policy.max_jobs_per_run
        # Rounds: each search that may have more gets an equal share of what is left.
        open_searches = list(range(len(searches)))
        while left > 0 and open_searches:
            share = -(-left // len(open_searches))  # ceil
            still_open = []
            for index in open_searches:
                job_type, finder, before = searches[index]
                take = min(share, left)
                if take <= 0:
                    break
                found = 0
                for stuck in finder(job_type, before_ms=before, limit=take):
                    found += 1
                    left -= 1
                    report.add(self._resolve(stuck), stuck.job_id)
                if found == take:
                    still_open.append(index)
            open_searches = still_open
        if left <= 0:
            logger.info("reaper: work bound reached; the next run continues")
        self._follow_up(report, now)
        if report.actions:
            logger.info("reaper run", extra={"reaped": report.counts(), "backlog_ms": backlog_ms})
        return report

    def _follow_up(self, report: ReapReport, now: int) -> None:
        """Do the follow-ups that were cut off (the outbox index): a workflow member's end
        whose next step was not released, a workflow whose creation was not finished."""
        before = now - self._policy.followup_grace_ms
        try:
            for due in self._store.followups_due(
                before_ms=before, limit=self._policy.max_followups_per_run
            ):
                try:
                    self._followups.resume(due)
                    report.add(Action.FOLLOWED_UP, due.key)
                except JobError:
                    logger.exception("reaper: a follow-up failed again", key=due.key)
                    metrics.add_metric(TOPOLOGY.metrics.reaper_unresolved, "Count", 1)
                    report.add(Action.ERROR, due.key)
        except JobError:
            logger.exception("reaper: could not read the outbox")
            metrics.add_metric(TOPOLOGY.metrics.reaper_unresolved, "Count", 1)

    def _backlog_ms(self) -> int:
        """How long the oldest message in the jobs queue has waited (0 when it is empty); a
        conservative hour when the queue cannot say."""
        try:
            age = self._queue.oldest_message_age_seconds()
        except JobError:
            logger.warning("reaper: the queue's backlog is unknown; assuming an hour")
            age = None
        return int((UNKNOWN_BACKLOG_SECONDS if age is None else age) * 1000)

    def _resolve(self, stuck: StuckJob) -> Action:
        try:
            try:
                if stuck.status is JobStatus.RUNNING and not stuck.attempts_left:
                    return self._abandon(stuck)
                return self._requeue(stuck)
            except IllegalTransitionError as refused:
                if stuck.status is JobStatus.RUNNING and _asked_to_cancel(refused.job, stuck):
                    return self._cancel(stuck)
                raise
        except IllegalTransitionError:
            # The job moved on since the index read: started again, finished, or claimed by
            # another reaper. Nothing to do.
            return Action.SKIPPED
        except JobError:
            logger.exception("reaper: could not resolve a stuck job", job_id=stuck.job_id)
            metrics.add_metric(TOPOLOGY.metrics.reaper_unresolved, "Count", 1)
            return Action.ERROR

    def _requeue(self, stuck: StuckJob) -> Action:
        claim = CLAIM_RUNNING if stuck.status is JobStatus.RUNNING else CLAIM_WAITING
        job = self._store.apply(claim, stuck.job_id, seen=stuck.since, now=self._now_ms())
        # Claimed: only this reaper sends. If the send fails, the claim holds the job back for
        # one grace period, after which a run finds it again.
        self._queue.send(job.message().to_body())
        metrics.add_metric(TOPOLOGY.metrics.requeued, "Count", 1)
        log_transition(job, "requeue")
        return Action.REQUEUED

    def _abandon(self, stuck: StuckJob) -> Action:
        # SQS itself moved the message to the DLQ: no copy is to be sent.
        job = self._store.apply(
            ABANDON_ATTEMPT,
            stuck.job_id,
            error={"type": CUT_OFF.type, "message": CUT_OFF.message},
            dead_letter_sent=True,
            lease=stuck.since,
            now=self._now_ms(),
        )
        metrics.add_metric(TOPOLOGY.metrics.failed, "Count", 1)
        metrics.add_metric(TOPOLOGY.metrics.dead_lettered, "Count", 1)
        log_transition(job, "abandon")
        self._followups.after_end(job)
        return Action.ABANDONED

    def _cancel(self, stuck: StuckJob) -> Action:
        """A job asked to cancel whose runner died: it ends cancelled, not re-run."""
        job = self._store.apply(CANCEL_STOPPED, stuck.job_id, lease=stuck.since, now=self._now_ms())
        metrics.add_metric(TOPOLOGY.metrics.cancelled, "Count", 1)
        log_transition(job, "cancel")
        self._followups.after_end(job)
        return Action.CANCELLED


def _asked_to_cancel(job: Job | None, stuck: StuckJob) -> bool:
    return (
        job is not None
        and job.status is JobStatus.RUNNING
        and job.cancel_requested
        and job.lease_expires_at == stuck.since
    )
