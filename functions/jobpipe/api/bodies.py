"""Every body the API answers with, one model each: the routes return them, the OpenAPI document
describes them, and the Python client's `JobInfo` is tested against `JobBody`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobpipe.domain.job import Job
from jobpipe.domain.states import JobStatus, WorkflowStatus

if TYPE_CHECKING:
    from jobpipe.domain.workflow import NodeView
    from jobpipe.workflow.service import WorkflowState


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
    run_at: str | None = Field(
        default=None, description="When a delayed job (status `scheduled`) is due to run."
    )


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
    run_at: str | None = Field(
        default=None,
        description="When a delayed job was due to run (it is `scheduled` until then).",
    )
    result: Any = Field(default=None, description="Present only when the job succeeded.")
    error: FailureBody | None = Field(
        default=None, description="Present only when the job failed: why."
    )
    workflow_id: str | None = Field(
        default=None, description="Present only when the job is a workflow's step."
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
    if job.run_at is not None:
        body.run_at = iso(job.run_at)
    if with_result and job.status is JobStatus.SUCCEEDED:
        body.result = job.result
    if job.status is JobStatus.FAILED and job.error is not None:
        body.error = FailureBody(type=job.error.type, message=job.error.message)
    if job.workflow_id is not None:
        body.workflow_id = job.workflow_id
    dumped: dict[str, Any] = body.model_dump(mode="json", exclude_unset=True)
    return dumped


class WorkflowNodeBody(BaseModel):
    """A node of a workflow's tree: a step (its job) or a chain, group or chord of nodes."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["step", "chain", "group", "chord"]
    path: str = Field(description="Where it is in the submitted tree: `chain[1]`, `chord.body`.")
    status: str = Field(
        description="A step's job status; for a chain, group or chord, derived from its nodes."
    )
    job_id: str | None = Field(default=None, description="A step's job: `GET /jobs/{id}`.")
    type: str | None = Field(default=None, description="A step's job type.")
    nodes: list[WorkflowNodeBody] | None = Field(
        default=None, description="A chain's or group's nodes, or a chord's header."
    )
    body: WorkflowNodeBody | None = Field(default=None, description="A chord's body.")
    continue_on_failure: bool | None = Field(
        default=None, description="A group or chord that goes on whatever its members' outcomes."
    )


class WorkflowFailureBody(BaseModel):
    type: str
    message: str
    job_id: str = Field(description="The member that failed first (or was cancelled).")
    path: str = Field(description="Its place in the submitted tree.")


class WorkflowBody(BaseModel):
    """A workflow, as `POST /workflows` and its other routes answer it."""

    model_config = ConfigDict(extra="forbid")

    workflow_id: str
    status: WorkflowStatus
    members: int = Field(description="How many steps (jobs) it has.")
    created_at: str
    completed_at: str | None
    is_terminal: bool
    tree: WorkflowNodeBody
    result: Any = Field(
        default=None,
        description="Present only when it succeeded: its last node's result (a group's: a "
        "list, in order).",
    )
    result_omitted: str | None = Field(
        default=None, description="Present when it succeeded but the result is too large to show."
    )
    error: WorkflowFailureBody | None = Field(
        default=None, description="Present only when it failed or was cancelled: the cause."
    )
    poll_url: str | None = Field(
        default=None, description="In the answer to `POST /workflows`: where to poll it."
    )


def node_body(node: NodeView) -> WorkflowNodeBody:
    body = WorkflowNodeBody(kind=node.kind, path=node.path, status=node.status)
    if node.kind == "step":
        job = node.job
        if job is not None:
            body.job_id = job.job_id
            body.type = job.type
        return body
    body.nodes = [node_body(child) for child in node.children]
    if node.body is not None:
        body.body = node_body(node.body)
    if node.continue_on_failure:
        body.continue_on_failure = True
    return body


def workflow_body(state: WorkflowState) -> dict[str, Any]:
    """The workflow's body, as JSON values; `result` and `error` only where they apply."""
    workflow = state.workflow
    body = WorkflowBody(
        workflow_id=workflow.workflow_id,
        status=workflow.status,
        members=workflow.members,
        created_at=iso(workflow.created_at) or "",
        completed_at=iso(workflow.completed_at),
        is_terminal=workflow.is_terminal,
        tree=node_body(state.tree()),
    )
    if workflow.status is WorkflowStatus.SUCCEEDED:
        result, omitted = state.result()
        if omitted is None:
            body.result = result
        else:
            body.result_omitted = omitted
    if workflow.error is not None and workflow.status is not WorkflowStatus.SUCCEEDED:
        body.error = WorkflowFailureBody(**workflow.error.as_dict())
    dumped: dict[str, Any] = body.model_dump(mode="json", exclude_unset=True)
    return dumped
