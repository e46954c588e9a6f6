"""`make chaos`, CI-sized: a few dozen jobs and a few workflows through the local pipeline under
every kind of fault."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scripts import chaos

SCRIPT = Path(chaos.__file__)
LINE = re.compile(
    r"^chaos: jobs=(?P<jobs>\d+) faults=(?P<faults>\d+) lost=(?P<lost>\d+) "
    r"duplicate_effects=(?P<duplicate_effects>\d+) stuck=(?P<stuck>\d+) "
    r"dead_lettered=(?P<dead_lettered>\d+) replayed=(?P<replayed>\d+) "
    r"recovered=(?P<recovered>\d+) workflows=(?P<workflows>\d+) "
    r"workflow_errors=(?P<workflow_errors>\d+)$"
)


class _Request:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.url = "http://127.0.0.1:1/"


@pytest.mark.slow
def test_sixty_jobs_under_every_fault_lose_nothing_and_run_nothing_twice() -> None:
    # Given the local pipeline on a compressed clock, with every fault kind switched on
    # When 60 jobs and four workflows (one a chord of 20) are driven through it and the DLQ is
    # replayed with the faults off
    run = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--jobs",
            "60",
            "--chord",
            "20",
            "--function-timeout",
            "5",
            "--timeout",
            "240",
        ],
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    lines = run.stdout.strip().splitlines()
    # Then the last line is the summary: every fault fired, nothing lost, duplicated or
    # stuck, and every replayed job recovered
    match = LINE.match(lines[-1]) if lines else None
    assert match, run.stdout[-3000:] + run.stderr[-3000:]
    figures = {name: int(value) for name, value in match.groupdict().items()}
    assert figures["jobs"] == 60
    assert figures["faults"] == len(chaos.FAULT_KINDS), run.stdout
    assert figures["lost"] == 0, run.stdout
    assert figures["duplicate_effects"] == 0, run.stdout
    assert figures["stuck"] == 0, run.stdout
    assert figures["replayed"] >= 1, run.stdout
    assert figures["recovered"] == figures["replayed"], run.stdout
    # And every workflow ended as its steps did: chains in order, each chord's body once with
    # all of its header's results, no follower of a failed step run, none left running
    assert figures["workflows"] == 4, run.stdout
    assert figures["workflow_errors"] == 0, run.stdout
    assert run.returncode == 0


def test_the_fault_plans_of_a_small_run_cover_every_job_side_fault() -> None:
    # Given a seeded run of 60 jobs
    plans = chaos.make_plans(60, chaos.random.Random(1))
    # Then some job carries each fault its handler or the worker injects
    params: list[dict[str, Any]] = [plan.params for plan in plans]
    assert any(plan.type == chaos.PERMANENT_TYPE for plan in plans)
    assert any(p.get("fail_attempts") for p in params)
    assert any(len(p.get("fail_attempts", [])) == chaos.CHAOS_MAX_ATTEMPTS for p in params)
    assert any(p.get("timeout_attempt") == 1 for p in params)
    assert any(p.get("hold_attempt") == 1 for p in params)
    assert any(p.get("crash") for p in params)
    assert any(plan.dup_now for plan in plans) and any(plan.dup_done for plan in plans)
    assert any(plan.same_key for plan in plans)
    assert any(p.get("text") for p in params)
    assert sum(plan.type == chaos.LONG_TYPE for plan in plans) >= chaos.BACKLOG_BURST
    # Time: a job delayed on the queue, one on a schedule, one cancelled under its schedule
    delays = [plan.delay_seconds for plan in plans if plan.delay_seconds is not None]
    assert any(d <= 900 for d in delays) and any(d > 900 for d in delays)
    assert any(plan.cancel_in_store for plan in plans)
    assert any(plan.type == chaos.NEW_TYPE for plan in plans)
    assert any(plan.cancel for plan in plans)
    assert any(plan.type == chaos.ASYNC_TYPE for plan in plans)
    assert sum(plan.batched for plan in plans) >= 2


def test_a_fault_hook_fails_one_logical_request_for_its_whole_streak() -> None:
    # Given a hook that fails every 2nd new request, three attempts in a row
    fired: list[str] = []
    hook = chaos.FaultHook(
        "throttle", 2, 400, "Throttled", lambda _n, _body: 3, lambda kind, _s: fired.append(kind)
    )
    # When request a passes, request b is sent (and retried with the same body) four times
    assert hook(_Request(b"a")) is None
    answers = [hook(_Request(b"b")) for _ in range(4)]
    # Then b's first three attempts are answered with the error and the fourth goes through
    assert [a.status_code if a is not None else None for a in answers] == [400, 400, 400, None]
    assert fired == ["throttle"]
    # And a disabled hook lets everything through
    hook.enabled = False
    assert hook(_Request(b"c")) is None and hook(_Request(b"d")) is None


def test_only_a_start_write_may_be_throttled_past_retries() -> None:
    # A START carries its from-states; an outcome write after the job ran does not
    assert chaos.is_start_write(b'{"ExpressionAttributeValues": {":from_pending": {"S": "p"}}}')
    assert not chaos.is_start_write(b'{"ExpressionAttributeValues": {":from_running": {}}}')


def test_the_compressed_topology_obeys_the_guardrails() -> None:
    # Given the chaos topology at its default worker timeout and the chaos job types
    topology = chaos.chaos_topology(5)
    # Then the synth's rules accept it: visibility 6 x timeout + window, receives above attempts
    chaos.check_guardrails(topology, chaos.chaos_registry())
    assert topology.queue.visibility_timeout_seconds == 31


def test_the_workflow_plans_hold_every_shape_a_failing_chain_and_a_large_chord() -> None:
    # Given a seeded run's workflows
    plans = chaos.make_flow_plans(4, 20, chaos.random.Random(1))
    roots = [next(iter(plan.tree)) for plan in plans]
    # Then there are chains, chords and groups, one chain that must fail, the large chord
    # last, and steps whose follow-ups are cut off
    assert {"chain", "chord", "group"} <= set(roots)
    assert [plan.fails for plan in plans].count(True) == 1
    assert len(plans[-1].tree["chord"]["header"]) == 20
    assert '"cut_fanin": true' in chaos.json.dumps([plan.tree for plan in plans])


def test_a_partial_batch_fault_takes_one_entry_out_and_reports_it_as_aws_does() -> None:
    # Given the batch faults, every second one past the adapters' retries
    fired: list[int] = []
    faults = chaos.BatchFaults(lambda _kind, streak: fired.append(streak), 2, 5)
    # When a SendMessageBatch of three entries is built and answered
    params: dict[str, Any] = {"Entries": [{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)]}
    faults._before_send(params)
    parsed: dict[str, Any] = {"Successful": [{"Id": "0"}, {"Id": "1"}]}
    faults._after_send(parsed)
    # Then the last entry was never sent and is reported failed, not by the sender's fault
    assert [e["Id"] for e in params["Entries"]] == ["0", "1"]
    assert parsed["Failed"] == [{"Id": "2", "SenderFault": False, "Code": "InternalError"}]
    # And sent again it goes through (absorbed by the retry)
    again: dict[str, Any] = {
        "Entries": [{"Id": "0", "MessageBody": "m1"}, {"Id": "1", "MessageBody": "m2"}]
    }
    faults._before_send(again)
    assert len(again["Entries"]) == 2
    assert fired == [1]
    # And a BatchWriteItem's put taken out is reported unprocessed, for its table
    write: dict[str, Any] = {
        "RequestItems": {"t": [{"PutRequest": {"Item": {"pk": {"S": k}}}} for k in "ab"]}
    }
    faults._before_write(write)
    answer: dict[str, Any] = {}
    faults._after_write(answer)
    assert len(write["RequestItems"]["t"]) == 1
    assert answer["UnprocessedItems"]["t"] == [{"PutRequest": {"Item": {"pk": {"S": "b"}}}}]
    # (the second fault is past the retries: its entry is taken out every time)
    assert fired == [1, chaos.BOTOCORE_MAX_ATTEMPTS]
