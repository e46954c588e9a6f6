"""`make chord`: one large chord through the local stack over HTTP, checked from outside.

Starts the local stack (worker processes over the real handlers, the reaper running), submits a
chord of `--steps` header steps (1,000 by default) of the example type `add` and a body that
adds up what it receives, waits for it, and checks what a chord promises: every header step
succeeded once, the body ran once (one attempt) after every header step ended, and its result is
the sum of all of them. The last line printed is

    chord: steps=N body_runs=1 result_ok=true seconds=S

and the exit status is 0 only when the body ran once with the right result.

Usage: python scripts/chord.py [--steps N] [--workers W] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import time


def run(steps: int, workers: int, timeout: float) -> bool:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from jobpipe.client import JobsClient, chord, step
    from jobpipe.local.stack import LocalStack

    started = time.monotonic()
    with (
        contextlib.redirect_stdout(io.StringIO()),
        LocalStack(port=0, prefix="chord", workers=workers) as stack,
    ):
        client = JobsClient(stack.api_url, timeout=120)
        header = [step("add", {"value": i}) for i in range(steps)]
        flow = client.submit_workflow(
            chord(header, step("add")), idempotency_key=f"chord-{steps}", retries=60
        )
        done = client.wait_workflow(flow.workflow_id, timeout=timeout, max_interval=5)
        body = done.tree.body
        assert body is not None and body.job_id is not None
        body_job = client.get(body.job_id)
        header_jobs = [client.get(str(node.job_id)) for node in done.tree.nodes]
    seconds = time.monotonic() - started
    every_header_once = all(j.succeeded and j.attempts == 1 for j in header_jobs)
    after = all((j.completed_at or "") <= (body_job.started_at or "") for j in header_jobs)
    result_ok = done.succeeded and done.result == float(sum(range(steps)))
    print(
        f"chord: header_ok={str(every_header_once).lower()} body_after_header="
        f"{str(after).lower()} status={done.status}",
        flush=True,
    )
    print(
        f"chord: steps={steps} body_runs={body_job.attempts} "
        f"result_ok={str(result_ok).lower()} seconds={seconds:.0f}",
        flush=True,
    )
    return every_header_once and after and result_ok and body_job.attempts == 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=1000, help="header steps")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after, s")
    args = parser.parse_args(argv)
    return 0 if run(args.steps, args.workers, args.timeout) else 1


if __name__ == "__main__":
    sys.exit(main())
