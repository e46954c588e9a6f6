"""The `jobpipe` CLI against the local stack: output, --json, and the exit codes scripts rely on."""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from jobpipe.cli.main import (
    EXIT_CANCELLED,
    EXIT_JOB_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_TARGET,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    main,
)
from jobpipe.client import JobsClient
from jobpipe.local.stack import LocalStack
from tests.local.conftest import BROKEN

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("local")]

UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


@pytest.fixture
def run(local_stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> Any:
    """`jobpipe ARGS --url <the local stack>`: (exit code, stdout, stderr)."""

    def call(*args: str, url: bool = True) -> tuple[int, str, str]:
        code = main([*args, *(["--url", local_stack.api_url] if url else [])])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def test_submit_prints_the_job_id(run: Any, client: JobsClient) -> None:
    code, out, err = run("submit", "echo", "greeting=hi")
    assert code == EXIT_OK
    job_id = out.strip()
    assert client.get(job_id).type == "echo" and "submitted echo job" in err


def test_key_value_params_are_json_values_and_merge_with_params(run: Any) -> None:
    code, out, _ = run(
        "submit", "echo", "--params", '{"a": 1, "b": 2}', "b=3", "c=text", "d=[1]", "--json"
    )
    assert code == EXIT_OK
    job_id = json.loads(out)["job_id"]
    code, out, _ = run("wait", job_id, "--json")
    assert json.loads(out)["result"] == {"a": 1, "b": 3, "c": "text", "d": [1]}


def test_submit_wait_shows_the_retry_and_the_success(run: Any) -> None:
    code, out, err = run("submit", "quick_flaky", "--params", '{"fail_times": 1}', "--wait")
    assert code == EXIT_OK
    assert "attempt 1" in err and "failed" in err
    assert "succeeded" in err and "status     succeeded  (attempt 2 of 3)" in out
    assert 'result     {"attempt": 2}' in out


def test_a_failed_job_exits_1_with_its_error(run: Any) -> None:
    code, out, _ = run("submit", "fail", "message=nope", "--wait", "--json")
    assert code == EXIT_JOB_FAILED
    job = json.loads(out)
    assert job["status"] == "failed" and job["error"] == {
        "type": "PermanentJobError",
        "message": "nope",
    }


def test_status_shows_a_job(run: Any, client: JobsClient) -> None:
    job_id = client.submit("echo", {}).job_id
    code, out, _ = run("status", job_id, "--json")
    assert code == EXIT_OK and json.loads(out)["job_id"] == job_id


def test_an_unknown_job_exits_3(run: Any) -> None:
    code, out, err = run("status", UNKNOWN_ID, "--json")
    assert code == EXIT_NOT_FOUND
    assert json.loads(out)["error"]["exit_code"] == EXIT_NOT_FOUND
    assert "no job" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("submit", "nope"), "known types: "),
        (("submit", "quick_flaky", "fail_times=x"), "params.fail_times"),
        (("status", "not-an-id"), "26-character ULID"),
        (("submit", "echo", "--params", "{bad"), "--params is not JSON"),
        (("submit", "echo", "--params", "[1]"), "must be a JSON object"),
        (("submit", "echo", "novalue"), "KEY=VALUE"),
    ],
)
def test_refused_input_exits_2_with_a_clear_message(
    run: Any, args: tuple[str, ...], message: str
) -> None:
    code, _, err = run(*args)
    assert code == EXIT_USAGE and message in err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["submit"])
    assert exited.value.code == EXIT_USAGE
    with pytest.raises(SystemExit):
        main(["dlq", "list", "--min-age", "soon"])
    assert "not a duration" in capsys.readouterr().err


def test_waiting_past_the_timeout_exits_5(run: Any, client: JobsClient) -> None:
    job_id = client.submit("sleep", {"seconds": 5}).job_id
    code, _, err = run("wait", job_id, "--timeout", "0.5")
    assert code == EXIT_TIMEOUT and "still" in err


def test_a_url_with_nothing_behind_it_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["status", UNKNOWN_ID, "--url", f"http://127.0.0.1:{port}"])
    assert code == EXIT_TARGET
    assert "cannot reach" in capsys.readouterr().err


def test_a_url_that_is_not_the_api_exits_4(run: Any, local_stack: LocalStack) -> None:
    code = main(["submit", "echo", "--url", f"{local_stack.api_url}/wrong"])
    assert code == EXIT_TARGET


def test_url_and_stack_together_are_a_usage_error(run: Any) -> None:
    code, _, err = run("status", UNKNOWN_ID, "--stack", "jobpipe")
    assert code == EXIT_USAGE and "either --url or --stack" in err


