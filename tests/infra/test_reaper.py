"""The reaper function: on an EventBridge schedule, and reachable by nothing else."""

from __future__ import annotations

import json

import pytest

from jobpipe.topology import TOPOLOGY
from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.xdist_group("cdk")


def test_the_reaper_runs_on_a_schedule(synthesized: Synthesized) -> None:
    # Given the stack's EventBridge rules
    (rule,) = synthesized.resources("AWS::Events::Rule").values()
    props = rule["Properties"]
    # Then one rule runs the reaper function at the topology's rate, and nothing else
    minutes = TOPOLOGY.reaper.schedule_minutes
    assert props["ScheduleExpression"] == f"rate({minutes} minute{'s' if minutes > 1 else ''})"
    assert props["State"] == "ENABLED"
    reaper_id = synthesized.logical_id("Functions/Reaper")
    (target,) = props["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [reaper_id, "Arn"]}


def test_only_the_schedule_may_invoke_the_reaper(synthesized: Synthesized) -> None:
    # Given every permission to invoke a function
    reaper_id = synthesized.logical_id("Functions/Reaper")
    rule_id = synthesized.logical_id("ReaperSchedule")
    invokers = [
        p["Properties"]
        for p in synthesized.resources("AWS::Lambda::Permission").values()
        if reaper_id in json.dumps(p["Properties"]["FunctionName"])
    ]
    # Then the reaper's only invoker is EventBridge, for its schedule rule
    assert invokers == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [reaper_id, "Arn"]},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]},
        }
    ]


def test_the_api_does_not_reach_the_reaper_or_the_worker(synthesized: Synthesized) -> None:
    # Given the API's integrations
    integrations = synthesized.resources("AWS::ApiGatewayV2::Integration").values()
    targets = json.dumps([i["Properties"]["IntegrationUri"] for i in integrations])
    # Then none of them leads to the reaper or the worker
    for name in ("Reaper", "Worker"):
        assert synthesized.logical_id(f"Functions/{name}") not in targets, name
