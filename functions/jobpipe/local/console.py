"""What `jobpipe local` shows in the terminal: a banner, then one short line per job transition
(the same log records the functions write as JSON on AWS, rendered for a person)."""

from __future__ import annotations

import logging
import urllib.parse
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from jobpipe.local.address import DEFAULT_PORT, local_url

if TYPE_CHECKING:
    from jobpipe.local.address import LocalConfig

# Set for the local stack's worker processes when their logs go to a person's terminal.
ENV_CONSOLE = "JOBPIPE_LOCAL_CONSOLE"
_ARROW = "\N{RIGHTWARDS ARROW}"


class ConsoleFormatter(LambdaPowertoolsFormatter):
    """Keeps the Powertools formatter's key handling (the handlers append and clear keys through
    it) and renders each record as one readable line instead of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        fields: dict[str, Any] = record.__dict__
        if "transition" in fields:
            line = (
                f"{stamp}  {fields.get('job_id')}  {fields.get('job_type', ''):<10} "
                f"{fields['transition']:<9} {_ARROW} {fields.get('status', ''):<9} "
                f"attempt {fields.get('attempts')}/{fields.get('max_attempts')}"
            )
            if fields.get("error_type") and fields.get("status") in ("retrying", "failed"):
                line += f"  error={fields['error_type']}"
            if fields.get("dead_lettered"):
                line += "  dead-lettered"
        else:
            line = f"{stamp}  {record.levelname.lower():<8} {record.getMessage()}"
            job_id = fields.get("job_id")
            if job_id:
                line += f"  job_id={job_id}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def use_console_format() -> None:
    """Render the functions' logs as console lines (the local stack only)."""
    from jobpipe.observability import logger

    logger.registered_handler.setFormatter(ConsoleFormatter())
    # The HTTP servers' access logs would drown the transitions.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def banner(config: LocalConfig, out: TextIO) -> None:
    api = config.api_url
    port = urllib.parse.urlsplit(api).port
    # The CLI in another terminal looks at port 8000 unless told otherwise, by the variable this
    # stack reads for its port.
    if api == local_url(DEFAULT_PORT):
        cli, where = "jobpipe", ""
    elif port is not None and api == local_url(port):
        cli = f"JOBPIPE_PORT={port} jobpipe"
        where = f"CLI:      export JOBPIPE_PORT={port} where you run `jobpipe` (it looks at 8000)\n"
    else:
        cli, where = f"JOBPIPE_URL={api} jobpipe", ""
    print(
        f"""jobpipe local: the whole pipeline on this machine (moto, API, worker)

API:      {api}
{where}OpenAPI:  {api}/openapi.json   (Swagger UI: {api}/docs)
Dashboard: {api}/ui   (every job, cancel, the DLQ and replay)
AWS:      moto at {config.aws_endpoint_url} (queue {config.queue_url.rsplit("/", 1)[-1]}, \
DLQ {config.dlq_url.rsplit("/", 1)[-1]}, table {config.table_name})

Try:
  curl -s -X POST {api}/jobs -H 'content-type: application/json' \\
       -d '{{"type": "echo", "params": {{"hello": "world"}}}}'
  curl -s {api}/jobs/<job_id>
  {cli} submit flaky --params '{{"fail_times": 1}}' --wait

State lives in memory (moto): jobs, queues and dead letters are gone when this stops.
Job types are loaded now: restart this (Ctrl-C, then again) to add or change one.

One line per job transition below. Ctrl-C stops everything.
""",
        file=out,
        flush=True,
    )
