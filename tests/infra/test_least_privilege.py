"""Each function's role may call exactly what its code calls (its row in
`jobpipe.api.routes`), on the resources it uses, plus writing its own logs and traces."""

from __future__ import annotations

from typing import Any

import pytest

from jobpipe.api.routes import FUNCTIONS, function
from jobpipe.topology import TOPOLOGY
from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.xdist_group("cdk")

SCHEDULE_GROUP = "Jobpipe-schedules"

BASICS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "cloudwatch:GetMetricData",
    "xray:PutTelemetryRecords",
}


def _grants(synthesized: Synthesized, name: str) -> dict[str, set[str]]:
    """The actions the function's role is granted, by resource (as JSON)."""
    role_id = synthesized.logical_id(f"Functions/{name}Role")
    grants: dict[str, set[str]] = {}
    policies = [
        p["Properties"]
        for p in synthesized.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    assert policies, name
    for policy in policies:
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"]
            resources = statement["Resource"]
            for resource in resources if isinstance(resources, list) else [resources]:
                key = _resource_key(resource)
                grants.setdefault(key, set()).update(
                    actions if isinstance(actions, list) else [actions]
                )
    return grants


def _resource_key(resource: Any) -> str:
    if resource == "*":
        return "*"
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        logical_id, attribute = resource["Fn::GetAtt"]
        assert attribute == "Arn", resource
        return str(logical_id)
    if isinstance(resource, dict) and resource.get("Fn::Join", [None, [None]])[1][0] == "arn:":
        # The schedules of the stack's group: "arn:<partition>:scheduler:<region>:<account>:
        # schedule/<group>/*", keyed as "scheduler:schedule/<group>/*".
        separator, parts = resource["Fn::Join"]
        assert separator == "" and ":scheduler:" in parts, resource
        return "scheduler:" + parts[-1].lstrip(":")
    if isinstance(resource, dict) and "Fn::Join" in resource:
        # A table's index: "<table ARN>/index/<name>", keyed as "<table id>/index/<name>".
        separator, (base, suffix) = resource["Fn::Join"]
        assert separator == "" and isinstance(suffix, str), resource
        return _resource_key(base) + suffix
    raise AssertionError(f"unexpected resource {resource!r}")


def _expected(synthesized: Synthesized, name: str) -> dict[str, set[str]]:
    """What the function's row of the route table says it may do, by resource."""
    grants = function(name).grants
    expected: dict[str, set[str]] = {
        synthesized.logical_id(f"Functions/{name}Logs"): {
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        },
        "*": {"xray:PutTraceSegments", "xray:PutTelemetryRecords", *grants.unscoped},
    }
    table = synthesized.logical_id("Jobs/Table")
    for key, actions in (
        (table, grants.table),
        (synthesized.logical_id("Queues/Queue"), grants.queue),
        (synthesized.logical_id("Queues/DeadLetterQueue"), grants.dlq),
    ):
        if actions:
            expected[key] = set(actions)
    for index in grants.indexes:
        expected[f"{table}/index/{index}"] = set(grants.index_actions)
    if grants.schedules:
        expected[f"scheduler:schedule/{SCHEDULE_GROUP}/*"] = set(grants.schedules)
    if grants.pass_scheduler_role:
        expected[synthesized.logical_id("Schedules/Role")] = {"iam:PassRole"}
    return expected


@pytest.mark.parametrize("name", [spec.name for spec in FUNCTIONS])
def test_each_role_may_call_exactly_what_its_function_declares(
    synthesized: Synthesized, name: str
) -> None:
    # Given a function's role / Then it may call what its row in the route table names, on the
    # resources it names, plus writing its own logs and traces: nothing more
    assert _grants(synthesized, name) == _expected(synthesized, name)


def test_what_the_functions_declare_is_what_their_code_calls() -> None:
    # The status function only reads (one job, a listing's or a workflow's jobs by key);
    # cancel reads and updates; the status function queries only the owner index, the reaper
    # only its three indexes; only submit creates (alone or in batches) or deletes a job item,
    # and the reaper creates a workflow's members when its creation was cut short
    reads = {"dynamodb:GetItem", "dynamodb:BatchGetItem"}
    assert set(function("Status").grants.table) == reads
    assert set(function("Cancel").grants.table) == reads | {"dynamodb:UpdateItem"}
    queriers = [spec.name for spec in FUNCTIONS if spec.grants.index_actions]
    assert queriers == ["Status", "Reaper"]
    assert function("Status").grants.index_actions == ("dynamodb:Query",)
    assert function("Status").grants.indexes == (TOPOLOGY.table.owner_index,)
    assert function("Reaper").grants.index_actions == ("dynamodb:Query",)
    assert set(function("Reaper").grants.indexes) == {
        TOPOLOGY.table.lease_index,
        TOPOLOGY.table.pending_index,
        TOPOLOGY.table.outbox_index,
    }
    # Only submit, the reaper (a workflow's members), and the function a recurring schedule's
    # firing invokes create job items; only submit in batches
    creates = ("dynamodb:PutItem", "dynamodb:BatchWriteItem")
    writers = [spec.name for spec in FUNCTIONS if set(creates) & set(spec.grants.table)]
    assert writers == ["Submit", "Reaper", "Recurring"]
    assert [s.name for s in FUNCTIONS if "dynamodb:BatchWriteItem" in s.grants.table] == ["Submit"]
    assert [s.name for s in FUNCTIONS if "dynamodb:DeleteItem" in s.grants.table] == ["Submit"]
    # The worker sends a fresh copy of a record it hands back late, to the jobs queue itself
    assert "sqs:SendMessage" in function("Worker").grants.queue
    # Only submit creates schedules (a delayed job's) and hands them the scheduler's role; only
    # cancel deletes them
    creators = [spec.name for spec in FUNCTIONS if spec.grants.schedules]
    assert creators == ["Submit", "Cancel"]
    assert function("Submit").grants.schedules == ("scheduler:CreateSchedule",)
    assert function("Cancel").grants.schedules == ("scheduler:DeleteSchedule",)
    assert [spec.name for spec in FUNCTIONS if spec.grants.pass_scheduler_role] == ["Submit"]


def test_no_role_has_a_managed_policy_or_a_wildcard_action(synthesized: Synthesized) -> None:
    """Given every role, then none has a managed policy or a wildcard action, and `*` resources are
    only for actions that have no resource-level permissions (X-Ray's, CloudWatch's reads).
    """
    for role_id, role in synthesized.resources("AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], role_id
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            for action in actions if isinstance(actions, list) else [actions]:
                assert "*" not in action, action
                if statement["Resource"] == "*":
                    assert action in BASICS, action
