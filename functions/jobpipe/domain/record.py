"""A job as both stores keep it: a flat record of plain values (the DynamoDB item, before its
values are typed). The transitions of `jobpipe.domain.states` are written over these names.

Nothing is stored twice: a job's `completed_at` is the `updated_at` of its terminal transition,
and a retrying job's `next_attempt_at` is its `pending_since` (the time it is due to be started,
which also places it in the reaper's pending index). A scheduled job starts out in that index at
its `run_at`; `run_at` itself is kept apart, since the reaper moves `pending_since` when it
claims an overdue job. Params and results are stored as compact
UTF-8 JSON, the size DynamoDB counts.
"""

from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING, Any

from jobpipe.domain.expressions import Record
from jobpipe.domain.job import (
    MAX_ERRORS_KEPT,
    AttemptError,
    Cause,
    ErrorInfo,
    Job,
    Progress,
    Step,
    Waiter,
    stored_json,
)
from jobpipe.domain.states import JobStatus, WorkflowStatus
from jobpipe.topology import TOPOLOGY

if TYPE_CHECKING:
    from jobpipe.domain.workflow import Workflow

KEY = TOPOLOGY.table.partition_key
PENDING_SINCE = TOPOLOGY.table.pending_index_sort_key
LEASE = TOPOLOGY.table.lease_index_sort_key
REAP_KEY = TOPOLOGY.table.stuck_index_partition_key
TTL = TOPOLOGY.table.ttl_attribute
OUTBOX_KEY = TOPOLOGY.table.outbox_index_partition_key
OUTBOX_DUE = TOPOLOGY.table.outbox_index_sort_key
OWNER_KEY = TOPOLOGY.table.owner_index_partition_key
TIME_KEY = TOPOLOGY.table.time_index_partition_key


def list_shard(job_id: str, shards: int = TOPOLOGY.table.list_index_shards) -> int:
    """The shard of the listing indexes a job is written to, taken from its id."""
    return zlib.crc32(job_id.encode()) % shards


def owner_key(owner: str, shard: int) -> str:
    """A partition of the owner index: one of the owner's `list_index_shards`."""
    return f"{owner}#{shard}"


def time_key(shard: int) -> str:
    """A partition of the every-owner (time) index."""
    return f"jobs#{shard}"


def reap_key(job_type: str, job_id: str, shards: int = TOPOLOGY.table.stuck_index_shards) -> str:
    """The job's partition in the reaper's indexes: its type and a shard taken from its id, so
    that one busy type does not make one hot partition."""
    return f"{job_type}#{zlib.crc32(job_id.encode()) % shards}"


def outbox_key(item_key: str, shards: int = TOPOLOGY.table.outbox_shards) -> str:
    """The item's partition in the outbox index: one of a few shards, taken from its key."""
    return f"outbox#{zlib.crc32(item_key.encode()) % shards}"


def to_record(job: Job) -> Record:
    """The job's record: every field it has, and the sparse index attributes its status puts
    it under."""
    record: Record = {
        KEY: job.job_id,
        "type": job.type,
        "params": stored_json(job.params),
        "owner": job.owner,
        "status": job.status.value,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        TTL: job.expires_at,
        "max_attempts": job.max_attempts,
        "attempts": job.attempts,
        "payload_hash": job.payload_hash,
        "dead_lettered": job.dead_lettered,
        "replays": job.replays,
        REAP_KEY: reap_key(job.type, job.job_id),
        # The listing indexes: written with the job, never changed.
        OWNER_KEY: owner_key(job.owner, list_shard(job.job_id)),
        TIME_KEY: time_key(list_shard(job.job_id)),
    }
    if job.status is JobStatus.PENDING:
        # In the reaper's pending index until a START takes it out.
        record[PENDING_SINCE] = job.updated_at
    elif job.status is JobStatus.SCHEDULED and job.run_at is not None:
        # Found by the reaper only once it is overdue.
        record[PENDING_SINCE] = job.run_at
    elif job.status is JobStatus.RETRYING and job.next_attempt_at is not None:
        record[PENDING_SINCE] = job.next_attempt_at
    optional: dict[str, Any] = {
        "started_at": job.started_at,
        LEASE: job.lease_expires_at,
        "result": stored_json(job.result) if job.status is JobStatus.SUCCEEDED else None,
        "errors": [_error_entry(e) for e in job.errors] or None,
        "error": {"type": job.failure.type, "message": job.failure.message}
        if job.failure
        else None,
        "prior_attempts": job.prior_attempts or None,
        "dlq_sent": True if job.dead_letter_sent else None,
        "cancel_requested": True if job.cancel_requested else None,
        "progress": progress_entry(job.progress) if job.progress is not None else None,
        "arrived": set(job.arrived) or None,
        "cause": job.cause.as_dict() if job.cause is not None else None,
        OUTBOX_DUE: job.outbox_due,
        "run_at": job.run_at,
        "schedule": job.schedule,
    }
    if job.step is not None:
        optional.update(_step_entries(job.step))
        # A member has follow-ups: its end releases what waits for it.
        optional[OUTBOX_KEY] = outbox_key(job.job_id)
    record.update({name: value for name, value in optional.items() if value is not None})
    return record


