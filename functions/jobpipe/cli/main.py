"""`jobpipe`: submit and watch jobs and workflows, read the dead-letter queue and replay it, run
the local stack.

Exit codes (for scripts):
  0  done (and, for --wait / wait, the job or workflow succeeded)
  1  the job (or workflow) failed
  2  usage: bad arguments, or the API refused the request (400, 409, 413, 422)
  3  no such job or workflow (404)
  4  the target: cannot connect, wrong URL, no credentials, access denied, server error
  5  timed out waiting
  6  the job (or workflow) was cancelled (for --wait / wait)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

if TYPE_CHECKING:
    from jobpipe.cli.target import Target
    from jobpipe.client import ApiError, JobInfo, WorkflowInfo, WorkflowNode
    from jobpipe.ops.dlq import DeadLetterQueue, ReplayFilter

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_TARGET = 4
EXIT_TIMEOUT = 5
EXIT_CANCELLED = 6

DEFAULT_WAIT_TIMEOUT = 300.0
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class UsageError(Exception):
    """Bad command-line input (exit 2)."""


# --- argument parsing --------------------------------------------------------------------------


def _duration(text: str) -> float:
    """`90`, `90s`, `15m`, `2h`, `3d` → seconds."""
    text = text.strip().lower()
    unit = _DURATION_UNITS.get(text[-1:])
    number = text[:-1] if unit is not None else text
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 15m, 2h)") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a duration cannot be negative")
    return value


_Number = TypeVar("_Number", int, float)


def _positive(kind: Callable[[str], _Number]) -> Callable[[str], _Number]:
    """An argparse `type` that parses with `kind` and refuses zero and negatives."""

    def parse(text: str) -> _Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError("must be positive")
        return value

    return parse


_positive_int = _positive(int)
_positive_float = _positive(float)


def _target_options(parser: argparse.ArgumentParser, *, inherited: bool) -> None:
    """The options every command takes, before or after the command name."""
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if inherited else {}
    group = parser.add_argument_group("target and output")
    group.add_argument(
        "--url", help="the API's URL (default: $JOBPIPE_URL, else the local stack)", **default
    )
    group.add_argument(
        "--stack", help="a deployed stack's name: its CloudFormation outputs", **default
    )
    group.add_argument("--region", help="AWS region (default: your AWS configuration)", **default)
    group.add_argument("--profile", help="AWS profile", **default)
    group.add_argument("--json", action="store_true", help="machine-readable output", **default)


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--type",
        dest="job_types",
        action="append",
        default=[],
        metavar="TYPE",
        help="only this job type (repeatable)",
    )
    parser.add_argument(
        "--error-type",
        dest="error_types",
        action="append",
        default=[],
        metavar="ERROR",
        help="only this error type, e.g. TransientJobError (repeatable)",
    )
    parser.add_argument(
        "--job-id",
        dest="job_ids",
        action="append",
        default=[],
        metavar="ID",
        help="only this job (repeatable)",
    )
    parser.add_argument(
        "--min-age", type=_duration, metavar="AGE", help="only messages at least this old (15m)"
    )
    parser.add_argument(
        "--max-age", type=_duration, metavar="AGE", help="only messages at most this old (2h)"
    )
    parser.add_argument("--limit", type=_positive_int, metavar="N", help="at most N messages")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobpipe",
        description="Submit and watch jobs, manage the dead-letter queue, run the local stack.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _target_options(parser, inherited=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _target_options(sub, inherited=True)
        return sub

    submit = command("submit", "submit a job (and, with --wait, watch it to the end)")
    submit.add_argument("type", help="the job type")
    submit.add_argument("pairs", nargs="*", metavar="KEY=VALUE", help="params (VALUE may be JSON)")
    submit.add_argument("--params", help="params as a JSON object")
    submit.add_argument(
        "--params-file",
        metavar="FILE",
        help="submit one job per line of FILE (JSON Lines: each line a params object; - for "
        "stdin), 100 a request",
    )
    submit.add_argument(
        "--idempotency-key",
        help="same key and body: the same job (with --params-file, line N's key is KEY:N, so "
        "the same file sent again makes no second job)",
    )
    later = submit.add_mutually_exclusive_group()
    later.add_argument(
        "--delay",
        type=_duration,
        metavar="DURATION",
        help="run it this long from now (90s, 15m, 2h, 30d; at most a year): it is scheduled "
        "until then",
    )
    later.add_argument(
        "--run-at",
        metavar="TIME",
        help="run it at this time: RFC 3339 with an offset (2026-05-01T09:00:00+02:00, or Z)",
    )
    submit.add_argument("--wait", action="store_true", help="poll until the job ends")
    submit.add_argument("--timeout", type=_positive_float, default=DEFAULT_WAIT_TIMEOUT)

    listing = command("list", "list your jobs, newest first")
    listing.add_argument(
        "--status", action="append", help="only jobs in this state (repeat for several)"
    )
    listing.add_argument("--type", dest="job_type", help="only jobs of this type")
    listing.add_argument(
        "--limit", type=_positive_int, default=20, metavar="N", help="at most N jobs (default 20)"
    )

    status = command("status", "show a job")
    status.add_argument("job_id")

    wait = command("wait", "poll a job until it ends")
    wait.add_argument("job_id")
    wait.add_argument("--timeout", type=_positive_float, default=DEFAULT_WAIT_TIMEOUT)

    cancel = command(
        "cancel",
        "cancel a job: at once if it is not running, else ask it to stop (it ends cancelled "
        "when its code next checks)",
    )
    cancel.add_argument("job_id")

    workflow = command("workflow", "workflows: chains, groups and chords of jobs")
    flows = workflow.add_subparsers(dest="workflow_command", required=True, metavar="COMMAND")

    def flow_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = flows.add_parser(name, help=help_text, description=help_text)
        _target_options(sub, inherited=True)
        return sub

    flow_submit = flow_command(
        "submit", "submit a workflow from a JSON file (and, with --wait, watch it to the end)"
    )
    flow_submit.add_argument("file", help='the tree as JSON ({"chain": [...]}, ...); - for stdin')
    flow_submit.add_argument("--idempotency-key", help="same key and body: the same workflow")
    flow_submit.add_argument("--wait", action="store_true", help="poll until the workflow ends")
    flow_submit.add_argument("--timeout", type=_positive_float, default=DEFAULT_WAIT_TIMEOUT)
    flow_status = flow_command("status", "show a workflow's tree and each step's status")
    flow_status.add_argument("workflow_id")
    flow_wait = flow_command("wait", "poll a workflow until it ends")
    flow_wait.add_argument("workflow_id")
    flow_wait.add_argument("--timeout", type=_positive_float, default=DEFAULT_WAIT_TIMEOUT)
    flow_cancel = flow_command("cancel", "cancel every step of a workflow not yet finished")
    flow_cancel.add_argument("workflow_id")

    command(
        "schedules",
        "list the recurring schedules the job types declare, with their next firing "
        "(the stack deploys the same; paused ones with -c pausedSchedules=...)",
    )

    dlq = command("dlq", "the dead-letter queue")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")
    dlq_list = dlq_commands.add_parser("list", help="list dead-lettered jobs")
    _target_options(dlq_list, inherited=True)
    _filter_options(dlq_list)
    replay = dlq_commands.add_parser(
        "replay",
        help="send dead-lettered jobs back to the queue with fresh attempts",
        description="Reset each matching job to pending with fresh attempts, send its message to "
        "the jobs queue, then delete it from the DLQ. Jobs that already succeeded are only "
        "deleted. Safe to run twice.",
    )
    _target_options(replay, inherited=True)
    _filter_options(replay)
    replay.add_argument("--rate", type=_positive_float, help="at most this many messages a second")
    replay.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    replay.add_argument(
        "--method",
        choices=("auto", "receive", "move-task"),
        default="auto",
        help="move-task: SQS StartMessageMoveTask (AWS, no filter); receive: one by one; "
        "auto: move-task when it can (default)",
    )

    ui = command(
        "ui",
        "serve the operator's dashboard for a stack on this machine (every owner's jobs, "
        "cancel, the DLQ and replay), with your AWS credentials",
    )
    ui.add_argument(
        "--port", type=int, default=None, help="the port on 127.0.0.1 (default 8001; 0: any)"
    )

    local = command("local", "run the whole pipeline on this machine")
    local.add_argument(
        "--port",
        type=int,
        default=None,
        help="the API's port (default: $JOBPIPE_PORT, else 8000)",
    )
    local.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="worker processes, each running one batch at a time as a Lambda does "
        "(default: $JOBPIPE_LOCAL_WORKERS, else 2)",
    )
    return parser


# --- output ------------------------------------------------------------------------------------


class Output:
    def __init__(self, as_json: bool, out: TextIO, err: TextIO) -> None:
        self.as_json = as_json
        self.out = out
        self.err = err

    def data(self, value: Any) -> None:
        print(json.dumps(value, indent=2, sort_keys=False, default=str), file=self.out)

    def text(self, line: str = "") -> None:
        print(line, file=self.out)

    def note(self, line: str) -> None:
        print(line, file=self.err, flush=True)

    def error(self, error_type: str, message: str, code: int) -> int:
        print(f"jobpipe: error: {message}", file=self.err)
        if self.as_json:
            self.data({"error": {"type": error_type, "message": message, "exit_code": code}})
        return code


def _job_lines(job: JobInfo) -> list[str]:
    lines = [
        f"job        {job.job_id}",
        f"type       {job.type}",
        f"status     {job.status}  (attempt {job.attempts} of {job.max_attempts})",
        f"created    {job.created_at}",
    ]
    if job.run_at:
        lines.append(f"runs at    {job.run_at}")
    if job.started_at:
        lines.append(f"started    {job.started_at}")
    if job.completed_at:
        lines.append(f"completed  {job.completed_at}")
    if job.next_attempt_at:
        lines.append(f"next try   {job.next_attempt_at}")
    if job.replays:
        lines.append(f"replays    {job.replays}")
    if job.cancel_requested and not job.cancelled:
        lines.append("cancel     asked for: it stops when its code next checks")
    if job.progress is not None:
        lines.append(f"progress   {_progress_text(job)}")
    for failure in job.errors:
        lines.append(
            f"attempt {failure.attempt:<3}{failure.type}: {failure.message}  ({failure.at})"
        )
    if job.dead_lettered:
        lines.append("dead-lettered: yes (replay it with `jobpipe dlq replay --job-id ID`)")
    if job.succeeded:
        lines.append(f"result     {json.dumps(job.result)}")
    if job.error is not None:
        lines.append(f"error      {job.error.type}: {job.error.message}")
    return lines


def _show_job(output: Output, job: JobInfo) -> None:
    if output.as_json:
        output.data(job.to_dict())
    else:
        for line in _job_lines(job):
            output.text(line)


BAR_WIDTH = 24


def _progress_text(job: JobInfo) -> str:
    """`[#########...............]  40/100  resizing` (no bar without a total)."""
    progress = job.progress
    assert progress is not None
    fraction = progress.fraction
    bar = ""
    if fraction is not None:
        filled = round(fraction * BAR_WIDTH)
        bar = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
    amount = f"{progress.current:g}" + (f"/{progress.total:g}" if progress.total else "")
    return f"{bar}{amount}" + (f"  {progress.message}" if progress.message else "")


class Progress:
    """Live lines while waiting: each change of status or attempt, with the time since the
    start, and the job's own progress as a bar. Polling may miss a quick retry; the attempt
    counter does not, so a failed attempt that was not seen is still reported."""

    def __init__(self, output: Output, clock: Callable[[], float] = time.monotonic) -> None:
        self._output = output
        self._clock = clock
        self._started = clock()
        self._last: tuple[str, int] | None = None
        self._failed_reported: set[int] = set()
        self._last_progress: str | None = None

    def __call__(self, job: JobInfo) -> None:
        if self._output.as_json:
            return
        elapsed = f"{self._clock() - self._started:6.1f}s"
        self._progress(elapsed, job)
        # Attempts before the current one failed (a retrying job's own failure is its line).
        for attempt in range(1, job.attempts):
            if attempt not in self._failed_reported:
                self._failed_reported.add(attempt)
                self._output.note(f"{elapsed}  attempt {attempt} failed, retried")
        if (job.status, job.attempts) == self._last:
            return
        self._last = (job.status, job.attempts)
        line = f"{elapsed}  {job.status:<10}"
        if job.attempts:
            line += f" attempt {job.attempts}/{job.max_attempts}"
        if job.status == "retrying":
            self._failed_reported.add(job.attempts)
            line += " failed"
            line += f"; next attempt at {job.next_attempt_at}" if job.next_attempt_at else ""
        if job.cancel_requested and job.status == "running":
            line += ", asked to cancel"
        self._output.note(line.rstrip())

    def _progress(self, elapsed: str, job: JobInfo) -> None:
        if job.progress is None or job.is_terminal:
            return
        text = _progress_text(job)
        if text != self._last_progress:
            self._last_progress = text
            self._output.note(f"{elapsed}  {'progress':<10} {text}")


def _finish(output: Output, job: JobInfo) -> int:
    _show_job(output, job)
    if job.cancelled:
        return EXIT_CANCELLED
    return EXIT_OK if job.succeeded else EXIT_JOB_FAILED


# --- commands ----------------------------------------------------------------------------------


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.params:
        try:
            parsed = json.loads(args.params)
        except ValueError as error:
            raise UsageError(f"--params is not JSON: {error}") from None
        if not isinstance(parsed, dict):
            raise UsageError("--params must be a JSON object")
        params.update(parsed)
    for pair in args.pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"params are KEY=VALUE, got {pair!r}")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def cmd_submit(args: argparse.Namespace, target: Target, output: Output) -> int:
    params = _params(args)
    client = target.client()
    submitted = client.submit(
        args.type,
        params,
        idempotency_key=args.idempotency_key,
        delay_seconds=args.delay,
        run_at=args.run_at,
    )
    if not args.wait:
        if output.as_json:
            output.data(submitted.to_dict())
        else:
            output.text(submitted.job_id)
            output.note(f"submitted {submitted.type} job, {submitted.status}: {submitted.poll_url}")
            if submitted.run_at:
                output.note(f"it runs at {submitted.run_at}")
        return EXIT_OK
    output.note(f"submitted {submitted.type} job {submitted.job_id}")
    job = client.wait(submitted.job_id, timeout=args.timeout, on_update=Progress(output))
    return _finish(output, job)


def _params_file(path: str) -> list[dict[str, Any]]:
    """The params of each job in a JSON Lines file (blank lines skipped)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read --params-file: {error.strerror or error}") from None
    jobs: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except ValueError as error:
            raise UsageError(f"--params-file line {number} is not JSON: {error}") from None
        if not isinstance(parsed, dict):
            raise UsageError(f"--params-file line {number} is not a JSON object")
        jobs.append(parsed)
    if not jobs:
        raise UsageError("--params-file holds no jobs")
    return jobs


