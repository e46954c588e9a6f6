"""The job state machine, as data: every write to a job is one of these transitions.

A transition names the statuses it may leave from, the status it goes to (or none: it changes
other fields only), the further condition it needs, and what it writes — in the small language
of `jobpipe.domain.expressions`, over the job's stored record (`jobpipe.domain.record`). Both job
stores are driven by this table: the DynamoDB store compiles each entry into one conditional
UpdateItem, the in-memory store evaluates it in Python. So an illegal move is refused by the
store itself, never half-applied, and adding a transition is one entry here plus its tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from jobpipe.domain.expressions import (
    Add,
    AddToSet,
    AnyOf,
    Arg,
    AtMost,
    Below,
    Change,
    Condition,
    Exists,
    Field,
    Is,
    IsIn,
    Missing,
    Remove,
    Set,
    SetIfGiven,
    Sum,
    args_of,
)
from jobpipe.domain.expressions import All as AllOf


class JobStatus(StrEnum):
    # A workflow step its predecessors have not released yet: never queued, not reaped.
    WAITING = "waiting"
    # Waiting for its time (`run_at`): its message is delayed on the queue or held by a one-time
    # schedule; it goes straight to `running` when the message arrives.
    SCHEDULED = "scheduled"
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
# Statuses a cancel ends at once: the job is not running, so nothing has to stop.
CANCELLABLE_AT_ONCE = frozenset(
    {JobStatus.WAITING, JobStatus.SCHEDULED, JobStatus.PENDING, JobStatus.RETRYING}
)


class WorkflowStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self is not WorkflowStatus.RUNNING


Status = JobStatus | WorkflowStatus
# Every move into a terminal status marks the job `outbox_due`: what must follow its end (its
# workflow's next step) is still to do. The follow-up clears it; the reaper finds a job whose
# follow-up was cut off through the outbox index (only jobs that have follow-ups carry that
# index's key, so for any other job the mark costs no index write).
OUTBOX_DUE = "outbox_due"


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset[Status]
    # None: the status stays (the write changes other fields only).
    target: Status | None
    guard: Condition | None = None
    changes: tuple[Change, ...] = ()
    # A move the job's history shows: it stamps `updated_at` (a terminal job's completion time)
    # and moves the retention (`expires_at`, set by the store) to after it.
    stamps: bool = True

    @property
    def condition(self) -> Condition:
        on_status = IsIn("status", tuple(sorted(self.sources)))
        return on_status if self.guard is None else AllOf(on_status, self.guard)

    @property
    def writes(self) -> tuple[Change, ...]:
        status = (Set("status", self.target.value),) if self.target is not None else ()
        ends = (Set(OUTBOX_DUE, Arg("now")),) if _ends_a_job(self.target) else ()
        stamp = (Set("updated_at", Arg("now")), Set("expires_at", Arg("expires_at")))
        return (*status, *self.changes, *ends, *(stamp if self.stamps else ()))

    @property
    def args(self) -> frozenset[str]:
        """The values a caller supplies (the store supplies `expires_at`)."""
        return args_of(self.condition, *self.writes) - {"expires_at"}


def _ends_a_job(target: Status | None) -> bool:
    # A workflow's statuses compare equal to a job's of the same name: check the kind first.
    return isinstance(target, JobStatus) and target in TERMINAL


def _t(
    name: str,
    sources: set[JobStatus] | set[WorkflowStatus] | frozenset[JobStatus],
    target: Status | None,
    guard: Condition | None = None,
    changes: tuple[Change, ...] = (),
    *,
    stamps: bool = True,
) -> Transition:
    return Transition(name, frozenset(sources), target, guard, changes, stamps)


W, S, P, RUN, RET, OK, KO, CX = (
    JobStatus.WAITING,
    JobStatus.SCHEDULED,
    JobStatus.PENDING,
    JobStatus.RUNNING,
    JobStatus.RETRYING,
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)
# The running attempt's outcome is written only by that attempt (fencing a stale worker).
THIS_ATTEMPT = Is("attempts", Arg("attempt"))
# Once a cancel is asked for, an attempt that fails ends the job `cancelled` instead.
NOT_CANCELLING = AllOf(THIS_ATTEMPT, Missing("cancel_requested"))
OUT_OF_RUNNING = (Remove("lease_expires_at"), SetIfGiven("progress", Arg("progress")))

# A worker starts an attempt and counts it: a pending job; a retrying one once its retry is due
# (SQS may show the message early); a scheduled one once its time has come (a scheduled job's
# `pending_since` is its `run_at`, until the reaper claims it); or a running one whose lease
# (its worker's deadline) has passed — its runner died. Never a job whose payload differs, whose
# attempts are used up, or that was asked to cancel. The START that picks a job up takes it out
# of the reaper's pending index in the same write.
START = _t(
    "start",
    {S, P, RET, RUN},
    RUN,
    AllOf(
        Is("payload_hash", Arg("payload_hash")),
        Below("attempts", Field("max_attempts")),
        Missing("cancel_requested"),
        AnyOf(
            Is("status", P.value),
            AllOf(IsIn("status", (RET.value, S.value)), AtMost("pending_since", Arg("due"))),
            AllOf(Is("status", RUN.value), Below("lease_expires_at", Arg("now"))),
        ),
    ),
    (
        Add("attempts", 1),
        Set("started_at", Arg("now")),
        Set("lease_expires_at", Arg("lease")),
        Remove("pending_since"),
    ),
)
SUCCEED = _t("succeed", {RUN}, OK, THIS_ATTEMPT, (Set("result", Arg("result")), *OUT_OF_RUNNING))
# A retrying job waits like a pending one, from when its retry is due: the reaper finds it in
# the same index if its message never comes back.
RETRY = _t(
    "retry",
    {RUN},
    RET,
    NOT_CANCELLING,
    (
        Set("errors", Arg("errors")),
        Set("pending_since", Arg("next_attempt_at")),
        *OUT_OF_RUNNING,
    ),
)
FAIL = _t(
    "fail",
    {RUN},
    KO,
    NOT_CANCELLING,
    (Set("errors", Arg("errors")), Set("dead_lettered", Arg("dead_lettered")), *OUT_OF_RUNNING),
)
# The running attempt stopped because a cancel was asked for.
CANCEL_RUN = _t("cancel_run", {RUN}, CX, THIS_ATTEMPT, OUT_OF_RUNNING)
# A job that can never run (its message is poison, SQS dead-lettered it, its last attempt was cut
# off) is failed from wherever it stands, so that no job waits forever. With the `_ATTEMPT`
# variant, only the running attempt holding the lease that was seen.
_ABANDONED = (
    # Why it can never run (no attempt's error says it).
    Set("error", Arg("error")),
    Set("dead_lettered", True),
    Set("dlq_sent", Arg("dead_letter_sent")),
    Remove("lease_expires_at"),
    Remove("pending_since"),
)
ABANDON = _t("abandon", {S, P, RUN, RET}, KO, None, _ABANDONED)
ABANDON_ATTEMPT = _t(
    "abandon",
    {RUN},
    KO,
    AllOf(Is("lease_expires_at", Arg("lease")), Missing("cancel_requested")),
    _ABANDONED,
)
# An operator replays a dead-lettered job: a fresh set of attempts, the earlier ones on record.
REPLAY = _t(
    "replay",
    {KO},
    P,
    None,
    (
        Set("prior_attempts", Sum(Field("prior_attempts", 0), Field("attempts", 0))),
        Set("attempts", 0),
        Add("replays", 1),
        Set("dead_lettered", False),
        Set("pending_since", Arg("now")),
        Remove("started_at"),
        Remove("lease_expires_at"),
        Remove("dlq_sent"),
        Remove("error"),
        # What followed its failure has been done, or never will be: a replayed job runs again
        # on its own.
        Remove(OUTBOX_DUE),
    ),
)
# A cancel: a job not running ends at once; a running one is asked to stop, and ends when its
# code stops (CANCEL_RUN) or, if its worker died, when its lease is found expired.
CANCEL = _t(
    "cancel",
    set(CANCELLABLE_AT_ONCE),
    CX,
    None,
    (Set("cancel_requested", True), Remove("pending_since")),
)
REQUEST_CANCEL = _t(
    "request_cancel", {RUN}, None, None, (Set("cancel_requested", True),), stamps=False
)
CANCEL_STOPPED = _t(
    "cancel_run",
    {RUN},
    CX,
    AllOf(Exists("cancel_requested"), Is("lease_expires_at", Arg("lease"))),
    (Remove("lease_expires_at"),),
)
# A running attempt reports progress; refused once a cancel is asked for, which is how the job
# learns of it.
PROGRESS = _t(
    "progress",
    {RUN},
    None,
    NOT_CANCELLING,
    (Set("progress", Arg("progress")),),
    stamps=False,
)
# The reaper claims a stuck job before it re-sends its message: it moves the job's marker (its
# expired lease, or when it started waiting) to now, only if it is still as the index showed it.
CLAIM_RUNNING = _t(
    "claim",
    {RUN},
    None,
    AllOf(
        Is("lease_expires_at", Arg("seen")),
        Below("attempts", Field("max_attempts")),
        Missing("cancel_requested"),
    ),
    (Set("lease_expires_at", Arg("now")),),
    stamps=False,
)
# A scheduled job overdue by the grace period is claimed like a pending one: its message (the
# schedule's, or the delayed one) may be gone.
CLAIM_WAITING = _t(
    "claim",
    {S, P, RET},
    None,
    Is("pending_since", Arg("seen")),
    (Set("pending_since", Arg("now")),),
    stamps=False,
)
# --- workflow steps --------------------------------------------------------------------------
# A predecessor of a waiting step ended as the step needs (succeeded, or in any way where the
# step takes outcomes): it is counted once, however often its end is reported (a set of
# positions, not a counter).
ARRIVE = _t("arrive", {W}, None, None, (AddToSet("arrived", Arg("position")),), stamps=False)
# Every predecessor has arrived: the step may run. Only one release wins, and the reaper's
# pending index holds the released step until it starts (if its message is lost, it is re-sent).
RELEASE = _t("release", {W}, P, None, (Set("pending_since", Arg("now")),))
# A predecessor failed (or was cancelled) and the step does not take outcomes: it never runs.
# `cause` names the step that failed first, and is passed on down the tree.
SKIP = _t("skip", {W}, CX, None, (Set("cause", Arg("cause")),))
# What followed the job's end has been done (only for the end it was marked at).
FOLLOWED_UP = _t(
    "followed_up",
    set(TERMINAL),
    None,
    Is(OUTBOX_DUE, Arg("due")),
    (Remove(OUTBOX_DUE),),
    stamps=False,
)

# The DLQ holds the message of this dead-lettering of the job (the one of its n-th replay).
MARK_DEAD_LETTER_SENT = _t(
    "mark_dead_letter_sent",
    {KO},
    None,
    AllOf(Is("dead_lettered", True), Is("replays", Arg("replays"))),
    (Set("dlq_sent", True),),
    stamps=False,
)

TRANSITIONS: tuple[Transition, ...] = (
    START,
    SUCCEED,
    RETRY,
    FAIL,
    CANCEL_RUN,
    ABANDON,
    ABANDON_ATTEMPT,
    REPLAY,
    CANCEL,
    REQUEST_CANCEL,
    CANCEL_STOPPED,
    PROGRESS,
    CLAIM_RUNNING,
    CLAIM_WAITING,
    MARK_DEAD_LETTER_SENT,
    ARRIVE,
    RELEASE,
    SKIP,
    FOLLOWED_UP,
)

# --- workflows -------------------------------------------------------------------------------
# A workflow's own record moves once, from running to how it ended: the first member that
# decides it wins, and a member replayed later changes nothing.
WR, WOK, WKO, WCX = (
    WorkflowStatus.RUNNING,
    WorkflowStatus.SUCCEEDED,
    WorkflowStatus.FAILED,
    WorkflowStatus.CANCELLED,
)
# One of the steps whose results make the workflow's result has ended.
WORKFLOW_ARRIVE = _t(
    "arrive", {WR}, None, None, (AddToSet("arrived", Arg("position")),), stamps=False
)
WORKFLOW_SUCCEED = _t("succeed", {WR}, WOK)
WORKFLOW_FAIL = _t("fail", {WR}, WKO, None, (Set("error", Arg("error")),))
WORKFLOW_CANCEL = _t("cancel", {WR}, WCX, None, (SetIfGiven("error", Arg("error")),))
# Every member exists and the first steps are queued: nothing is left for the reaper to finish.
WORKFLOW_CREATED = _t(
    "created",
    {WR, WOK, WKO, WCX},
    None,
    Exists(OUTBOX_DUE),
    (Remove(OUTBOX_DUE), Remove("spec")),
    stamps=False,
)

WORKFLOW_TRANSITIONS: tuple[Transition, ...] = (
    WORKFLOW_ARRIVE,
    WORKFLOW_SUCCEED,
    WORKFLOW_FAIL,
    WORKFLOW_CANCEL,
    WORKFLOW_CREATED,
)
