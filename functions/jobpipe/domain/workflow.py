"""Workflows — Celery's canvas: chains, groups and chords of job steps. Pure: no I/O.

A tree is parsed and checked here (every error names the path of the node it is about, such as
`chord.header[3].params.width`), then compiled into its members: one job per step, each knowing
what it receives (`Step.inputs`, by reference: the ids of the jobs whose results it gets) and
what waits for its end (`Step.waiters`). The fan-in service (`jobpipe.workflow.fanin`) moves a
workflow on from these links alone; the workflow's own record keeps the tree's shape, for
reading it back.

    {"chain": [step, ...]}                        each step receives the previous one's result
    {"group": [step, ...]}                        its result: its members' results, in order
    {"chord": {"header": [step, ...], "body": step}}   the body receives the header's results
    step = {"type": "resize", "params": {...}}    or another tree

A group or a chord may say `"continue_on_failure": true`: what follows it then runs whatever
its members' outcomes, and receives each outcome (`{"status", "result"}` or
`{"status", "error"}`) instead of the results.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from jobpipe.domain.job import Cause, Job, Step, Waiter
from jobpipe.domain.states import JobStatus, WorkflowStatus
from jobpipe.errors import InvalidWorkflowError, WorkflowTooLargeError
from jobpipe.topology import TOPOLOGY

MAX_MEMBERS = TOPOLOGY.workflow.max_members
MAX_TREE_DEPTH = TOPOLOGY.workflow.max_depth
# The key a step's params receive their predecessors' results under.
INPUT_KEY = "input"
CONTINUE = "continue_on_failure"

Ref = int | list["Ref"]
"""What a node's result is made of: a member's index, or a list of refs (a group)."""


# --- the workflow, as stored ---------------------------------------------------------------------


@dataclass(frozen=True)
class Workflow:
    """A workflow's own record. Its members are jobs (`member_id(workflow_id, index)`); this
    keeps the tree's shape, what its result is made of, and how it ended. Times are epoch ms."""

    workflow_id: str
    owner: str
    status: WorkflowStatus
    created_at: int
    updated_at: int
    expires_at: int  # epoch seconds: retention (DynamoDB TTL)
    # The tree with each step replaced by its member's index.
    shape: Any
    members: int
    # Member indexes its result is made of, and whether it takes their outcomes.
    result: Any
    result_takes_outcomes: bool = False
    # The positions of `result`'s members counted so far.
    arrived: frozenset[int] = frozenset()
    # The member that failed first (or was cancelled), when it failed or was cancelled.
    error: Cause | None = None
    # The tree as submitted, kept until every member exists and the first steps are queued, so
    # that the reaper can finish a creation that was cut off.
    spec: dict[str, Any] | None = None
    outbox_due: int | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def completed_at(self) -> int | None:
        return self.updated_at if self.is_terminal else None

    def member_ids(self) -> list[str]:
        return [member_id(self.workflow_id, index) for index in range(self.members)]


# --- the tree, as submitted ----------------------------------------------------------------------


@dataclass(frozen=True)
class StepSpec:
    path: str
    type: str
    params: dict[str, Any]


@dataclass(frozen=True)
class ChainSpec:
    path: str
    children: tuple[NodeSpec, ...]


@dataclass(frozen=True)
class GroupSpec:
    path: str
    children: tuple[NodeSpec, ...]
    continue_on_failure: bool = False


@dataclass(frozen=True)
class ChordSpec:
    path: str
    header: tuple[NodeSpec, ...]
    body: NodeSpec
    continue_on_failure: bool = False


NodeSpec = StepSpec | ChainSpec | GroupSpec | ChordSpec