def cmd_submit_many(args: argparse.Namespace, target: Target, output: Output) -> int:
    from jobpipe.client import BatchJob, SubmittedJob

    if args.wait or args.params or args.pairs:
        raise UsageError("--params-file takes no --wait, --params or KEY=VALUE")
    lines = _params_file(args.params_file)
    key = args.idempotency_key
    answers = target.client().submit_many(
        BatchJob(args.type, params, f"{key}:{n}" if key else None)
        for n, params in enumerate(lines, start=1)
    )
    results: list[dict[str, Any]] = []
    for number, answer in enumerate(answers, start=1):
        if isinstance(answer, SubmittedJob):
            results.append({"line": number, "status": 202, "job": answer.to_dict()})
            if not output.as_json:
                output.text(answer.job_id)
        else:
            error = {"type": answer.error_type, "message": _api_error_exit(answer)[1]}
            results.append({"line": number, "status": answer.status, "error": error})
            output.note(f"line {number}: {error['message']}")
    refused = [r for r in results if "error" in r]
    if output.as_json:
        output.data({"results": results})
    else:
        output.note(f"submitted {len(results) - len(refused)} of {len(results)} {args.type} jobs")
    if any(r["status"] >= 500 for r in refused):
        return EXIT_TARGET
    return EXIT_USAGE if refused else EXIT_OK