def test_dlq_list_and_replay_work_with_no_target_given(
    local_stack: LocalStack,
    client: JobsClient,
    run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the local stack on the port the CLI looks at by default, and a dead-lettered job
    monkeypatch.delenv("JOBPIPE_URL", raising=False)
    monkeypatch.setenv("JOBPIPE_PORT", str(local_stack.port))
    BROKEN.set()
    try:
        job_id = client.submit("until_fixed", {}).job_id
        assert client.wait(job_id, timeout=30).dead_lettered
    finally:
        BROKEN.clear()
    # When the DLQ is listed with no --url
    code, out, _ = run("dlq", "list", "--job-id", job_id, "--json", url=False)
    # Then the job is there with its error and attempts
    assert code == EXIT_OK
    [letter] = json.loads(out)
    assert (letter["job_id"], letter["job_type"], letter["error_type"], letter["attempts"]) == (
        job_id,
        "until_fixed",
        "TransientJobError",
        2,
    )
    code, out, _ = run("dlq", "list", "--job-id", job_id, url=False)
    assert job_id in out and "TransientJobError" in out
    # And a dry run says what would happen, and what the job would become, without doing it
    code, out, err = run("dlq", "replay", "--job-id", job_id, "--dry-run", url=False)
    assert code == EXIT_OK and "dry run: would replay 1" in err
    assert "would replay" in out and "replayed" not in out
    assert "would reset failed \N{RIGHTWARDS ARROW} pending with fresh attempts" in out
    # When it is replayed
    code, out, _ = run("dlq", "replay", "--job-id", job_id, "--json", url=False)
    report = json.loads(out)
    assert report["counts"]["replayed"] == 1 and report["method"] == "receive"
    # Then it succeeds with a fresh attempt
    code, out, _ = run("wait", job_id, "--json", url=False)
    assert code == EXIT_OK and json.loads(out)["replays"] == 1


def test_the_move_task_method_is_refused_on_the_local_stack(run: Any) -> None:
    code, _, err = run("dlq", "replay", "--method", "move-task")
    assert code == EXIT_USAGE and "--method receive" in err


def test_scripts_replay_dlq_is_the_same_command(run: Any, local_stack: LocalStack) -> None:
    path = Path(__file__).parents[2] / "scripts" / "replay_dlq.py"
    spec = importlib.util.spec_from_file_location("replay_dlq", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(["--url", local_stack.api_url, "--dry-run", "--type", "none", "--json"])
    assert code == EXIT_OK


def test_cancel_asks_a_running_job_to_stop_and_wait_shows_its_progress_then_exits_6(
    run: Any, client: JobsClient
) -> None:
    import threading
    import time

    # Given a job that sleeps 20 s reporting progress, cancelled by its owner a few seconds in
    job_id = client.submit("sleep", {"seconds": 20}).job_id

    def cancel_soon() -> None:
        time.sleep(4)
        client.cancel(job_id)

    threading.Thread(target=cancel_soon).start()
    # When `jobpipe wait` watches it
    code, out, err = run("wait", job_id)
    # Then it shows the progress bar while it runs, the cancel, and exits 6 (cancelled)
    assert code == EXIT_CANCELLED
    assert "progress" in err and "[#" in err and "sleeping" in err
    assert "status     cancelled" in out


def test_cancel_prints_the_job_and_a_finished_job_exits_2(run: Any, client: JobsClient) -> None:
    pending = client.submit("sleep", {"seconds": 20}).job_id
    code, out, _ = run("cancel", pending, "--json")
    assert code == EXIT_OK and json.loads(out)["cancel_requested"] is True
    done = client.submit("echo", {}).job_id
    client.wait(done, timeout=20)
    code, _, err = run("cancel", done)
    assert code == EXIT_USAGE and "409" in err


def test_submit_a_params_file_submits_one_job_per_line_and_names_refused_lines(
    run: Any, tmp_path: Path, client: JobsClient
) -> None:
    # Given a JSON Lines file of three echo jobs' params and one sleep too long
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"n": 1}\n{"n": 2}\n\n{"n": 3}\n')
    # When it is submitted / Then each job's id is printed, in order, and all exist
    code, out, err = run("submit", "echo", "--params-file", str(path))
    assert code == EXIT_OK and "submitted 3 of 3 echo jobs" in err
    ids = out.split()
    assert [client.get(job_id).type for job_id in ids] == ["echo"] * 3
    # And a file with a refused line exits 2, naming the line, with the others submitted
    path.write_text('{"seconds": 0}\n{"seconds": 99}\n')
    code, out, err = run("submit", "sleep", "--params-file", str(path), "--json")
    results = json.loads(out)["results"]
    assert code == EXIT_USAGE and [r["status"] for r in results] == [202, 422]
    assert "line 2:" in err and "seconds" in err


def test_a_params_file_sent_again_with_a_key_makes_no_second_job(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"n": 1}\n{"n": 2}\n')
    first = run("submit", "echo", "--params-file", str(path), "--idempotency-key", "nightly")
    again = run("submit", "echo", "--params-file", str(path), "--idempotency-key", "nightly")
    assert first[0] == again[0] == EXIT_OK and first[1] == again[1]


def test_list_shows_the_newest_jobs_first_filtered(run: Any, client: JobsClient) -> None:
    # Given two sleep jobs, one cancelled
    kept = client.submit("sleep", {"seconds": 0}).job_id
    cancelled = client.submit("sleep", {"seconds": 20}).job_id
    client.cancel(cancelled)
    client.wait(cancelled, timeout=15)
    client.wait(kept, timeout=15)
    # When the cancelled sleep jobs are listed / Then that job is shown, and not the other
    code, out, _ = run("list", "--type", "sleep", "--status", "cancelled", "--json")
    assert code == EXIT_OK
    listed = [job["job_id"] for job in json.loads(out)["jobs"]]
    assert cancelled in listed and kept not in listed
    # And as text, a table with the newest first, at most --limit rows
    code, out, _ = run("list", "--type", "sleep", "--limit", "1")
    lines = out.splitlines()
    assert code == EXIT_OK and lines[0].startswith("JOB") and len(lines) == 2
    assert lines[1].split()[0] == cancelled
    # And an unknown status is a usage error naming the known ones
    code, _, err = run("list", "--status", "done")
    assert code == EXIT_USAGE and "succeeded" in err
