"""Every body the API answers with, one model each: the routes return them, the OpenAPI document
describes them, and the Python client's `JobInfo` is tested against `JobBody`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobpipe.domain.job import Job
from jobpipe.domain.states import JobStatus


class ErrorDetail(BaseModel):
    type: str
    message: str
    fields: list[dict[str, str]] | None = None
    known_types: list[str] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class SubmittedBody(BaseModel):
    job_id: str
    type: str
    status: str
    created_at: str
    poll_url: str


class BatchItemBody(BaseModel):
    """One job of a batch: the status it would have had alone, and its job or its error."""

    status: int = Field(description="202, or the error status this job would get alone.")
    job: SubmittedBody | None = Field(default=None, description="When accepted (202).")
    error: ErrorDetail | None = Field(default=None, description="When refused: as alone.")


class BatchSubmittedBody(BaseModel):
    """`POST /jobs/batch`: one answer per job, in the order sent."""

    results: list[BatchItemBody]


class FailureBody(BaseModel):
    type: str
    message: str


class AttemptErrorBody(BaseModel):
    attempt: int
    type: str
    message: str
    at: str


class ProgressBody(BaseModel):
    current: float
    total: float | None = None
    message: str | None = None
    at: str


class JobBody(BaseModel):
    """A job, as `GET /jobs/{id}` and the job's other routes answer it. `result` is present
    only when the job succeeded, `error` only when it failed."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    type: str
    status: JobStatus
    attempts: int
    max_attempts: int
    created_at: str
    started_at: str | None
    completed_at: str | None
    next_attempt_at: str | None
    is_terminal: bool
    dead_lettered: bool
    replays: int
    cancel_requested: bool = Field(description="A cancel was asked for (it may still be running).")
    progress: ProgressBody | None = Field(description="What the job last reported.")
    errors: list[AttemptErrorBody] = Field(
        description="One entry per failed attempt, oldest first (the last 10)."
    )
    result: Any = Field(default=None, description="Present only when the job succeeded.")
    error: FailureBody | None = Field(
        default=None, description="Present only when the job failed: why."
    )


class JobListBody(BaseModel):
    """`GET /jobs`: a page of the caller's jobs, newest first. Listed jobs carry no `result`
    (`GET /jobs/{id}` has it). `next_cursor` is absent on the last page; a page may hold fewer
    jobs than `limit` (even none) and still have one: a filter matched few of the jobs looked
    at."""

    jobs: list[JobBody]
    next_cursor: str | None = None


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def job_body(job: Job, *, with_result: bool = True) -> dict[str, Any]:
    """The job's body, as JSON values; `result` and `error` only where they apply (`result`
    not at all in a listing, which does not read it)."""
    progress = job.progress
    body = JobBody(
        job_id=job.job_id,
        type=job.type,
        status=job.status,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        created_at=iso(job.created_at) or "",
        started_at=iso(job.started_at),
        completed_at=iso(job.completed_at),
        next_attempt_at=iso(job.next_attempt_at) if job.status is JobStatus.RETRYING else None,
        is_terminal=job.is_terminal,
        dead_lettered=job.dead_lettered,
        replays=job.replays,
        cancel_requested=job.cancel_requested,
        progress=ProgressBody(
            current=progress.current,
            total=progress.total,
            message=progress.message,
            at=iso(progress.at) or "",
        )
        if progress is not None
        else None,
        errors=[
            AttemptErrorBody(attempt=e.attempt, type=e.type, message=e.message, at=iso(e.at) or "")
            for e in job.errors
        ],
    )
    if with_result and job.status is JobStatus.SUCCEEDED:
        body.result = job.result
    if job.status is JobStatus.FAILED and job.error is not None:
        body.error = FailureBody(type=job.error.type, message=job.error.message)
    dumped: dict[str, Any] = body.model_dump(mode="json", exclude_unset=True)
    return dumped