def cmd_list(args: argparse.Namespace, target: Target, output: Output) -> int:
    client = target.client()
    jobs: list[JobInfo] = []
    cursor: str | None = None
    for page in client.list(status=args.status, job_type=args.job_type, limit=min(args.limit, 100)):
        jobs.extend(page.jobs[: args.limit - len(jobs)])
        cursor = page.next_cursor
        if len(jobs) >= args.limit:
            break
    if output.as_json:
        output.data({"jobs": [job.to_dict() for job in jobs], "next_cursor": cursor})
        return EXIT_OK
    if not jobs:
        output.note("no jobs")
        return EXIT_OK
    output.text(f"{'JOB':<26}  {'TYPE':<16}  {'STATUS':<10}  {'ATTEMPTS':>8}  CREATED")
    for job in jobs:
        output.text(
            f"{job.job_id:<26}  {job.type[:16]:<16}  {job.status:<10}  "
            f"{f'{job.attempts}/{job.max_attempts}':>8}  {job.created_at}"
        )
    if cursor is not None:
        output.note(f"more jobs: --limit {args.limit + 20} shows more")
    return EXIT_OK


def cmd_ui(args: argparse.Namespace, target: Target, output: Output) -> int:
    from jobpipe.ops.dashboard.server import DEFAULT_UI_PORT, dashboard_for, serve, url_of

    port = DEFAULT_UI_PORT if args.port is None else args.port
    try:
        server = serve(dashboard_for(target), port)
    except OSError as error:
        raise UsageError(f"cannot serve on port {port}: {error.strerror or error}") from None
    url = url_of(server)
    if output.as_json:
        output.data({"url": url})
    else:
        output.text(url)
    output.note(f"dashboard for {target.source} at {url} (Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        output.note("stopped")
    finally:
        server.server_close()
    return EXIT_OK


def cmd_status(args: argparse.Namespace, target: Target, output: Output) -> int:
    _show_job(output, target.client().get(args.job_id))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, target: Target, output: Output) -> int:
    job = target.client().cancel(args.job_id)
    _show_job(output, job)
    if not output.as_json and job.status == "running":
        output.note("asked to cancel: the job stops when its code next checks")
    return EXIT_OK


