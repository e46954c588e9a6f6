"""What became of a queue record, as one typed value: the worker's run (or refusal to run)
produces it, and `jobpipe.worker.service.Worker.settle` applies it to the store and the queue
together — the one place that decides how a job's attempt ends.

A run's own outcome (`RunOutcome`) is what Powertools idempotency stores and hands back for a
duplicate delivery; it is a pydantic model so that it round-trips through Powertools' output
serializer as itself, never as a loose dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as ModelField

from jobpipe.domain.job import ErrorInfo, Job


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Failure(_Frozen):
    type: str
    message: str

    def info(self) -> ErrorInfo:
        return ErrorInfo(self.type, self.message)


class Succeeded(_Frozen):
    """The job function returned: its result is stored."""

    kind: Literal["succeeded"] = "succeeded"
    result: Any = None


class Retry(_Frozen):
    """The attempt failed and another is due after `delay_seconds`."""

    kind: Literal["retry"] = "retry"
    error: Failure
    delay_seconds: float


class Failed(_Frozen):
    """The attempt failed for good: permanently, or with no attempts left (`dead_lettered`)."""

    kind: Literal["failed"] = "failed"
    error: Failure
    dead_lettered: bool = False


class Stopped(_Frozen):
    """The job stopped because a cancel was asked for (it raised `JobCancelled`)."""

    kind: Literal["stopped"] = "stopped"


class Ended(_Frozen):
    """An earlier delivery's run ended the job: this delivery is a duplicate (the job as it
    stands is known to the worker that met it)."""

    kind: Literal["ended"] = "ended"


RunEnd = Annotated[Succeeded | Retry | Failed | Stopped | Ended, ModelField(discriminator="kind")]


class RunOutcome(_Frozen):
    """What an idempotent run returns (and Powertools stores as its response)."""

    end: RunEnd
    duplicate: bool = False


# --- outcomes without a run ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """This record's run, started as `running` (the job as its START returned it)."""

    running: Job
    end: Succeeded | Retry | Failed | Stopped


@dataclass(frozen=True)
class Duplicate:
    """The job had ended before this record arrived."""

    job: Job


@dataclass(frozen=True)
class HandBack:
    """Leave the record for later, `delay_seconds` from now; the job is not started."""

    delay_seconds: float
    why: str


@dataclass(frozen=True)
class Poison:
    """A message no worker can process: to the DLQ; its job, if any, fails."""

    error: ErrorInfo


@dataclass(frozen=True)
class Abandon:
    """The job can never run (its attempts are used up): it fails, dead-lettered. With
    `lease`, only the attempt holding that lease (its runner died)."""

    error: ErrorInfo
    lease: int | None = None


@dataclass(frozen=True)
class StopAbandoned:
    """A running job asked to cancel whose runner died (its lease, `lease`, has passed)."""

    lease: int


Outcome = Ran | Duplicate | HandBack | Poison | Abandon | StopAbandoned
