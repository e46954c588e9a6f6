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
    # EventBridge Scheduler actions on the schedules of the stack's schedule group (only).
    schedules: tuple[str, ...] = ()
    # May hand the scheduler's role to the schedules it creates (iam:PassRole on that role only).
    pass_scheduler_role: bool = False


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
# A workflow's members are read together.
_MEMBERS_READ = ("dynamodb:GetItem", "dynamodb:BatchGetItem")
FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        "Submit",
        f"{HANDLERS}.submit",
        "POST /jobs, /jobs/batch and /workflows: writes the jobs (or a workflow's steps) and "
        "queues them (or schedules them)",
        # A workflow's members are written by conditional puts (PutItem), its record's creation
        # mark cleared (UpdateItem), its first steps sent in batches (SendMessage); a batch's
        # jobs without a key are written with BatchWriteItem.
        Grants(
            table=(
                "dynamodb:PutItem",
                "dynamodb:GetItem",
                "dynamodb:DeleteItem",
                "dynamodb:UpdateItem",
                "dynamodb:BatchGetItem",
                "dynamodb:BatchWriteItem",
            ),
            queue=("sqs:SendMessage",),
            # A job due beyond 15 minutes waits on a one-time schedule.
            schedules=("scheduler:CreateSchedule",),
            pass_scheduler_role=True,
        ),
        api=True,
    ),
    FunctionSpec(
        "Status",
        f"{HANDLERS}.status",
        "GET /jobs/{id} and /workflows/{id}: reads a job or a workflow; GET /jobs: lists the "
        "caller's jobs",
        # A listing queries the caller's partitions of the owner index and reads the jobs it
        # found with BatchGetItem; a workflow's members are read the same way.
        Grants(
            table=_MEMBERS_READ,
            indexes=(TOPOLOGY.table.owner_index,),
            index_actions=("dynamodb:Query",),
        ),
        api=True,
    ),
    FunctionSpec(
        "Cancel",
        f"{HANDLERS}.cancel",
        "POST /jobs/{id}/cancel and /workflows/{id}/cancel: cancels a job (or a workflow's), "
        "or asks a running one to stop",
        # Cancelling a workflow's member moves its workflow on, which may release (and queue)
        # a step that takes outcomes; a cancelled job's one-time schedule is deleted.
        Grants(
            table=(*_MEMBERS_READ, "dynamodb:UpdateItem"),
            queue=("sqs:SendMessage",),
            schedules=("scheduler:DeleteSchedule",),
        ),
        api=True,
    ),
    FunctionSpec(
        "Worker",
        f"{HANDLERS}.worker",
        "Runs queued jobs; reports partial batch failures",
        Grants(
            # A workflow's step reads what it receives from its predecessors (BatchGetItem).
            table=("dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:BatchGetItem"),
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
        # It queries its three indexes (and only them), claims a stuck job with one conditional
        # UpdateItem and re-sends its message; it reads the queue's depth and the age of its
        # oldest message (SQS's CloudWatch metric) to tell a backlog from a lost message. It
        # finishes follow-ups cut short (the outbox index): reads the job or workflow, writes
        # a workflow's missing members and moves workflows on.
        Grants(
            table=(
                "dynamodb:UpdateItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:BatchGetItem",
            ),
            indexes=(
                TOPOLOGY.table.lease_index,
                TOPOLOGY.table.pending_index,
                TOPOLOGY.table.outbox_index,
            ),
            index_actions=("dynamodb:Query",),
            queue=("sqs:SendMessage", "sqs:GetQueueAttributes"),
            unscoped=("cloudwatch:GetMetricData",),
        ),
    ),
    FunctionSpec(
        "Recurring",
        f"{HANDLERS}.recurring",
        "Creates the job of a recurring schedule's firing; invoked by EventBridge Scheduler",
        # One conditional PutItem per firing (a second delivery finds the job: GetItem), and the
        # job's message.
        Grants(table=("dynamodb:PutItem", "dynamodb:GetItem"), queue=("sqs:SendMessage",)),
    ),
)

ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("POST", "/jobs", "Submit", "submit_job"),
    RouteSpec("GET", "/jobs/{id}", "Status", "get_job"),
    RouteSpec("POST", "/jobs/{id}/cancel", "Cancel", "cancel_job"),
    RouteSpec("GET", "/jobs", "Status", "list_jobs"),
    RouteSpec("POST", "/jobs/batch", "Submit", "submit_jobs"),
    RouteSpec("POST", "/workflows", "Submit", "submit_workflow"),
    RouteSpec("GET", "/workflows/{id}", "Status", "get_workflow"),
    RouteSpec("POST", "/workflows/{id}/cancel", "Cancel", "cancel_workflow"),
)


def function(name: str) -> FunctionSpec:
    return next(f for f in FUNCTIONS if f.name == name)


def route(operation: str) -> RouteSpec:
    return next(r for r in ROUTES if r.operation == operation)


def routes_of(function_name: str) -> tuple[RouteSpec, ...]:
    return tuple(r for r in ROUTES if r.function == function_name)