def cmd_wait(args: argparse.Namespace, target: Target, output: Output) -> int:
    job = target.client().wait(args.job_id, timeout=args.timeout, on_update=Progress(output))
    return _finish(output, job)


def cmd_schedules(output: Output, now: float | None = None) -> int:
    """The recurring schedules of the job types this machine loads (`JOBPIPE_JOB_TYPES`), as
    the stack deploys them, each with its next firing (a rate counts from when it was
    deployed: not known here)."""
    from datetime import UTC, datetime

    from jobpipe.domain.registry import load_job_types
    from jobpipe.domain.schedule import ENV_PAUSED, definition, next_firing, paused_names

    schedules = load_job_types().schedules
    paused = paused_names(os.environ.get(ENV_PAUSED), schedules)
    after = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
    rows: list[dict[str, Any]] = []
    for schedule in sorted(schedules.values(), key=lambda s: s.name):
        deployed = definition(schedule, paused=schedule.name in paused)
        upcoming = next_firing(deployed.expression, deployed.timezone, after)
        rows.append(
            {
                "name": schedule.name,
                "type": schedule.job_type,
                "expression": deployed.expression,
                "timezone": deployed.timezone,
                "params": schedule.params,
                "owner": schedule.owner,
                "paused": not deployed.enabled,
                "next_firing": upcoming.isoformat() if upcoming and deployed.enabled else None,
            }
        )
    if output.as_json:
        output.data(rows)
        return EXIT_OK
    if not rows:
        output.note("no recurring schedules are declared (see the README: Recurring jobs)")
        return EXIT_OK
    output.text(f"{'NAME':<20}  {'TYPE':<12}  {'WHEN':<34}  NEXT FIRING")
    for row in rows:
        when = f"{row['expression']} {row['timezone']}"
        shown = (
            "paused"
            if row["paused"]
            else row["next_firing"] or "every interval from when it was deployed"
        )
        output.text(f"{row['name']:<20}  {row['type']:<12}  {when:<34}  {shown}")
    output.note(f"{len(rows)} schedule(s); their jobs are owned by schedule:<name> unless declared")
    return EXIT_OK


