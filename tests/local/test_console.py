"""What `jobpipe local` prints: the banner, and one line per job transition."""

from __future__ import annotations

import io
import logging

from jobpipe.local.console import ConsoleFormatter, banner
from jobpipe.local.stack import LocalConfig


def record(message: str, **fields: object) -> logging.LogRecord:
    made = logging.LogRecord("jobpipe", logging.INFO, __file__, 1, message, None, None)
    made.__dict__.update(fields)
    return made


def test_a_transition_is_one_short_line() -> None:
    line = ConsoleFormatter().format(
        record(
            "job transition",
            job_id="01M87BN90SVPKV25AG74PF6F62",
            job_type="flaky",
            transition="failed",
            status="failed",
            attempts=5,
            max_attempts=5,
            error_type="TransientJobError",
            dead_lettered=True,
        )
    )
    assert "\n" not in line
    assert line.endswith(
        "01M87BN90SVPKV25AG74PF6F62  flaky      failed    \u2192 failed    attempt 5/5  "
        "error=TransientJobError  dead-lettered"
    )


def test_other_records_keep_their_message_and_job() -> None:
    line = ConsoleFormatter().format(record("handed back", job_id="01ABC"))
    assert line.endswith("info     handed back  job_id=01ABC")


def config(port: int) -> LocalConfig:
    return LocalConfig(
        api_url=f"http://127.0.0.1:{port}",
        aws_endpoint_url="http://127.0.0.1:5000",
        region="us-east-1",
        table_name="jobpipe-jobs",
        queue_url="http://127.0.0.1:5000/123456789012/jobpipe-jobs",
        dlq_url="http://127.0.0.1:5000/123456789012/jobpipe-dlq",
    )


def test_the_banner_shows_the_api_a_curl_and_the_openapi_document() -> None:
    out = io.StringIO()
    banner(config(8000), out)
    text = out.getvalue()
    assert "API:      http://127.0.0.1:8000\n" in text
    assert "curl -s -X POST http://127.0.0.1:8000/jobs" in text
    assert "http://127.0.0.1:8000/openapi.json" in text
    assert "\n  jobpipe submit flaky" in text
    # And where the operator's dashboard is
    assert "Dashboard: http://127.0.0.1:8000/ui" in text


def test_on_another_port_the_banner_tells_the_cli_the_variable_the_stack_reads() -> None:
    # Given a stack on port 8080 / When its banner is printed
    out = io.StringIO()
    banner(config(8080), out)
    # Then it tells the CLI in another terminal JOBPIPE_PORT, which `jobpipe local` reads too
    text = out.getvalue()
    assert "export JOBPIPE_PORT=8080 where you run `jobpipe`" in text
    assert "\n  JOBPIPE_PORT=8080 jobpipe submit" in text
    assert "JOBPIPE_URL" not in text


def test_on_the_default_port_the_banner_needs_no_setting_for_the_cli() -> None:
    out = io.StringIO()
    banner(config(8000), out)
    assert "JOBPIPE_PORT" not in out.getvalue()


def test_the_banner_says_state_is_in_memory_and_job_types_need_a_restart() -> None:
    # Given the banner of a local stack
    out = io.StringIO()
    banner(config(8000), out)
    text = out.getvalue()
    # Then it says what a developer would otherwise learn by losing work: nothing survives a
    # stop, and a new job type needs one
    assert "State lives in memory (moto): jobs, queues and dead letters are gone" in text
    assert "restart this (Ctrl-C, then again) to add or change one" in text