def _step_entries(step: Step) -> dict[str, Any]:
    return {
        "workflow_id": step.workflow_id,
        "path": step.path,
        "inputs": stored_json(step.inputs) if step.inputs is not None else None,
        "takes_outcomes": True if step.takes_outcomes else None,
        "waiters": stored_json(
            [
                [w.job_id or "", w.position, int(w.takes_outcomes), w.wait_count]
                for w in step.waiters
            ]
        )
        if step.waiters
        else None,
    }


def _step(record: Record) -> Step | None:
    workflow_id = record.get("workflow_id")
    if workflow_id is None:
        return None
    inputs = record.get("inputs")
    waiters = json.loads(record["waiters"]) if "waiters" in record else []
    return Step(
        workflow_id=workflow_id,
        path=record.get("path", ""),
        inputs=json.loads(inputs) if inputs is not None else None,
        takes_outcomes=bool(record.get("takes_outcomes", False)),
        waiters=tuple(
            Waiter(job_id or None, int(position), bool(outcomes), int(count))
            for job_id, position, outcomes, count in waiters
        ),
    )


def from_record(record: Record) -> Job:
    status = JobStatus(record["status"])
    updated_at = int(record["updated_at"])
    result = record.get("result")
    progress = record.get("progress")
    failure = record.get("error")
    return Job(
        job_id=record[KEY],
        type=record["type"],
        params=json.loads(record["params"]),
        owner=record["owner"],
        status=status,
        created_at=int(record["created_at"]),
        updated_at=updated_at,
        expires_at=int(record[TTL]),
        max_attempts=int(record["max_attempts"]),
        attempts=int(record["attempts"]),
        payload_hash=record.get("payload_hash", ""),
        started_at=_int(record.get("started_at")),
        completed_at=updated_at if status.is_terminal else None,
        next_attempt_at=_int(record.get(PENDING_SINCE)) if status is JobStatus.RETRYING else None,
        lease_expires_at=_int(record.get(LEASE)),
        result=json.loads(result) if result is not None else None,
        errors=tuple(_attempt_error(e) for e in record.get("errors", []))[-MAX_ERRORS_KEPT:],
        failure=ErrorInfo(failure["type"], failure["message"]) if failure else None,
        dead_lettered=bool(record.get("dead_lettered", False)),
        dead_letter_sent=bool(record.get("dlq_sent", False)),
        replays=int(record.get("replays", 0)),
        prior_attempts=int(record.get("prior_attempts", 0)),
        cancel_requested=bool(record.get("cancel_requested", False)),
        progress=_progress(progress) if progress is not None else None,
        step=_step(record),
        arrived=frozenset(int(p) for p in record.get("arrived", ())),
        cause=Cause(**record["cause"]) if "cause" in record else None,
        outbox_due=_int(record.get(OUTBOX_DUE)),
        run_at=_int(record.get("run_at")),
        schedule=record.get("schedule"),
    )


# --- workflows -----------------------------------------------------------------------------------

# A workflow's item shares the jobs table: its key is prefixed, so no job id can name it.
WORKFLOW_PREFIX = "wf#"