def _dead_letter_queue(target: Target) -> DeadLetterQueue:
    from jobpipe.adapters.dynamodb import DynamoDBJobStore
    from jobpipe.ops.dlq import DeadLetterQueue

    target = target.with_queues()
    assert target.table_name and target.queue_url and target.dlq_url
    return DeadLetterQueue.on_sqs(
        target.sqs(),
        DynamoDBJobStore(target.table_name, client=target.dynamodb()),
        dlq_url=target.dlq_url,
        queue_url=target.queue_url,
        # SQS needs a long poll to be sure a queue is empty; moto answers from one place.
        wait_seconds=0 if target.local else 1,
    )


def _filter(args: argparse.Namespace) -> ReplayFilter:
    from jobpipe.ops.dlq import ReplayFilter

    return ReplayFilter(
        job_types=frozenset(args.job_types),
        error_types=frozenset(args.error_types),
        job_ids=frozenset(i.upper() for i in args.job_ids),
        min_age_seconds=args.min_age,
        max_age_seconds=args.max_age,
    )


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def cmd_dlq_list(args: argparse.Namespace, target: Target, output: Output) -> int:
    letters = _dead_letter_queue(target).list_messages(_filter(args), args.limit)
    now = time.time()
    if output.as_json:
        output.data([letter.to_dict(now) for letter in letters])
        return EXIT_OK
    if not letters:
        output.note(
            "the dead-letter queue is empty"
            + ("" if _filter(args).is_empty else " (for this filter)")
        )
        return EXIT_OK
    output.text(f"{'JOB ID':<26}  {'TYPE':<10}  {'ATTEMPTS':>8}  {'AGE':>6}  ERROR")
    for letter in letters:
        error = f"{letter.error_type or '-'}: {letter.error_message or ''}".rstrip(": ")
        output.text(
            f"{letter.job_id or '(none)':<26}  {letter.job_type or '-':<10}  "
            f"{letter.attempts if letter.attempts is not None else '-':>8}  "
            f"{_age(letter.age_seconds(now)):>6}  {error}"
        )
    output.note(f"{len(letters)} message(s)")
    return EXIT_OK


