"""The CLI's time: `submit --delay/--run-at` against the local stack, and `jobpipe schedules`
listing the declared recurring schedules with their next firing."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from jobpipe.cli.main import EXIT_OK, EXIT_USAGE, cmd_schedules, main
from jobpipe.client import JobsClient
from jobpipe.domain.registry import Cron, Rate, Registry, job_type
from jobpipe.local.stack import LocalStack


@pytest.fixture
def run(local_stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> Any:
    def call(*args: str) -> tuple[int, str, str]:
        code = main([*args, "--url", local_stack.api_url])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


@pytest.mark.slow
@pytest.mark.xdist_group("local")
def test_submit_with_a_delay_is_scheduled_then_runs(run: Any, client: JobsClient) -> None:
    code, out, _ = run("submit", "echo", "n=1", "--delay", "1s", "--json")
    assert code == EXIT_OK
    submitted = json.loads(out)
    assert submitted["status"] == "scheduled" and submitted["run_at"]
    code, out, _ = run("status", submitted["job_id"])
    assert "runs at" in out
    code, out, _ = run("wait", submitted["job_id"], "--json")
    assert code == EXIT_OK and json.loads(out)["status"] == "succeeded"


@pytest.mark.slow
@pytest.mark.xdist_group("local")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--run-at", "2026-05-01T09:00:00"), "offset"),
        (("--delay", "400d"), "a year"),
    ],
)
def test_a_time_the_api_refuses_exits_2_naming_it(
    run: Any, args: tuple[str, ...], message: str
) -> None:
    code, _, err = run("submit", "echo", *args)
    assert code == EXIT_USAGE and message in err


def test_delay_and_run_at_together_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["submit", "echo", "--delay", "5s", "--run-at", "2026-05-01T09:00:00Z"])
    assert exited.value.code == EXIT_USAGE


class ReportParams(BaseModel):
    kind: str


def test_schedules_lists_each_with_its_next_firing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobpipe.domain import registry as registry_module
    from jobpipe.domain.schedule import ENV_PAUSED

    # Given a weekday schedule in Berlin, a rate, and a paused one
    types = Registry()

    @job_type(
        "report",
        schedules=[
            Cron("0 9 * * 1-5", tz="Europe/Berlin", params={"kind": "weekday"}),
            Rate(hours=6, params={"kind": "often"}, name="often"),
            Cron("@daily", params={"kind": "daily"}, name="daily"),
        ],
        into=types,
    )
    def report(params: ReportParams) -> None: ...

    monkeypatch.setattr(registry_module, "load_job_types", lambda: types)
    monkeypatch.setenv(ENV_PAUSED, "daily")
    from jobpipe.cli.main import Output

    # When listed on a Saturday
    saturday = datetime(2026, 3, 28, 12, tzinfo=UTC).timestamp()
    assert cmd_schedules(Output(True, sys.stdout, sys.stderr), saturday) == EXIT_OK
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    # Then the weekday one next fires on Monday 09:00 Berlin time (summer time by then)
    assert rows["report"]["expression"] == "cron(0 9 ? * MON-FRI *)"
    assert rows["report"]["next_firing"] == "2026-03-30T09:00:00+02:00"
    assert rows["report"]["owner"] == "schedule:report"
    # And a rate counts from its deployment; a paused one does not fire
    assert rows["often"]["next_firing"] is None and rows["often"]["paused"] is False
    assert rows["daily"]["paused"] is True and rows["daily"]["next_firing"] is None