def workflow_key(workflow_id: str) -> str:
    return WORKFLOW_PREFIX + workflow_id


def workflow_to_record(workflow: Workflow) -> Record:
    record: Record = {
        KEY: workflow_key(workflow.workflow_id),
        # Not `owner`: a workflow is not one of the owner's jobs.
        "workflow_owner": workflow.owner,
        "status": workflow.status.value,
        "created_at": workflow.created_at,
        "updated_at": workflow.updated_at,
        TTL: workflow.expires_at,
        "shape": stored_json(workflow.shape),
        "members": workflow.members,
        "result_refs": stored_json(workflow.result),
    }
    optional: dict[str, Any] = {
        "takes_outcomes": True if workflow.result_takes_outcomes else None,
        "arrived": set(workflow.arrived) or None,
        "error": workflow.error.as_dict() if workflow.error is not None else None,
        "spec": stored_json(workflow.spec) if workflow.spec is not None else None,
        OUTBOX_DUE: workflow.outbox_due,
        # Its creation is a follow-up until it is finished.
        OUTBOX_KEY: outbox_key(workflow_key(workflow.workflow_id)),
    }
    record.update({name: value for name, value in optional.items() if value is not None})
    return record


def workflow_from_record(record: Record) -> Workflow:
    # Imported here: only workflow routes and fan-in read workflows.
    from jobpipe.domain.workflow import Workflow

    spec = record.get("spec")
    error = record.get("error")
    return Workflow(
        workflow_id=str(record[KEY]).removeprefix(WORKFLOW_PREFIX),
        owner=record["workflow_owner"],
        status=WorkflowStatus(record["status"]),
        created_at=int(record["created_at"]),
        updated_at=int(record["updated_at"]),
        expires_at=int(record[TTL]),
        shape=json.loads(record["shape"]),
        members=int(record["members"]),
        result=json.loads(record["result_refs"]),
        result_takes_outcomes=bool(record.get("takes_outcomes", False)),
        arrived=frozenset(int(p) for p in record.get("arrived", ())),
        error=Cause(**error) if error else None,
        spec=json.loads(spec) if spec is not None else None,
        outbox_due=_int(record.get(OUTBOX_DUE)),
    )


# What a listing reads of a job's item: all but its params and result, which may be large.
LISTED_FIELDS = (
    KEY,
    "type",
    "owner",
    "status",
    "created_at",
    "updated_at",
    TTL,
    "max_attempts",
    "attempts",
    "payload_hash",
    "started_at",
    PENDING_SINCE,
    LEASE,
    "errors",
    "error",
    "dead_lettered",
    "dlq_sent",
    "replays",
    "prior_attempts",
    "cancel_requested",
    "progress",
)


def from_listed_record(record: Record) -> Job:
    """A job from the fields a listing reads (`LISTED_FIELDS`): no params, no result."""
    listed = {name: value for name, value in record.items() if name in LISTED_FIELDS}
    return from_record({**listed, "params": "{}"})


def error_entries(errors: tuple[AttemptError, ...]) -> list[dict[str, Any]]:
    return [_error_entry(e) for e in errors]


def _error_entry(error: AttemptError) -> dict[str, Any]:
    return {"attempt": error.attempt, "type": error.type, "message": error.message, "at": error.at}


def _attempt_error(entry: dict[str, Any]) -> AttemptError:
    return AttemptError(
        int(entry["attempt"]), str(entry["type"]), str(entry["message"]), int(entry["at"])
    )


def progress_entry(progress: Progress) -> dict[str, Any]:
    entry: dict[str, Any] = {"current": progress.current, "at": progress.at}
    if progress.total is not None:
        entry["total"] = progress.total
    if progress.message is not None:
        entry["message"] = progress.message
    return entry


def _progress(entry: dict[str, Any]) -> Progress:
    total = entry.get("total")
    return Progress(
        current=_number(entry["current"]),
        total=_number(total) if total is not None else None,
        message=entry.get("message"),
        at=int(entry.get("at", 0)),
    )


def _number(value: Any) -> float:
    number = float(value)
    return int(number) if number.is_integer() else number


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None