# What a dry run says for each action a replay would take (the others take none).
_PLANNED = {
    "replayed": "would replay",
    "requeued": "would requeue",
    "already_succeeded": "would delete",
}


def _planned(action: str) -> str:
    return _PLANNED.get(action, action)


def cmd_dlq_replay(args: argparse.Namespace, target: Target, output: Output) -> int:
    where = _filter(args)
    method = args.method
    if method == "auto":
        method = (
            "move-task" if not target.local and where.is_empty and not args.limit else "receive"
        )
    if method == "move-task" and (not where.is_empty or args.limit):
        raise UsageError("--method move-task moves everything: it takes no filter and no --limit")
    if method == "move-task" and target.local:
        raise UsageError("the local stack (moto) has no message move tasks: use --method receive")
    dlq = _dead_letter_queue(target)
    if method == "move-task":
        report = dlq.replay_with_move_task(rate=args.rate, dry_run=args.dry_run)
    else:
        report = dlq.replay(where, limit=args.limit, rate=args.rate, dry_run=args.dry_run)
    if output.as_json:
        output.data(report.to_dict())
        return EXIT_OK
    if report.dry_run:
        output.note("dry run: nothing is changed")
    for outcome in report.outcomes:
        action = _planned(outcome.action.value) if report.dry_run else outcome.action.value
        output.text(
            f"{outcome.job_id or '(none)':<26}  {outcome.job_type or '-':<10}  "
            f"{action:<17}  {outcome.detail}"
        )
    if report.dry_run:
        counts = ", ".join(f"{_planned(a)} {n}" for a, n in report.counts().items() if n)
    else:
        counts = ", ".join(f"{n} {action}" for action, n in report.counts().items() if n)
    summary = f"{'dry run: ' if report.dry_run else ''}{counts or 'nothing to replay'}"
    if report.task_handle:
        summary += f"; SQS move task started: {report.task_handle}"
    output.note(summary)
    return EXIT_OK


def _env_workers() -> int:
    from jobpipe.local.stack import DEFAULT_WORKERS

    raw = os.environ.get("JOBPIPE_LOCAL_WORKERS", "")
    try:
        return max(1, int(raw)) if raw else DEFAULT_WORKERS
    except ValueError:
        raise UsageError(f"JOBPIPE_LOCAL_WORKERS must be a number, got {raw!r}") from None


def cmd_local(args: argparse.Namespace, output: Output) -> int:
    # Before the handlers (and Powertools) are imported: tracing off, metrics not printed, the
    # transitions logged.
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO")
    import signal
    import threading
    import warnings

    # A rejected request emits no metric; Powertools warns about the empty flush.
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    from jobpipe.errors import ConfigurationError
    from jobpipe.local.address import port_from_env
    from jobpipe.local.console import banner, use_console_format
    from jobpipe.local.stack import LocalStack

    try:
        port = args.port if args.port is not None else port_from_env()
    except ConfigurationError as error:
        return output.error("UsageError", str(error), EXIT_USAGE)
    use_console_format()
    workers = args.workers or _env_workers()
    stack = LocalStack(port=port, workers=workers, console=True)
    try:
        stack.start()
    except (OSError, SystemExit) as error:
        # werkzeug exits (after saying why) when the port is taken.
        reason = getattr(error, "strerror", None) or "the port is in use"
        return output.error(
            "PortInUse",
            f"cannot serve on 127.0.0.1:{port}: {reason} (pass --port or set JOBPIPE_PORT)",
            EXIT_TARGET,
        )
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stopping.set()
        # A second Ctrl-C does not wait for the worker's batch.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    banner(stack.config, output.out)
    while not stopping.wait(0.5):
        pass
    output.note("\nstopping (the worker finishes its batch)...")
    stack.stop()
    output.note("stopped")
    return EXIT_OK


