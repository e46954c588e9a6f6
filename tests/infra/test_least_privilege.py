"""Each function's role may call exactly what its code calls (topology.Permissions), on the
resources it uses, plus writing its own logs and traces."""

from __future__ import annotations

from typing import Any

import pytest

from jobpipe.topology import TOPOLOGY
from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.xdist_group("cdk")

ALLOWED = TOPOLOGY.permissions
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
    if isinstance(resource, dict) and "Fn::Join" in resource:
        # A table's index: "<table ARN>/index/<name>", keyed as "<table id>/index/<name>".
        separator, (base, suffix) = resource["Fn::Join"]
        assert separator == "" and isinstance(suffix, str), resource
        return _resource_key(base) + suffix
    raise AssertionError(f"unexpected resource {resource!r}")


def _expected(
    synthesized: Synthesized, name: str, **by_path: tuple[str, ...]
) -> dict[str, set[str]]:
    expected: dict[str, set[str]] = {
        synthesized.logical_id(f"Functions/{name}Logs"): {
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        },
        "*": {"xray:PutTraceSegments", "xray:PutTelemetryRecords"},
    }
    paths = {"table": "Jobs/Table", "queue": "Queues/Queue", "dlq": "Queues/DeadLetterQueue"}
    for key, actions in by_path.items():
        expected[synthesized.logical_id(paths[key])] = set(actions)
    return expected


def test_status_may_only_read_jobs(synthesized: Synthesized) -> None:
    """Given the status role, then it may only GetItem on the table (plus its logs and traces)."""
    assert _grants(synthesized, "Status") == _expected(
        synthesized, "Status", table=ALLOWED.status_table
    )


def test_submit_may_only_write_jobs_and_send_to_the_queue(synthesized: Synthesized) -> None:
    """Given the submit role, then it may only write jobs and send to the jobs queue."""
    assert _grants(synthesized, "Submit") == _expected(
        synthesized, "Submit", table=ALLOWED.submit_table, queue=ALLOWED.submit_queue
    )


def test_worker_may_only_update_jobs_consume_the_queue_and_dead_letter(
    synthesized: Synthesized,
) -> None:
    """Given the worker role, then it may only update jobs, consume the jobs queue and send to the
    DLQ.
    """
    assert _grants(synthesized, "Worker") == _expected(
        synthesized,
        "Worker",
        table=ALLOWED.worker_table,
        queue=ALLOWED.worker_queue,
        dlq=ALLOWED.worker_dlq,
    )


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


def test_reaper_may_only_query_its_indexes_claim_jobs_and_send_to_the_queue(
    synthesized: Synthesized,
) -> None:
    """Given the reaper role, then it may Query only the two stuck-job indexes (never Scan, never
    the table or the owner index), update jobs, send to the jobs queue and read its depth, and
    read CloudWatch metrics (the queue's oldest-message age): nothing else."""
    table = synthesized.logical_id("Jobs/Table")
    expected = _expected(
        synthesized, "Reaper", table=ALLOWED.reaper_table, queue=ALLOWED.reaper_queue
    )
    for index in (TOPOLOGY.table.lease_index, TOPOLOGY.table.pending_index):
        expected[f"{table}/index/{index}"] = set(ALLOWED.reaper_index)
    expected["*"] |= set(ALLOWED.reaper_metrics)
    assert _grants(synthesized, "Reaper") == expected
    assert ALLOWED.reaper_index == ("dynamodb:Query",)
    assert ALLOWED.reaper_metrics == ("cloudwatch:GetMetricData",)