def parse(raw: Any) -> ChainSpec | GroupSpec | ChordSpec:
    """The tree `raw` describes. Raises InvalidWorkflowError (422) naming the first bad node's
    path, or WorkflowTooLargeError (413) past MAX_MEMBERS steps."""
    parser = _Parser()
    root = parser.node(raw, "", 1)
    if isinstance(root, StepSpec):
        raise InvalidWorkflowError(
            "a workflow is a chain, a group or a chord; submit a single job to POST /jobs",
            [{"loc": "workflow", "msg": "a single step"}],
        )
    return root


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Parser:
    def __init__(self) -> None:
        self.steps = 0

    def fail(self, path: str, message: str) -> InvalidWorkflowError:
        where = path or "workflow"
        return InvalidWorkflowError(f"{where}: {message}", [{"loc": where, "msg": message}])

    def node(self, raw: Any, path: str, depth: int) -> NodeSpec:
        if depth > MAX_TREE_DEPTH:
            raise self.fail(path, f"nested deeper than {MAX_TREE_DEPTH} levels")
        if not isinstance(raw, dict):
            raise self.fail(path, "expected an object: a step, a chain, a group or a chord")
        kinds = [k for k in ("type", "chain", "group", "chord") if k in raw]
        if len(kinds) != 1:
            raise self.fail(
                path, "expected exactly one of `type` (a step), `chain`, `group` or `chord`"
            )
        kind = kinds[0]
        allowed = {"type": {"type", "params"}, "chain": {"chain"}}.get(kind, {kind, CONTINUE})
        extra = sorted(set(raw) - allowed)
        if extra:
            raise self.fail(path, f"unexpected field {extra[0]!r}")
        if kind == "type":
            return self.step(raw, path)
        go_on = raw.get(CONTINUE, False)
        if not isinstance(go_on, bool):
            raise self.fail(_child(path, CONTINUE), "expected true or false")
        if kind == "chord":
            return self.chord(raw["chord"], _child(path, "chord"), depth, go_on)
        children = self.nodes(raw[kind], path, kind, depth)
        if kind == "chain":
            return ChainSpec(path, children)
        return GroupSpec(path, children, go_on)

    def nodes(self, raw: Any, path: str, name: str, depth: int) -> tuple[NodeSpec, ...]:
        where = _child(path, name)
        if not isinstance(raw, list) or not raw:
            raise self.fail(where, "expected a non-empty list of steps")
        return tuple(
            self.node(item, f"{where}[{index}]", depth + 1) for index, item in enumerate(raw)
        )

    def chord(self, raw: Any, path: str, depth: int, go_on: bool) -> ChordSpec:
        if not isinstance(raw, dict) or set(raw) != {"header", "body"}:
            raise self.fail(path, "expected an object with `header` (a list) and `body`")
        header = self.nodes(raw["header"], path, "header", depth)
        body = self.node(raw["body"], _child(path, "body"), depth + 1)
        return ChordSpec(path.removesuffix("chord").removesuffix("."), header, body, go_on)

    def step(self, raw: dict[str, Any], path: str) -> StepSpec:
        self.steps += 1
        if self.steps > MAX_MEMBERS:
            raise WorkflowTooLargeError(self.steps, MAX_MEMBERS)
        job_type, params = raw["type"], raw.get("params", {})
        if not isinstance(job_type, str) or not job_type:
            raise self.fail(_child(path, "type"), "expected the name of a job type")
        if not isinstance(params, dict):
            raise self.fail(_child(path, "params"), "expected an object")
        return StepSpec(path, job_type, params)


def steps(node: NodeSpec) -> Iterator[StepSpec]:
    """Every step of the tree, in tree order (the members' order)."""
    if isinstance(node, StepSpec):
        yield node
    elif isinstance(node, ChordSpec):
        for child in node.header:
            yield from steps(child)
        yield from steps(node.body)
    else:
        for child in node.children:
            yield from steps(child)


def to_json(node: NodeSpec) -> dict[str, Any]:
    """The tree as it was submitted (with each step's params as validated)."""
    if isinstance(node, StepSpec):
        return {"type": node.type, "params": node.params}
    if isinstance(node, ChainSpec):
        return {"chain": [to_json(c) for c in node.children]}
    options = {CONTINUE: True} if node.continue_on_failure else {}
    if isinstance(node, GroupSpec):
        return {"group": [to_json(c) for c in node.children], **options}
    return {
        "chord": {"header": [to_json(c) for c in node.header], "body": to_json(node.body)},
        **options,
    }


