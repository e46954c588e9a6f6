"""The one table of jobpipe's functions and HTTP routes.

Everything that needs to know a route or a function reads it here, so a new route is one row:
- the Powertools resolvers (`jobpipe.api.app.resolver_for`) register each function's routes;
- the CDK stack (`infra/stack.py`) declares each function, grants it exactly its `Grants`, and
  puts its routes on the HTTP API;
- the local gateway (`jobpipe.local.gateway`) serves the same routes with the same handlers;
- the Python client (`jobpipe.client`) builds its URLs from the same paths;
- the OpenAPI document describes every route.

Plain data: importing it costs a cold start nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jobpipe.topology import TOPOLOGY

HANDLERS = "jobpipe.handlers"


@dataclass(frozen=True)
class Grants:
    """The AWS actions a function's code calls, by resource: its role gets these and no more."""

    table: tuple[str, ...] = ()  # item actions on the jobs table
    indexes: tuple[str, ...] = ()  # index names, for `index_actions`
    index_actions: tuple[str, ...] = ()
    queue: tuple[str, ...] = ()  # the jobs queue
    dlq: tuple[str, ...] = ()  # the dead-letter queue
    # Actions that have no resource-level permissions (granted on "*").
    unscoped: tuple[str, ...] = ()


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # the function's construct id in the stack, e.g. "Submit"
    module: str  # its handler module; the entry point is `<module>.handler`
    description: str
    grants: Grants
    # Behind the HTTP API (its memory and timeout are the API's).
    api: bool = False

    @property
    def handler(self) -> str:
        return f"{self.module}.handler"

    @property
    def local_name(self) -> str:
        """Its name on the local stack, as Lambda would name a deployed copy."""
        return f"jobpipe-{self.name.lower()}"


@dataclass(frozen=True)
class RouteSpec:
    method: str
    # API Gateway's form: `/jobs/{id}`.
    path: str
    function: str
    # The resolver's name for it (and the OpenAPI operation id).
    operation: str

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def resolver_path(self) -> str:
        """The path as Powertools routes it: `/jobs/<id>`."""
        return re.sub(r"\{(\w+)\}", r"<\1>", self.path)

    def url(self, **parameters: str) -> str:
        """The path with its parameters filled in (already URL-safe)."""
        return self.path.format(**parameters)


_JOB_READ = ("dynamodb:GetItem",)
FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        "Submit",
        f"{HANDLERS}.submit",
        "POST /jobs (and /jobs/batch): writes the jobs and queues them",
        Grants(
            table=(
                "dynamodb:PutItem",
                "dynamodb:GetItem",
                "dynamodb:DeleteItem",
                "dynamodb:BatchWriteItem",
            ),
            queue=("sqs:SendMessage",),
        ),
        api=True,
    ),
    FunctionSpec(
        "Status",
        f"{HANDLERS}.status",
        "GET /jobs/{id}: reads a job; GET /jobs: lists the caller's jobs",
        # A listing queries the caller's partitions of the owner index and reads the jobs it
        # found with BatchGetItem.
        Grants(
            table=(*_JOB_READ, "dynamodb:BatchGetItem"),
            indexes=(TOPOLOGY.table.owner_index,),
            index_actions=("dynamodb:Query",),
        ),
        api=True,
    ),
    FunctionSpec(
        "Cancel",
        f"{HANDLERS}.cancel",
        "POST /jobs/{id}/cancel: cancels a job, or asks a running one to stop",
        Grants(table=("dynamodb:GetItem", "dynamodb:UpdateItem")),
        api=True,
    ),
    FunctionSpec(
        "Worker",
        f"{HANDLERS}.worker",
        "Runs queued jobs; reports partial batch failures",
        Grants(
            table=("dynamodb:UpdateItem", "dynamodb:GetItem"),
            # The event source mapping polls with the worker's role; the worker itself sends a
            # fresh copy of a record it hands back late, and dead-letters.
            queue=(
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
                "sqs:SendMessage",
            ),
            dlq=("sqs:SendMessage",),
        ),
    ),
    FunctionSpec(
        "Reaper",
        f"{HANDLERS}.reaper",
        "Re-enqueues, fails or cancels stuck jobs; runs on a schedule",
        # It queries its two indexes (and only them), claims a stuck job with one conditional
        # UpdateItem and re-sends its message; it reads the queue's depth and the age of its
        # oldest message (SQS's CloudWatch metric) to tell a backlog from a lost message.
        Grants(
            table=("dynamodb:UpdateItem",),
            indexes=(TOPOLOGY.table.lease_index, TOPOLOGY.table.pending_index),
            index_actions=("dynamodb:Query",),
            queue=("sqs:SendMessage", "sqs:GetQueueAttributes"),
            unscoped=("cloudwatch:GetMetricData",),
        ),
    ),
)

ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("POST", "/jobs", "Submit", "submit_job"),
    RouteSpec("GET", "/jobs/{id}", "Status", "get_job"),
    RouteSpec("POST", "/jobs/{id}/cancel", "Cancel", "cancel_job"),
    RouteSpec("GET", "/jobs", "Status", "list_jobs"),
    RouteSpec("POST", "/jobs/batch", "Submit", "submit_jobs"),
)


def function(name: str) -> FunctionSpec:
    return next(f for f in FUNCTIONS if f.name == name)


def route(operation: str) -> RouteSpec:
    return next(r for r in ROUTES if r.operation == operation)


def routes_of(function_name: str) -> tuple[RouteSpec, ...]:
    return tuple(r for r in ROUTES if r.function == function_name)