def _tree_lines(node: WorkflowNode, depth: int = 0) -> list[str]:
    """The tree, one node a line: `chain  running`, then its nodes indented."""
    indent = "  " * depth
    if node.kind == "step":
        return [f"{indent}{node.type or '?':<16} {node.status:<10} {node.job_id or ''}".rstrip()]
    flag = "  (continue on failure)" if node.continue_on_failure else ""
    lines = [f"{indent}{node.kind:<16} {node.status}{flag}"]
    if node.kind == "chord":
        lines.append(f"{indent}  header")
        for child in node.nodes:
            lines.extend(_tree_lines(child, depth + 2))
        if node.body is not None:
            lines.append(f"{indent}  body")
            lines.extend(_tree_lines(node.body, depth + 2))
        return lines
    for child in node.nodes:
        lines.extend(_tree_lines(child, depth + 1))
    return lines


def _workflow_lines(workflow: WorkflowInfo) -> list[str]:
    lines = [
        f"workflow   {workflow.workflow_id}",
        f"status     {workflow.status}  ({workflow.members} steps)",
        f"created    {workflow.created_at}",
    ]
    if workflow.completed_at:
        lines.append(f"completed  {workflow.completed_at}")
    lines.extend(_tree_lines(workflow.tree))
    if workflow.succeeded:
        if workflow.result_omitted:
            lines.append(f"result     not shown: {workflow.result_omitted}")
        else:
            lines.append(f"result     {json.dumps(workflow.result)}")
    if workflow.error is not None:
        error = workflow.error
        lines.append(
            f"error      {error.type}: {error.message}  (step {error.path}, job {error.job_id})"
        )
    return lines


def _show_workflow(output: Output, workflow: WorkflowInfo) -> None:
    if output.as_json:
        output.data(workflow.to_dict())
    else:
        for line in _workflow_lines(workflow):
            output.text(line)


class WorkflowProgress:
    """Live lines while waiting: each step's change of status, with the time since the start."""

    def __init__(self, output: Output, clock: Callable[[], float] = time.monotonic) -> None:
        self._output = output
        self._clock = clock
        self._started = clock()
        self._seen: dict[str, str] = {}

    def __call__(self, workflow: WorkflowInfo) -> None:
        if self._output.as_json:
            return
        elapsed = f"{self._clock() - self._started:6.1f}s"
        for node in workflow.tree.steps():
            if self._seen.get(node.path) != node.status:
                self._seen[node.path] = node.status
                label = f"{node.path} {node.type or ''}".strip()
                self._output.note(f"{elapsed}  {node.status:<10} {label}")


def _finish_workflow(output: Output, workflow: WorkflowInfo) -> int:
    _show_workflow(output, workflow)
    if workflow.cancelled:
        return EXIT_CANCELLED
    return EXIT_OK if workflow.succeeded else EXIT_JOB_FAILED


