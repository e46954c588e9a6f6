"""One worker of the local stack, in a process of its own: the event source mapping polling the
jobs queue and invoking the real worker handler, as Lambda runs each invocation in an
environment of its own (no module state shared with the API or another worker, and the handler
on the main thread, where a sync job's soft time limit is a signal).

The local stack starts these with its environment (the moto endpoint, the table and queues, the
job types to load) and stops them with SIGTERM: a worker finishes its batch, then exits.

    python -m jobpipe.local.worker_process --poll-wait 1 --function-timeout 60
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--poll-wait", type=int, default=1)
    parser.add_argument("--function-timeout", type=float, default=None)
    parser.add_argument("--name", default="jobpipe-worker")
    args = parser.parse_args(argv)

    import boto3

    from jobpipe.handlers import worker
    from jobpipe.local.console import ENV_CONSOLE, use_console_format
    from jobpipe.local.event_source import EventSourceMapping
    from jobpipe.settings import get_settings
    from jobpipe.topology import TOPOLOGY

    if os.environ.get(ENV_CONSOLE):
        use_console_format()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stack stops its workers itself
    esm = EventSourceMapping(
        boto3.client("sqs"),
        get_settings().queue_url,
        worker.handler,
        function_name=args.name,
        function_timeout_seconds=args.function_timeout or TOPOLOGY.worker.timeout_seconds,
        region=os.environ.get("AWS_REGION", "us-east-1"),
        poll_wait_seconds=args.poll_wait,
    )
    parent = os.getppid()
    # A worker outlives nothing: it stops when told to, or when the stack that started it is gone.
    while not stop.is_set() and os.getppid() == parent:
        try:
            esm.poll_once()
        except Exception:  # noqa: BLE001  (a failed poll must not end the worker)
            if stop.wait(1.0):
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
