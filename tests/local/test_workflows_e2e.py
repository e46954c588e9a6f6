"""Workflows over HTTP against the local stack (worker processes, the real handlers, the reaper
thread): chains, groups and chords of jobs, their failure policies, cancel, and the errors a
caller gets for a bad tree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobpipe.client import ApiError, JobsClient, chain, chord, group, step
from jobpipe.local.stack import LocalStack
from jobpipe.topology import TOPOLOGY
from tests.cli.test_cli import run as run
from tests.local.test_lifecycle_e2e import wait_until
from tests.local.test_security import call

pytestmark = pytest.mark.slow


def add(value: float) -> dict[str, Any]:
    return step("add", {"value": value})


def test_a_chain_passes_each_result_to_the_next_step(client: JobsClient) -> None:
    # Given a chain of three steps, each adding its value to what it receives
    submitted = client.submit_workflow(chain(add(1), add(2), add(3)))
    # Then the answer is at once: the first step pending, the others waiting
    assert submitted.status == "running" and submitted.members == 3
    assert [s.status for s in submitted.tree.steps()][1:] == ["waiting", "waiting"]
    # When it has run
    done = client.wait_workflow(submitted.workflow_id, timeout=60)
    # Then it succeeded with the last step's result: 1 + 2 + 3, each step in turn
    assert done.succeeded and done.result == 6
    steps = done.tree.steps()
    assert [s.status for s in steps] == ["succeeded"] * 3
    assert [s.path for s in steps] == ["chain[0]", "chain[1]", "chain[2]"]
    # And each step is a job the caller can read, naming its workflow
    second = client.get(str(steps[1].job_id))
    assert second.result == 3 and second.workflow_id == done.workflow_id


def test_a_twenty_step_chain_runs_every_step_in_order(client: JobsClient) -> None:
    # Given a chain of twenty steps each adding 1
    submitted = client.submit_workflow(chain(*[add(1) for _ in range(20)]))
    # When it has run / Then the total is 20: no step ran twice or was skipped
    done = client.wait_workflow(submitted.workflow_id, timeout=120)
    assert done.succeeded and done.result == 20
    jobs = [client.get(str(s.job_id)) for s in done.tree.steps()]
    assert [job.result for job in jobs] == list(range(1, 21))
    assert all(job.attempts == 1 for job in jobs)


def test_a_twenty_step_chain_of_echoes_shows_everything_each_step_received(
    client: JobsClient,
) -> None:
    # Given a chain of twenty echoes, each returning all it received
    submitted = client.submit_workflow(chain(*[step("echo", {"n": n}) for n in range(20)]))
    assert submitted.poll_url and submitted.poll_url.endswith(f"/workflows/{submitted.workflow_id}")
    # When it has run
    done = client.wait_workflow(submitted.workflow_id, timeout=120)
    # Then the last result holds every step's params, nested as they were passed on: within
    # the params depth limit
    assert done.succeeded
    seen, value = [], done.result
    while value is not None:
        seen.append(value["n"])
        value = value.get("input")
    assert seen == list(range(19, -1, -1))


def test_a_chord_runs_its_body_once_with_all_of_the_header_results(client: JobsClient) -> None:
    # Given a chord of fifty header steps and a body that adds up what it receives
    header = [add(i) for i in range(50)]
    submitted = client.submit_workflow(chord(header, add(0)))
    # When it has run
    done = client.wait_workflow(submitted.workflow_id, timeout=120)
    # Then the body ran once, with every header result
    assert done.succeeded and done.result == sum(range(50))
    body = done.tree.body
    assert body is not None and body.path == "chord.body"
    assert client.get(str(body.job_id)).attempts == 1


def test_a_group_answers_its_members_results_in_order(client: JobsClient) -> None:
    # Given a group of three steps / When it has run
    done = client.wait_workflow(
        client.submit_workflow(group(add(3), add(1), add(2))).workflow_id, timeout=60
    )
    # Then its result is their results in the order they were given
    assert done.succeeded and done.result == [3, 1, 2]


def test_a_failed_step_fails_the_workflow_and_what_follows_never_runs(
    client: JobsClient,
) -> None:
    # Given a chain whose second step fails
    tree = chain(add(1), step("fail", {"message": "no such image"}), add(1))
    # When it has run
    done = client.wait_workflow(client.submit_workflow(tree).workflow_id, timeout=60)
    # Then the workflow failed, naming the step and its job; the third step never ran
    assert done.failed and done.error is not None
    assert done.error.path == "chain[1]" and done.error.message == "no such image"
    first, failed, third = done.tree.steps()
    assert done.error.job_id == failed.job_id
    assert (first.status, failed.status, third.status) == ("succeeded", "failed", "cancelled")
    skipped = client.get(str(third.job_id))
    assert skipped.attempts == 0 and skipped.is_terminal


def test_a_chord_that_continues_on_failure_gives_its_body_every_outcome(
    client: JobsClient,
) -> None:
    # Given a chord whose header has a failing step, set to continue on failure
    tree = chord([add(1), step("fail", {"message": "bad"})], step("echo"), continue_on_failure=True)
    # When it has run
    done = client.wait_workflow(client.submit_workflow(tree).workflow_id, timeout=60)
    # Then the body ran and received each outcome, in order
    assert done.succeeded
    assert done.result["input"] == [
        {"status": "succeeded", "result": 1},
        {"status": "failed", "error": {"type": "PermanentJobError", "message": "bad"}},
    ]


def test_cancelling_a_workflow_stops_its_running_step_and_skips_the_rest(
    client: JobsClient,
) -> None:
    # Given a chain whose first step sleeps for 20 s and is running
    submitted = client.submit_workflow(chain(step("sleep", {"seconds": 20}), add(1)))
    first = str(submitted.tree.steps()[0].job_id)
    wait_until(client, first, lambda job: job.status == "running")
    # When its owner cancels the workflow
    cancelled = client.cancel_workflow(submitted.workflow_id)
    # Then it is cancelled at once, the waiting step too, and the sleeping one stops soon
    assert cancelled.cancelled and cancelled.is_terminal
    assert cancelled.tree.steps()[1].status == "cancelled"
    assert client.wait(first, timeout=10).status == "cancelled"
    # And cancelling it again answers it again
    assert client.cancel_workflow(submitted.workflow_id).cancelled


def test_a_bad_tree_is_422_naming_the_node_and_too_many_steps_413(client: JobsClient) -> None:
    # Given a chord whose fourth header step has params its type refuses
    header = [add(1), add(2), add(3), step("sleep", {"seconds": "long"})]
    # When it is submitted / Then 422 names the node's path, and the field's
    with pytest.raises(ApiError) as invalid:
        client.submit_workflow(chord(header, add(0)))
    assert invalid.value.status == 422
    assert invalid.value.message.startswith("chord.header[3]: invalid params")
    fields = invalid.value.body["error"]["fields"]
    assert [f["loc"] for f in fields] == ["chord.header[3].params.seconds"]
    # And an unknown type, or something that is no tree, is 422 too
    with pytest.raises(ApiError) as unknown:
        client.submit_workflow(chain(add(1), step("nope")))
    assert unknown.value.status == 422 and "chain[1].type" in unknown.value.message
    with pytest.raises(ApiError) as shapeless:
        client.submit_workflow({"pipeline": []})
    assert shapeless.value.status == 422
    # And a group over the member limit is 413, with nothing written
    with pytest.raises(ApiError) as large:
        client.submit_workflow(group(*[add(1)] * (TOPOLOGY.workflow.max_members + 1)))
    assert large.value.status == 413


def test_a_workflow_is_its_owners_and_a_malformed_id_is_400(
    client: JobsClient, local_stack: LocalStack
) -> None:
    # Given Alice's workflow
    status, submitted = call(
        local_stack, "POST", "/workflows", {"chain": [{"type": "add"}]}, subject="alice"
    )
    assert status == 202
    path = f"/workflows/{submitted['workflow_id']}"
    # When Bob reads or cancels it / Then it is not his to see
    assert call(local_stack, "GET", path, subject="bob")[0] == 404
    assert call(local_stack, "POST", f"{path}/cancel", subject="bob")[0] == 404
    assert call(local_stack, "GET", path, subject="alice")[0] == 200
    # And a malformed id is a 400
    with pytest.raises(ApiError) as malformed:
        client.get_workflow("not-a-workflow")
    assert malformed.value.status == 400


def test_the_same_idempotency_key_gives_the_same_workflow(client: JobsClient) -> None:
    # Given a workflow submitted with a key / When it is submitted again with the same key
    tree = chain(add(1), add(1))
    first = client.submit_workflow(tree, idempotency_key="nightly-2026-12-01")
    again = client.submit_workflow(tree, idempotency_key="nightly-2026-12-01")
    # Then it is the same workflow, and another body with that key is refused
    assert again.workflow_id == first.workflow_id
    with pytest.raises(ApiError) as conflict:
        client.submit_workflow(chain(add(2)), idempotency_key="nightly-2026-12-01")
    assert conflict.value.status == 409


def test_the_cli_submits_a_workflow_file_and_watches_it_to_the_end(
    run: Any, tmp_path: Path
) -> None:
    # Given a chord in a file
    tree = tmp_path / "flow.json"
    tree.write_text(json.dumps(chord([add(1), add(2)], add(10))))
    # When it is submitted with --wait
    code, out, err = run("workflow", "submit", str(tree), "--wait")
    # Then each step's status was shown as it changed, then the tree and the result
    assert code == 0, err
    assert "succeeded  chord.body add" in err
    assert "result     13" in out and "chord" in out
    # And --json answers the workflow's body; a bad file is a usage error
    code, out, _ = run("--json", "workflow", "submit", str(tree))
    assert code == 0 and json.loads(out)["members"] == 3
    (tmp_path / "bad.json").write_text("[1, 2]")
    code, _, err = run("workflow", "submit", str(tmp_path / "bad.json"))
    assert code == 2 and "must hold a JSON object" in err