# --- compiled: members and their links -----------------------------------------------------------


@dataclass
class Member:
    index: int
    path: str
    type: str
    params: dict[str, Any]
    # Member indexes whose results it receives (None: it starts the workflow).
    inputs: Ref | None
    takes_outcomes: bool
    # (waiter's index, or None for the workflow; position; takes outcomes; how many it waits for)
    waiters: list[tuple[int | None, int, bool, int]] = field(default_factory=list)

    @property
    def waits(self) -> bool:
        return self.inputs is not None


@dataclass(frozen=True)
class Plan:
    members: tuple[Member, ...]
    # The tree with each step replaced by its member's index: what the workflow keeps.
    shape: Any
    # What the workflow's result is made of, and whether it takes outcomes (a root group that
    # continues on failure).
    result: Ref
    result_takes_outcomes: bool

    @property
    def result_count(self) -> int:
        return len(flatten(self.result))


def compile_tree(root: ChainSpec | GroupSpec | ChordSpec) -> Plan:
    members: list[Member] = []

    def visit(node: NodeSpec, inputs: Ref | None, takes: bool) -> tuple[Ref, Any]:
        if isinstance(node, StepSpec):
            index = len(members)
            members.append(Member(index, node.path, node.type, node.params, inputs, takes))
            return index, index
        if isinstance(node, ChainSpec):
            shapes = []
            result, shape = visit(node.children[0], inputs, takes)
            shapes.append(shape)
            previous = node.children[0]
            for child in node.children[1:]:
                result, shape = visit(child, result, _continues(previous))
                shapes.append(shape)
                previous = child
            return result, {"chain": shapes}
        options = {CONTINUE: True} if node.continue_on_failure else {}
        if isinstance(node, GroupSpec):
            parts = [visit(child, inputs, takes) for child in node.children]
            return [r for r, _ in parts], {"group": [s for _, s in parts], **options}
        header = [visit(child, inputs, takes) for child in node.header]
        header_result: Ref = [r for r, _ in header]
        body_result, body_shape = visit(node.body, header_result, node.continue_on_failure)
        shape = {"chord": {"header": [s for _, s in header], "body": body_shape}, **options}
        return body_result, shape

    result, shape = visit(root, None, False)
    for member in members:
        if member.inputs is None:
            continue
        waited = flatten(member.inputs)
        for position, index in enumerate(waited):
            members[index].waiters.append(
                (member.index, position, member.takes_outcomes, len(waited))
            )
    result_takes = _continues(root)
    final = flatten(result)
    for position, index in enumerate(final):
        members[index].waiters.append((None, position, result_takes, len(final)))
    return Plan(tuple(members), shape, result, result_takes)


def _continues(node: NodeSpec) -> bool:
    """Whether what follows `node` runs whatever its members' outcomes."""
    return isinstance(node, GroupSpec) and node.continue_on_failure


def flatten(ref: Any) -> list[Any]:
    if isinstance(ref, list):
        return [leaf for part in ref for leaf in flatten(part)]
    return [ref]


def map_refs(ref: Any, leaf: Any) -> Any:
    """`ref` with each leaf replaced by `leaf(it)`, nesting kept."""
    if isinstance(ref, list):
        return [map_refs(part, leaf) for part in ref]
    return leaf(ref)


def member_id(workflow_id: str, index: int) -> str:
    """A member's job id: a ULID of the workflow's time whose random part comes from the
    workflow's id and the member's place, so a retried submit names the same jobs."""
    from ulid import ULID

    timestamp = ULID.from_str(workflow_id).bytes[:6]
    random = hashlib.sha256(f"{workflow_id}:{index}".encode()).digest()[:10]
    return str(ULID.from_bytes(timestamp + random))


