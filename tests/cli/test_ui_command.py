"""`jobpipe ui`: the dashboard served on this machine for a stack's table and queues, with the
caller's credentials (here the local stack's, found the way `jobpipe dlq` finds them)."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request

import pytest

from jobpipe.cli.main import EXIT_USAGE, main
from jobpipe.cli.target import resolve
from jobpipe.client import JobsClient
from jobpipe.local.stack import LocalStack
from jobpipe.ops.dashboard.server import dashboard_for, serve, url_of

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("local")]


def test_the_dashboard_is_served_on_loopback_for_a_stacks_table_and_queues(
    local_stack: LocalStack, client: JobsClient
) -> None:
    # Given a job on the stack, and the dashboard served for it on a free port
    job_id = client.submit("echo", {"seen": "from ui"}).job_id
    server = serve(dashboard_for(resolve(local_stack.api_url, None, None, None)), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = url_of(server)
        assert url.startswith("http://127.0.0.1:")
        # When the overview and the job's page are read
        with urllib.request.urlopen(url, timeout=30) as answer:
            overview = answer.read().decode()
        with urllib.request.urlopen(f"{url}/jobs/{job_id}", timeout=30) as answer:
            detail = answer.read().decode()
        # Then the job is listed and shown with its params
        assert job_id in overview
        assert "from ui" in detail
        # And a request naming another host (a DNS rebinding page) is refused
        request = urllib.request.Request(url, headers={"Host": "attacker.example"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
    finally:
        server.shutdown()
        server.server_close()


def test_a_port_in_use_is_a_usage_error(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["ui", "--url", local_stack.api_url, "--port", str(port)])
    assert code == EXIT_USAGE and f"cannot serve on port {port}" in capsys.readouterr().err
