"""`jobpipe local` as a user runs it: a separate process that serves the API, logs each job
transition, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

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