def step_of(workflow_id: str, member: Member) -> Step:
    """The member's links, with job ids for indexes."""

    def job(index: Any) -> str:
        return member_id(workflow_id, int(index))

    return Step(
        workflow_id=workflow_id,
        path=member.path,
        inputs=map_refs(member.inputs, job) if member.inputs is not None else None,
        takes_outcomes=member.takes_outcomes,
        waiters=tuple(
            Waiter(job(w) if w is not None else None, position, takes, count)
            for w, position, takes, count in member.waiters
        ),
    )


# --- reading it back -----------------------------------------------------------------------------


def outcome_of(job: Job) -> dict[str, Any]:
    """What a step that takes outcomes receives for `job`: `{"status": "succeeded", "result"}`,
    or its status and `error` (for a step that never ran, the member that failed first)."""
    if job.status is JobStatus.SUCCEEDED:
        return {"status": "succeeded", "result": job.result}
    body: dict[str, Any] = {"status": job.status.value}
    if job.error is not None:
        body["error"] = {"type": job.error.type, "message": job.error.message}
    elif job.cause is not None:
        body["error"] = job.cause.as_dict()
    return body


def received(inputs: Any, jobs: Mapping[str, Job], takes_outcomes: bool) -> Any:
    """What a step receives: its predecessors' results (or outcomes), nested as `inputs`."""

    def value(job_id: Any) -> Any:
        job = jobs[str(job_id)]
        return outcome_of(job) if takes_outcomes else job.result

    return map_refs(inputs, value)


NodeKind = Literal["step", "chain", "group", "chord"]


@dataclass(frozen=True)
class NodeView:
    """A node of a workflow as it stands: its kind, path and status, and its children (or, for
    a step, its job)."""

    kind: NodeKind
    path: str
    status: str
    job: Job | None = None
    children: tuple[NodeView, ...] = ()
    # A chord's body (its header is `children`).
    body: NodeView | None = None
    continue_on_failure: bool = False


def view(shape: Any, jobs: Sequence[Job | None], path: str = "") -> NodeView:
    """The tree of `shape` with each member's job (`jobs[index]`) and each node's status."""
    if isinstance(shape, int):
        job = jobs[shape]
        status = job.status.value if job is not None else "unknown"
        return NodeView("step", path, status, job)
    go_on = bool(shape.get(CONTINUE, False))
    if "chord" in shape:
        where = _child(path, "chord")
        header = tuple(
            view(s, jobs, f"{where}.header[{i}]") for i, s in enumerate(shape["chord"]["header"])
        )
        body = view(shape["chord"]["body"], jobs, f"{where}.body")
        # As a chain of the header (a group) and the body.
        header_status = _together(header, go_on)
        status = body.status if header_status == "succeeded" else header_status
        return NodeView("chord", path, status, None, header, body, go_on)
    kind: NodeKind = "chain" if "chain" in shape else "group"
    children = tuple(view(s, jobs, f"{_child(path, kind)}[{i}]") for i, s in enumerate(shape[kind]))
    status = _in_turn(children) if kind == "chain" else _together(children, go_on)
    return NodeView(kind, path, status, None, children, None, go_on)


_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


def _in_turn(children: Sequence[NodeView]) -> str:
    """A chain: as its first step that has not succeeded."""
    for child in children:
        if child.status != "succeeded":
            return child.status if child.status in _TERMINAL else _moving(children)
    return "succeeded"


def _together(children: Sequence[NodeView], go_on: bool) -> str:
    """A group: succeeded when all did (or all ended, if it continues on failure); failed as
    soon as one failed."""
    statuses = [c.status for c in children]
    if not go_on:
        if "failed" in statuses:
            return "failed"
        if "cancelled" in statuses and all(s in _TERMINAL for s in statuses):
            return "cancelled"
    if all(s in _TERMINAL for s in statuses):
        return "succeeded" if go_on or all(s == "succeeded" for s in statuses) else "cancelled"
    return _moving(children)


def _moving(children: Sequence[NodeView]) -> str:
    return "waiting" if all(c.status == "waiting" for c in children) else "running"
