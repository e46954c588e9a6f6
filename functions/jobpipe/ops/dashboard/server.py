"""`jobpipe ui`: the dashboard for a stack, served on this machine's loopback address.

The page itself holds no credentials: this process reads the stack's table and queues with the
operator's AWS credentials (the CLI's profile and region), and the browser talks only to it."""

from __future__ import annotations

import socketserver
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from jobpipe.ops.dashboard.app import PREFIX, Dashboard

if TYPE_CHECKING:
    from jobpipe.cli.target import Target

DEFAULT_UI_PORT = 8001
HOST = "127.0.0.1"


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def dashboard_for(target: Target) -> Dashboard:
    """The dashboard over a target's table and queues, with the target's credentials."""
    from jobpipe.adapters.dynamodb import DynamoDBJobStore
    from jobpipe.ops.dlq import DeadLetterQueue

    target = target.with_queues()
    assert target.table_name and target.queue_url and target.dlq_url
    store = DynamoDBJobStore(target.table_name, client=target.dynamodb())
    sqs = target.sqs()
    queue_url, dlq_url = target.queue_url, target.dlq_url

    def dead_letters() -> DeadLetterQueue:
        return DeadLetterQueue.on_sqs(
            sqs,
            store,
            dlq_url=dlq_url,
            queue_url=queue_url,
            # SQS needs a long poll to be sure a queue is empty; moto answers from one place.
            wait_seconds=0 if target.local else 1,
        )

    name = "local" if target.local else target.source.removeprefix("--stack ")
    return Dashboard(store, dead_letters, stack_name=name)


def serve(dashboard: Dashboard, port: int = DEFAULT_UI_PORT) -> WSGIServer:
    """A server for the dashboard on 127.0.0.1 (`port` 0: any free port); call
    `serve_forever` on it."""
    return make_server(HOST, port, dashboard, server_class=_Server, handler_class=_QuietHandler)


def url_of(server: WSGIServer) -> str:
    return f"http://{HOST}:{server.server_port}{PREFIX}"
