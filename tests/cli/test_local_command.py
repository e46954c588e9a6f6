"""`jobpipe local` as a user runs it: a separate process that serves the API, logs each job
transition, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from jobpipe.cli.main import EXIT_OK, EXIT_USAGE, main
from jobpipe.client import JobsClient

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_jobpipe_local_serves_logs_transitions_and_stops_on_ctrl_c() -> None:
    # Given `jobpipe local` started on a free port
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "jobpipe.cli", "local", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if line.startswith("One line per job transition"):
                break
        banner = "".join(lines)
        assert f"API:      http://127.0.0.1:{port}" in banner
        assert "curl -s -X POST" in banner and "/openapi.json" in banner
        # When a job is submitted and succeeds
        client = JobsClient(f"http://127.0.0.1:{port}")
        job_id = client.submit("echo", {"hello": "world"}).job_id
        assert client.wait(job_id, timeout=30).succeeded
        # And Ctrl-C is pressed
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # Then it stopped cleanly, having logged one line per transition of the job
    assert process.returncode == 0, output
    transitions = [line for line in output.splitlines() if job_id in line]
    assert [line.split()[3] for line in transitions] == ["submit", "start", "succeeded"]
    assert output.rstrip().endswith("stopped")


def test_a_port_in_use_is_a_clear_error_with_exit_4() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = subprocess.run(
            [sys.executable, "-m", "jobpipe.cli", "local", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert finished.returncode == 4
    assert f"cannot serve on 127.0.0.1:{port}" in finished.stderr
    assert "--port" in finished.stderr


def test_jobpipe_local_serves_on_jobpipe_port_where_the_cli_looks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given `jobpipe local` started as `JOBPIPE_PORT=N make local` starts it (no --port)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "jobpipe.cli", "local"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "JOBPIPE_PORT": str(port)},
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("One line per job transition"):
                break
        # When the CLI runs with no target, in a shell with the same JOBPIPE_PORT
        monkeypatch.delenv("JOBPIPE_URL", raising=False)
        monkeypatch.setenv("JOBPIPE_PORT", str(port))
        code = main(["submit", "echo", "hello=world", "--wait", "--json"])
        # Then it reaches that stack, and the job runs there
        assert code == EXIT_OK, capsys.readouterr().err
        assert json.loads(capsys.readouterr().out)["result"] == {"hello": "world"}
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("value", ["abc", "70000"])
def test_jobpipe_local_refuses_a_jobpipe_port_that_is_not_a_port(value: str) -> None:
    # Given JOBPIPE_PORT set to something that is not a port
    # When `jobpipe local` starts
    finished = subprocess.run(
        [sys.executable, "-m", "jobpipe.cli", "local"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "JOBPIPE_PORT": value},
        check=False,
    )
    # Then it refuses with a usage error, rather than serving on 8000 where it was not asked to
    assert finished.returncode == EXIT_USAGE
    assert "JOBPIPE_PORT must be a port number" in finished.stderr