def _read_tree(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        tree = json.loads(text)
    except ValueError as error:
        raise UsageError(f"{path} is not JSON: {error}") from None
    if not isinstance(tree, dict):
        raise UsageError(f'{path} must hold a JSON object: {{"chain": [...]}}, a group or a chord')
    return tree


def cmd_workflow(args: argparse.Namespace, target: Target, output: Output) -> int:
    client = target.client()
    command = args.workflow_command
    if command == "submit":
        tree = _read_tree(args.file)
        workflow = client.submit_workflow(tree, idempotency_key=args.idempotency_key)
        if not args.wait:
            if output.as_json:
                output.data(workflow.to_dict())
            else:
                output.text(workflow.workflow_id)
                output.note(f"submitted a workflow of {workflow.members} steps, {workflow.status}")
            return EXIT_OK
        output.note(f"submitted workflow {workflow.workflow_id} ({workflow.members} steps)")
        progress = WorkflowProgress(output)
        progress(workflow)
        workflow = client.wait_workflow(
            workflow.workflow_id, timeout=args.timeout, on_update=progress
        )
        return _finish_workflow(output, workflow)
    if command == "status":
        _show_workflow(output, client.get_workflow(args.workflow_id))
        return EXIT_OK
    if command == "wait":
        workflow = client.wait_workflow(
            args.workflow_id, timeout=args.timeout, on_update=WorkflowProgress(output)
        )
        return _finish_workflow(output, workflow)
    _show_workflow(output, client.cancel_workflow(args.workflow_id))
    return EXIT_OK


# --- errors → exit codes -----------------------------------------------------------------------


def _api_error_exit(error: ApiError) -> tuple[int, str]:
    status = error.status
    # API Gateway's own 404 ({"message": ...}) and the functions' unknown route mean a wrong URL.
    if status == 404 and error.error_type not in ("HTTP", "NotFound"):
        return EXIT_NOT_FOUND, error.message
    if status in (400, 409, 413, 422):
        message = error.message
        body = error.body if isinstance(error.body, dict) else {}
        fields = (body.get("error") or {}).get("fields") or []
        if fields:
            message += " (" + "; ".join(f"{f.get('loc')}: {f.get('msg')}" for f in fields) + ")"
        return EXIT_USAGE, f"the API refused the request ({status} {error.error_type}): {message}"
    if status == 404:
        return EXIT_TARGET, "no such route: is the URL the jobs API's base URL?"
    if status in (401, 403):
        return (
            EXIT_TARGET,
            f"access denied ({status}: {error.message}): check your AWS credentials, region, "
            "and that your identity may call the API (execute-api:Invoke)",
        )
    return EXIT_TARGET, f"the API answered {status} {error.error_type}: {error.message}"


def _unreachable_hint(target: Target | None) -> str:
    """What to check when the target did not answer: for the local stack, that it runs, and
    where the CLI looked for it."""
    if target is None or not target.local:
        return ""
    if target.source != "default":
        return " (is `make local` running?)"
    return (
        " (is `make local` running? On another port, set JOBPIPE_PORT to that port here too: "
        "the CLI looks where `jobpipe local` would serve)"
    )


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """The console script. Returns the exit code (see the module docstring)."""
    parser = build_parser()
    # KEY=VALUE params may come after options (`submit echo --wait a=1`), which argparse does not
    # collect into a positional list by itself.
    args, extra = parser.parse_known_args(argv)
    if args.command == "submit":
        pairs = [item for item in extra if "=" in item and not item.startswith("-")]
        args.pairs = [*args.pairs, *pairs]
        extra = [item for item in extra if item not in pairs]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    output = Output(bool(args.json), out or sys.stdout, err or sys.stderr)
    from jobpipe.cli.target import TargetError, resolve
    from jobpipe.client import (
        ApiError,
        ConnectionFailedError,
        CredentialsError,
        JobInfo,
        WaitTimeoutError,
    )

    target: Target | None = None
    try:
        if args.command == "local":
            return cmd_local(args, output)
        if args.command == "schedules":
            return cmd_schedules(output)
        if args.url and args.stack:
            raise UsageError("pass either --url or --stack, not both")
        target = resolve(args.url, args.stack, args.region, args.profile)
        if args.command == "submit" and args.params_file is not None:
            return cmd_submit_many(args, target, output)
        if args.command == "submit":
            return cmd_submit(args, target, output)
        if args.command == "list":
            return cmd_list(args, target, output)
        if args.command == "ui":
            return cmd_ui(args, target, output)
        if args.command == "status":
            return cmd_status(args, target, output)
        if args.command == "wait":
            return cmd_wait(args, target, output)
        if args.command == "cancel":
            return cmd_cancel(args, target, output)
        if args.command == "workflow":
            return cmd_workflow(args, target, output)
        if args.dlq_command == "list":
            return cmd_dlq_list(args, target, output)
        return cmd_dlq_replay(args, target, output)
    except UsageError as error:
        return output.error("UsageError", str(error), EXIT_USAGE)
    except ApiError as error:
        code, message = _api_error_exit(error)
        return output.error(error.error_type, message, code)
    except WaitTimeoutError as error:
        if not output.as_json:
            shown = error.job
            lines = _job_lines(shown) if isinstance(shown, JobInfo) else _workflow_lines(shown)
            for line in lines:
                output.note(line)
        return output.error("WaitTimeoutError", str(error), EXIT_TIMEOUT)
    except ConnectionFailedError as error:
        return output.error(
            "ConnectionFailedError", f"{error}{_unreachable_hint(target)}", EXIT_TARGET
        )
    except (CredentialsError, TargetError) as error:
        return output.error(type(error).__name__, str(error), EXIT_TARGET)
    except KeyboardInterrupt:
        output.note("interrupted")
        return 130
    except Exception as error:
        # AWS SDK errors (botocore) reaching the queues or the table.
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        if isinstance(error, NoCredentialsError):
            return output.error("CredentialsError", str(error), EXIT_TARGET)
        if isinstance(error, ClientError | BotoCoreError):
            return output.error("AwsError", str(error), EXIT_TARGET)
        from jobpipe.ops.dlq import DlqError

        if isinstance(error, DlqError):
            return output.error(type(error).__name__, str(error), EXIT_TARGET)
        raise


if __name__ == "__main__":
    sys.exit(main())
