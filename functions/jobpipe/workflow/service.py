"""Workflows, as their owner submits, reads and cancels them.

Submitting writes the workflow's record first, then every member as a job (the first steps
`pending`, the rest `waiting`), then queues the first steps, then clears the record's outbox
mark. The record keeps the submitted tree until then, so the creation can always be finished:
by a retry of the request with the same Idempotency-Key, or by the reaper, which finds the mark.
Every step of it is idempotent — member ids come from the workflow's id, members are written only
if they do not exist, and a second message for a job is harmless — so finishing it twice is too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jobpipe.domain.factory import new_job
from jobpipe.domain.job import Job, check_job_id, fingerprint, new_job_id, stored_size
from jobpipe.domain.registry import Registry
from jobpipe.domain.states import (
    CANCEL,
    CANCELLABLE_AT_ONCE,
    REQUEST_CANCEL,
    WORKFLOW_CANCEL,
    WORKFLOW_CREATED,
    JobStatus,
    WorkflowStatus,
)
from jobpipe.domain.workflow import (
    INPUT_KEY,
    NodeView,
    Plan,
    Workflow,
    compile_tree,
    map_refs,
    member_id,
    parse,
    received,
    step_of,
    to_json,
)
from jobpipe.errors import (
    IdempotencyConflictError,
    IllegalTransitionError,
    InvalidJobIdError,
    InvalidRequestError,
    InvalidWorkflowError,
    JobFinishedError,
    ParamsTooLargeError,
    ServiceUnavailableError,
    StoreError,
    UnknownJobTypeError,
    WorkflowNotFoundError,
)
from jobpipe.followups import FollowUps
from jobpipe.observability import log_transition, logger
from jobpipe.ports import JobQueue, JobStore
from jobpipe.submit.service import check_depth, check_stored_size
from jobpipe.topology import TOPOLOGY

POLL_SECONDS = 1


@dataclass(frozen=True)
class WorkflowRequest:
    owner: str
    tree: Any
    idempotency_key: str | None = None


@dataclass(frozen=True)
class WorkflowState:
    """A workflow with its members (by index; None for one past its retention)."""

    workflow: Workflow
    members: Sequence[Job | None]
    created: bool = False

    def tree(self) -> NodeView:
        from jobpipe.domain.workflow import view

        return view(self.workflow.shape, self.members)

    def result(self, limit: int = TOPOLOGY.workflow.input_limit_bytes) -> tuple[Any, str | None]:
        """The workflow's result once it succeeded (its members' results, or outcomes, nested
        as its tree), and why it is not shown if it is too large to answer with."""
        workflow = self.workflow
        if workflow.status is not WorkflowStatus.SUCCEEDED:
            return None, None
        jobs = {job.job_id: job for job in self.members if job is not None}
        refs = map_refs(workflow.result, lambda index: member_id(workflow.workflow_id, index))
        try:
            value = received(refs, jobs, workflow.result_takes_outcomes)
        except KeyError:
            return None, "a member's job is gone (past its retention)"
        size = stored_size(value)
        if size > limit:
            return None, (
                f"the result takes {size} bytes, over the {limit} bytes a workflow's answer "
                "holds: read its members' results with GET /jobs/{id}"
            )
        return value, None

    def retry_after(self) -> int | None:
        return None if self.workflow.is_terminal else POLL_SECONDS


class WorkflowService:
    def __init__(
        self,
        store: JobStore,
        queue: JobQueue,
        registry: Registry,
        *,
        retention_days: int = TOPOLOGY.retention_days,
        params_limit: int = TOPOLOGY.item.params_limit_bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._queue = queue
        self._registry = registry
        self._retention_s = retention_days * 86400
        self._params_limit = params_limit
        self._clock = clock
        self._followups = FollowUps(store, queue)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- submit ---------------------------------------------------------------------------------

    def submit(self, request: WorkflowRequest) -> WorkflowState:
        """Raises InvalidWorkflowError (422, naming the bad node's path), WorkflowTooLargeError
        (413), IdempotencyConflictError (409) or ServiceUnavailableError (503: retry with the
        same Idempotency-Key, which finishes what this request began)."""
        root = parse(request.tree)
        plan = compile_tree(root)
        params = self._validated(plan)
        spec = {"tree": to_json(root), "params": params}
        now = self._now_ms()
        workflow_id = new_job_id()
        try:
            if request.idempotency_key is not None:
                key_id = workflow_key_id(request.owner, request.idempotency_key)
                claim = self._store.claim_key(key_id, workflow_id, fingerprint(spec), now)
                if claim is not None:
                    if claim.request_hash != fingerprint(spec):
                        raise IdempotencyConflictError(
                            "this Idempotency-Key was used with a different request body"
                        )
                    workflow_id = claim.job_id
            workflow = Workflow(
                workflow_id=workflow_id,
                owner=request.owner,
                status=WorkflowStatus.RUNNING,
                created_at=now,
                updated_at=now,
                expires_at=now // 1000 + self._retention_s,
                shape=plan.shape,
                members=len(plan.members),
                result=plan.result,
                result_takes_outcomes=plan.result_takes_outcomes,
                spec=spec,
                outbox_due=now,
            )
            existing = self._store.create_workflow(workflow)
            if existing is not None:
                # An earlier request with the same key: its workflow is the answer, finished
                # here if it was cut off.
                if existing.spec is not None:
                    self.finish(existing)
                return self._state(existing)
            members = self.finish(workflow, fresh=True)
        except StoreError as error:
            raise ServiceUnavailableError("the job store is unavailable; retry") from error
        logger.info("workflow submitted", workflow_id=workflow_id, members=len(members))
        return WorkflowState(workflow, members, created=True)

    def _validated(self, plan: Plan) -> list[dict[str, Any]]:
        """Each step's params, checked as a job's are (its type, its model, depth and stored
        size) — except the input a later step receives from its predecessors, which is checked
        when it starts. An error names the step's path."""
        validated = []
        for member in plan.members:
            where = member.path
            try:
                job_type = self._registry.get_type(member.type)
                if member.waits and INPUT_KEY in member.params:
                    raise InvalidWorkflowError(
                        f"{where}.params.{INPUT_KEY}: reserved for what the step receives from "
                        "its predecessors",
                        [{"loc": f"{where}.params.{INPUT_KEY}", "msg": "reserved"}],
                    )
                check_depth(member.params)
                params = self._params_of(job_type.parse_params, member.params, member.waits)
                check_stored_size(params, self._params_limit)
            except UnknownJobTypeError as error:
                raise InvalidWorkflowError(
                    f"{where}.type: {error}", [{"loc": f"{where}.type", "msg": "unknown job type"}]
                ) from None
            except ParamsTooLargeError as error:
                error.args = (f"{where}: {error}",)
                raise
            except InvalidWorkflowError:
                raise
            except InvalidRequestError as error:
                fields = [{**f, "loc": f"{where}.{f['loc']}"} for f in error.fields]
                raise InvalidWorkflowError(f"{where}: {error}", fields) from None
            validated.append(params)
        return validated

    @staticmethod
    def _params_of(parse_params: Callable[[Any], Any], raw: dict[str, Any], waits: bool) -> Any:
        if not waits:
            return parse_params(raw).model_dump(mode="json")
        # What it will receive is not known yet: a model that requires it is satisfied here by
        # a stand-in, and the params are kept as sent (validated in full when the step starts).
        try:
            parse_params(raw)
        except InvalidRequestError as error:
            real = [f for f in error.fields if not f["loc"].startswith(f"params.{INPUT_KEY}")]
            if real:
                raise InvalidRequestError(str(error), real) from None
        return raw

    def finish(self, workflow: Workflow, *, fresh: bool = False) -> list[Job]:
        """Write every member that does not exist yet, queue the first steps still pending, and
        clear the workflow's mark. Idempotent; a retry with the same key and the reaper call it
        for a creation that was cut off. Unless the workflow is `fresh`, the members that exist
        are read first and only the missing ones written: a retry after a failure part-way
        writes what is left, not every member again."""
        if workflow.spec is None:
            return []
        members = self._members(workflow)
        if not fresh:
            existing = self._store.get_many([job.job_id for job in members])
            missing = [job for job in members if job.job_id not in existing]
            self._store.create_missing(missing)
            members = [existing.get(job.job_id, job) for job in members]
        else:
            self._store.create_missing(members)
        first = [job.message().to_body() for job in members if job.status is JobStatus.PENDING]
        unsent = self._queue.send_many(first)
        if unsent:
            # The steps are written `pending`, so the reaper's pending index holds them: one whose
            # message is lost is queued by the reaper, as any job's is. Failing the whole
            # creation for it would make its retry send every message again.
            logger.warning(
                "some first steps' messages were not sent; the reaper queues them",
                workflow_id=workflow.workflow_id,
                unsent=len(unsent),
            )
        # Refused when another request (or the reaper) finished it meanwhile.
        with contextlib.suppress(IllegalTransitionError):
            self._store.apply_workflow(WORKFLOW_CREATED, workflow.workflow_id)
        return members

    def _members(self, workflow: Workflow) -> list[Job]:
        assert workflow.spec is not None
        plan = compile_tree(parse(workflow.spec["tree"]))
        params = workflow.spec["params"]
        jobs = []
        for member, member_params in zip(plan.members, params, strict=True):
            jobs.append(
                new_job(
                    self._registry.get_type(member.type),
                    member_params,
                    owner=workflow.owner,
                    now_ms=workflow.created_at,
                    retention_seconds=self._retention_s,
                    job_id=member_id(workflow.workflow_id, member.index),
                    step=step_of(workflow.workflow_id, member),
                )
            )
        return jobs

    # --- read -----------------------------------------------------------------------------------

    def get(self, owner: str, raw_workflow_id: str) -> WorkflowState:
        """Raises InvalidJobIdError (400) or WorkflowNotFoundError (404, also for another's)."""
        workflow = self._workflow(owner, raw_workflow_id)
        return self._state(workflow)

    def _workflow(self, owner: str, raw_workflow_id: str) -> Workflow:
        try:
            workflow_id = check_job_id(raw_workflow_id)
        except InvalidJobIdError:
            raise InvalidJobIdError("a workflow id is a 26-character ULID") from None
        workflow = self._store.get_workflow(workflow_id)
        if workflow is None or workflow.owner != owner:
            raise WorkflowNotFoundError(f"no workflow {workflow_id}")
        return workflow

    def _state(self, workflow: Workflow) -> WorkflowState:
        ids = workflow.member_ids()
        found = self._store.get_many(ids)
        return WorkflowState(workflow, [found.get(job_id) for job_id in ids])

    # --- cancel ---------------------------------------------------------------------------------

    def cancel(self, owner: str, raw_workflow_id: str) -> WorkflowState:
        """Cancel every member not yet finished (a running one is asked to stop); the workflow
        ends `cancelled` unless it had already ended. Raises JobFinishedError (409) when it
        succeeded, and what `get` raises."""
        workflow = self._workflow(owner, raw_workflow_id)
        if workflow.status is WorkflowStatus.SUCCEEDED:
            raise JobFinishedError(f"workflow {workflow.workflow_id} has already succeeded")
        now = self._now_ms()
        if workflow.status is WorkflowStatus.RUNNING:
            try:
                workflow = self._store.apply_workflow(
                    WORKFLOW_CANCEL, workflow.workflow_id, error=None, now=now
                )
            except IllegalTransitionError as refused:
                if isinstance(refused.job, Workflow):
                    workflow = refused.job
        state = self._state(workflow)
        # The last steps first: the follow-ups of the earlier ones then find them ended.
        for job in reversed([j for j in state.members if j is not None and not j.is_terminal]):
            self._cancel_member(job, now)
        return self._state(workflow)

    def _cancel_member(self, job: Job, now: int) -> None:
        try:
            if job.status in CANCELLABLE_AT_ONCE:
                cancelled = self._store.apply(CANCEL, job.job_id, now=now)
                log_transition(cancelled, "cancel")
                self._followups.after_end(cancelled)
            elif job.status is JobStatus.RUNNING and not job.cancel_requested:
                log_transition(self._store.apply(REQUEST_CANCEL, job.job_id), "request_cancel")
        except IllegalTransitionError:
            pass  # it moved on meanwhile (started, or ended)


def workflow_key_id(owner: str, key: str) -> str:
    """A workflow's Idempotency-Key: per caller, and apart from the same key used for a job."""
    return "idem#" + fingerprint([owner, key, "workflow"])
