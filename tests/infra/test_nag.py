"""cdk-nag's AWS Solutions checks run on every synth: no finding goes unacknowledged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import aws_sqs as sqs
from infra.app import build_app
from infra.bundling import Bundle

from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.xdist_group("cdk")


def _report(outdir: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((outdir / "validation-report.json").read_text())
    return report


def test_the_stack_has_no_unacknowledged_aws_solutions_finding(synthesized: Synthesized) -> None:
    # Given the app as `cdk synth` builds it, with AwsSolutionsChecks registered
    report = _report(synthesized.outdir)
    # Then the AwsSolutions pack ran and found nothing unacknowledged
    (plugin,) = report["pluginReports"]
    assert plugin["pluginName"] == "AwsSolutions"
    assert plugin["conclusion"] == "success"
    assert plugin["violations"] == []


def test_every_acknowledged_finding_says_why(synthesized: Synthesized) -> None:
    """Given the acknowledged findings, then each has a reason and only the two known ones exist."""
    (plugin,) = _report(synthesized.outdir)["pluginReports"]
    acknowledged = plugin["suppressedViolations"]
    assert acknowledged, "expected the X-Ray wildcard and runtime acknowledgements"
    for finding in acknowledged:
        assert len(finding["reason"]) > 30, finding["ruleName"]
    # Only the known ones: X-Ray's resource wildcard, the pinned runtime, and the schedules of
    # the stack's schedule group (a delayed job's schedule is named after the job).
    assert {f["ruleName"] for f in acknowledged} == {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-L1",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:"
        "<AWS::AccountId>:schedule/Jobpipe-schedules/*]",
    }


def test_a_non_compliant_resource_fails_the_synth(tmp_path: Path, bundle: Bundle) -> None:
    # Given the app with a queue that allows plain HTTP and has no DLQ
    app, stack = build_app(outdir=str(tmp_path), bundle=bundle)
    sqs.Queue(stack, "Careless", encryption=sqs.QueueEncryption.UNENCRYPTED)
    # When it is synthesized / Then cdk-nag stops the synth
    with pytest.raises(RuntimeError, match="AwsSolutions-SQS4"):
        app.synth()
    violations = {v["ruleName"] for v in _report(tmp_path)["pluginReports"][0]["violations"]}
    assert {"AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= violations
