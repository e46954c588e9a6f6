"""A workflow's tree, parsed, checked and compiled: every error names the node's path, the limits
hold, and each member knows exactly what it receives and what waits for it."""

from __future__ import annotations

from typing import Any

import pytest

from jobpipe.api.errors import error_response
from jobpipe.client import chain, chord, group, step
from jobpipe.domain.states import (
    ARRIVE,
    FOLLOWED_UP,
    RELEASE,
    SKIP,
    TERMINAL,
    TRANSITIONS,
    WORKFLOW_TRANSITIONS,
    JobStatus,
    WorkflowStatus,
)
from jobpipe.domain.workflow import compile_tree, member_id, parse, view
from jobpipe.errors import InvalidWorkflowError, WorkflowTooLargeError
from jobpipe.topology import TOPOLOGY


def s(value: int) -> dict[str, Any]:
    return step("add", {"value": value})


@pytest.mark.parametrize(
    ("tree", "path"),
    [
        ([s(1)], "workflow: expected an object"),
        ({"pipeline": [s(1)]}, "workflow: expected exactly one of"),
        (s(1), "submit a single job to POST /jobs"),
        ({"chain": []}, "chain"),
        ({"chain": [s(1), {"type": 3}]}, "chain[1].type"),
        ({"group": [s(1), {"type": "add", "params": []}]}, "group[1].params"),
        ({"chord": {"header": [s(1)]}}, "chord: expected an object with `header`"),
        ({"chord": {"header": [s(1), {"kind": "x"}], "body": s(1)}}, "chord.header[1]"),
        ({"chain": [s(1)], "group": [s(1)]}, "workflow: expected exactly one of"),
        ({"chain": [s(1)], "continue_on_failure": "yes"}, "continue_on_failure"),
    ],
)
def test_a_tree_that_is_no_workflow_is_refused_naming_the_node(tree: Any, path: str) -> None:
    # Given a malformed tree / When it is parsed / Then the error names where it is wrong
    with pytest.raises(InvalidWorkflowError) as refused:
        parse(tree)
    assert error_response(refused.value).status_code == 422
    assert path in str(refused.value)


def test_too_many_steps_or_too_deep_a_tree_is_refused_before_anything_is_written() -> None:
    # Given a group of one step over the limit / Then it is 413
    with pytest.raises(WorkflowTooLargeError) as large:
        parse(group(*[s(1)] * (TOPOLOGY.workflow.max_members + 1)))
    assert error_response(large.value).status_code == 413
    # And a tree nested deeper than the limit is 422 naming the limit
    tree = s(1)
    for _ in range(TOPOLOGY.workflow.max_depth + 1):
        tree = chain(tree)
    with pytest.raises(InvalidWorkflowError, match="deep"):
        parse(tree)


def test_a_chord_body_receives_every_header_result_and_waits_for_all_of_them() -> None:
    # Given a chord of three header steps and a body / When it is compiled
    plan = compile_tree(parse(chord([s(1), s(2), s(3)], s(0))))
    *header, body = plan.members
    # Then the body receives the three, in order, and each header step is awaited by it alone
    assert body.inputs == [0, 1, 2] and not body.takes_outcomes
    assert [m.waiters for m in header] == [[(3, i, False, 3)] for i in range(3)]
    # And the workflow waits for the body only; the first steps are the header
    assert body.waiters == [(None, 0, False, 1)]
    assert [m.waits for m in plan.members] == [False, False, False, True]


def test_a_chain_of_groups_passes_each_groups_results_on_as_a_list() -> None:
    plan = compile_tree(parse(chain(group(s(1), s(2)), s(3), group(s(4), s(5)))))
    members = plan.members
    # The step after the group receives both results; each step of the last group receives
    # the step before it
    assert members[2].inputs == [0, 1]
    assert members[3].inputs == 2 and members[4].inputs == 2
    # And the workflow's result is the last group's results
    assert plan.result == [3, 4]


def test_member_ids_are_the_same_for_the_same_workflow_and_distinct_within_it() -> None:
    # Given a workflow id / Then its members' ids are fixed (a retry writes the same jobs) and
    # distinct, and ULIDs
    first = [member_id("01ARZ3NDEKTSV4RRFFQ69G5FAV", i) for i in range(500)]
    again = [member_id("01ARZ3NDEKTSV4RRFFQ69G5FAV", i) for i in range(500)]
    assert first == again and len(set(first)) == 500
    assert all(len(job_id) == 26 for job_id in first)


def test_a_nodes_status_follows_its_steps() -> None:
    # Given a chain of a step and a group, where the step succeeded and the group is half done
    shape = {"chain": [0, {"group": [1, 2]}]}

    class Seen:
        def __init__(self, status: JobStatus) -> None:
            self.status = status

    jobs: Any = [Seen(JobStatus.SUCCEEDED), Seen(JobStatus.SUCCEEDED), Seen(JobStatus.RUNNING)]
    # When it is viewed / Then the group and the chain are running, each step as its job
    root = view(shape, jobs)
    assert (root.kind, root.status) == ("chain", "running")
    assert [c.status for c in root.children[1].children] == ["succeeded", "running"]
    assert root.children[1].path == "chain[1]"


def test_the_workflow_transitions_count_once_and_decide_the_end_once() -> None:
    # A step is counted, released or skipped only while it waits; a follow-up is cleared only
    # for the end it was marked at
    assert ARRIVE.sources == RELEASE.sources == SKIP.sources == {JobStatus.WAITING}
    assert RELEASE.target is JobStatus.PENDING and SKIP.target is JobStatus.CANCELLED
    assert FOLLOWED_UP.sources == set(TERMINAL) and FOLLOWED_UP.target is None
    # A workflow ends once, from running; every move into a job's end marks its follow-ups
    for transition in WORKFLOW_TRANSITIONS:
        if transition.target is not None:
            assert transition.sources == {WorkflowStatus.RUNNING}
    ending = [t for t in TRANSITIONS if t.target in TERMINAL]
    assert ending and all("outbox_due" in str(t.writes) for t in ending)
