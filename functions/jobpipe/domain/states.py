"""The job state machine, as data: which statuses a transition may leave from, and where it goes.

Every write to a job goes through one of these transitions, and the job store turns each into one
conditional write, so an illegal move is refused by DynamoDB itself, never half-applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED})


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset[JobStatus]
    target: JobStatus


def _t(name: str, sources: set[JobStatus], target: JobStatus) -> Transition:
    return Transition(name, frozenset(sources), target)


P, RUN, RET, OK, KO = (
    JobStatus.PENDING,
    JobStatus.RUNNING,
    JobStatus.RETRYING,
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
)

# A worker starts an attempt (counts it). A `running` job whose lease has expired (its Lambda
# timed out) may be started again: the store adds that case to the condition.
START = _t("start", {P, RET}, RUN)
SUCCEED = _t("succeed", {RUN}, OK)
RETRY = _t("retry", {RUN}, RET)
FAIL = _t("fail", {RUN}, KO)
# A job that can never run (its message is poison, or SQS dead-lettered it) is failed from
# wherever it stands, so that no job waits forever.
ABANDON = _t("abandon", {P, RUN, RET}, KO)
# An operator replays a dead-lettered job: a fresh set of attempts.
REPLAY = _t("replay", {KO}, P)

TRANSITIONS: tuple[Transition, ...] = (START, SUCCEED, RETRY, FAIL, ABANDON, REPLAY)
