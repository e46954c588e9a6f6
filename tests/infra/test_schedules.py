"""Time on EventBridge Scheduler as deployed: the schedule group, the scheduler's role and who may
pass it, the recurring schedules the job types declare, pausing, and the alarms. moto enforces no
IAM, so every statement is asserted on the synthesized template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from infra.app import build_app
from infra.bundling import Bundle
from infra.guardrails import GuardrailError, check_topology
from pydantic import BaseModel

from jobpipe.domain.registry import Cron, Rate, Registry, job_type, recurring
from jobpipe.domain.schedule import SCHEDULED_TIME
from jobpipe.settings import ENV_SCHEDULE_GROUP, ENV_SCHEDULER_ROLE_ARN
from jobpipe.topology import TOPOLOGY
from tests.infra.conftest import Synthesized, cdk_json_context

pytestmark = pytest.mark.xdist_group("cdk")

GROUP = "Jobpipe-schedules"


class ReportParams(BaseModel):
    kind: str


def _registry() -> Registry:
    registry = Registry()

    @job_type(
        "report",
        schedules=[Cron("0 9 * * 1-5", tz="Europe/Berlin", params={"kind": "weekday"})],
        into=registry,
    )
    def report(params: ReportParams) -> None: ...

    recurring("report", Rate(hours=6, params={"kind": "often"}, name="report-often"), into=registry)
    return registry


@pytest.fixture(scope="module")
def with_schedules(tmp_path_factory: pytest.TempPathFactory, bundle: Bundle) -> Synthesized:
    """The stack of job types that declare two recurring schedules, one of them paused."""
    from aws_cdk.assertions import Template

    outdir = tmp_path_factory.mktemp("cdk-schedules")
    app, stack = build_app(
        context={**cdk_json_context(), "pausedSchedules": "report-often"},
        outdir=str(outdir),
        job_types=_registry(),
        bundle=bundle,
    )
    raw: dict[str, Any] = app.synth().get_stack_by_name(stack.stack_name).template
    return Synthesized(app, stack, Template.from_json(raw), raw, Path(outdir))


def _props(synthesized: Synthesized, path: str) -> dict[str, Any]:
    props: dict[str, Any] = synthesized.raw["Resources"][synthesized.logical_id(path)]["Properties"]
    return props


def _statements(synthesized: Synthesized, role_path: str) -> list[dict[str, Any]]:
    role_id = synthesized.logical_id(role_path)
    return [
        statement
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _arn_of(synthesized: Synthesized, path: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [synthesized.logical_id(path), "Arn"]}


def test_the_stack_has_a_schedule_group_of_its_own(synthesized: Synthesized) -> None:
    (group,) = synthesized.resources("AWS::Scheduler::ScheduleGroup").values()
    assert group["Properties"]["Name"] == GROUP
    # Deleted with the stack, as its queues are
    assert group["DeletionPolicy"] == "Delete"


def test_the_scheduler_role_is_assumed_by_the_scheduler_of_this_account_only(
    synthesized: Synthesized,
) -> None:
    (trust,) = _props(synthesized, "Schedules/Role")["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_the_scheduler_role_may_only_send_to_the_jobs_queue_and_its_dlq(
    synthesized: Synthesized,
) -> None:
    # Given the stack without recurring schedules / Then its schedules (delayed jobs') may send
    # a message to the jobs queue, or after their retries to the DLQ: nothing else
    (statement,) = _statements(synthesized, "Schedules/Role")
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sqs:SendMessage"
    assert sorted(json.dumps(r) for r in statement["Resource"]) == sorted(
        json.dumps(_arn_of(synthesized, p)) for p in ("Queues/Queue", "Queues/DeadLetterQueue")
    )


def test_with_recurring_schedules_the_role_may_invoke_the_recurring_function_alone(
    with_schedules: Synthesized,
) -> None:
    statements = _statements(with_schedules, "Schedules/Role")
    invoke = [s for s in statements if s["Action"] == "lambda:InvokeFunction"]
    assert len(statements) == 2 and len(invoke) == 1
    # The function itself, not its versions (no `:*`)
    assert invoke[0]["Resource"] == _arn_of(with_schedules, "Functions/Recurring")


def _schedule_arn() -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":scheduler:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                f":schedule/{GROUP}/*",
            ],
        ]
    }


def _about_schedules(synthesized: Synthesized, role: str) -> list[dict[str, Any]]:
    return [
        s
        for s in _statements(synthesized, role)
        if str(s["Action"]).startswith(("scheduler:", "iam:"))
    ]


def test_submit_creates_schedules_in_the_group_and_passes_the_scheduler_role_alone(
    synthesized: Synthesized,
) -> None:
    create, pass_role = sorted(
        _about_schedules(synthesized, "Functions/SubmitRole"), key=lambda s: s["Action"]
    )[::-1]
    assert create == {
        "Action": "scheduler:CreateSchedule",
        "Effect": "Allow",
        "Resource": _schedule_arn(),
    }
    assert pass_role == {
        "Action": "iam:PassRole",
        "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
        "Effect": "Allow",
        "Resource": _arn_of(synthesized, "Schedules/Role"),
    }


def test_cancel_deletes_schedules_in_the_group_only(synthesized: Synthesized) -> None:
    assert _about_schedules(synthesized, "Functions/CancelRole") == [
        {"Action": "scheduler:DeleteSchedule", "Effect": "Allow", "Resource": _schedule_arn()}
    ]
    # And no other function touches schedules
    for name in ("Status", "Worker", "Reaper", "Recurring"):
        assert _about_schedules(synthesized, f"Functions/{name}Role") == [], name


def test_the_functions_know_the_group_and_the_role(synthesized: Synthesized) -> None:
    variables = _props(synthesized, "Functions/Submit")["Environment"]["Variables"]
    assert variables[ENV_SCHEDULE_GROUP] == {"Ref": synthesized.logical_id("Schedules/Group")}
    assert variables[ENV_SCHEDULER_ROLE_ARN] == _arn_of(synthesized, "Schedules/Role")


def test_each_recurring_declaration_is_deployed_as_a_schedule_invoking_recurring(
    with_schedules: Synthesized,
) -> None:
    schedules = {
        r["Properties"]["Name"]: r["Properties"]
        for r in with_schedules.resources("AWS::Scheduler::Schedule").values()
    }
    assert set(schedules) == {"report", "report-often"}
    weekday = schedules["report"]
    # Unix's Monday-Friday, as EventBridge names them, in Berlin time
    assert weekday["ScheduleExpression"] == "cron(0 9 ? * MON-FRI *)"
    assert weekday["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert weekday["GroupName"] == {"Ref": with_schedules.logical_id("Schedules/Group")}
    assert weekday["State"] == "ENABLED"
    target = weekday["Target"]
    assert target["Arn"] == _arn_of(with_schedules, "Functions/Recurring")
    assert target["RoleArn"] == _arn_of(with_schedules, "Schedules/Role")
    # Each firing names its schedule and the time it fired for (filled in by the scheduler)
    assert json.loads(target["Input"]) == {
        "schedule": "report",
        "type": "report",
        "scheduled_time": SCHEDULED_TIME,
    }
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
    # The paused one is deployed DISABLED: pausing is a deploy-time setting
    assert schedules["report-often"]["ScheduleExpression"] == "rate(6 hours)"
    assert schedules["report-often"]["State"] == "DISABLED"


def test_failed_schedule_deliveries_raise_alarms(synthesized: Synthesized) -> None:
    metrics = {}
    for path in ("Schedules/DroppedDeliveries", "Schedules/UndeliverableToDlq"):
        alarm = _props(synthesized, path)
        assert alarm["Namespace"] == "AWS/Scheduler"
        assert alarm["Dimensions"] == [{"Name": "ScheduleGroup", "Value": GROUP}]
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
        metrics[path] = alarm["MetricName"]
    assert set(metrics.values()) == {
        "InvocationDroppedCount",
        "InvocationsFailedToBeSentToDeadLetterCount",
    }


def test_a_schedule_for_an_unknown_type_or_with_refused_params_fails_the_synth() -> None:
    # Given a schedule of a type nobody declares, and one whose params the model refuses
    registry = _registry()
    recurring("nobody", Cron("@daily"), into=registry)
    recurring("report", Cron("@daily", params={"kind": 1}, name="typo"), into=registry)
    # When the stack is checked / Then both are named, before any resource is declared
    with pytest.raises(GuardrailError) as refused:
        check_topology(TOPOLOGY, registry)
    assert "'nobody'" in str(refused.value)
    assert "'typo'" in str(refused.value)


def test_pausing_a_schedule_nobody_declared_fails_the_synth(bundle: Bundle) -> None:
    from jobpipe.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="nightly"):
        build_app(context={"pausedSchedules": "nightly"}, job_types=_registry(), bundle=bundle)
