"""The synthesized template passes cfn-lint with no errors."""

from __future__ import annotations

import json

import pytest
from cfnlint.api import ManualArgs, lint  # type: ignore[import-untyped]

from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.xdist_group("cdk")


@pytest.mark.parametrize("variant", ["iam", "jwt"])
def test_cfn_lint_reports_no_errors(
    variant: str, synthesized: Synthesized, jwt_synthesized: Synthesized
) -> None:
    # Given the template of each auth variant
    raw = synthesized.raw if variant == "iam" else jwt_synthesized.raw
    # When cfn-lint checks it for the regions Lambda arm64 and HTTP APIs run in
    matches = lint(json.dumps(raw), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    # Then no rule reports an error (warnings, e.g. redundant DependsOn from the CDK, are allowed)
    errors = [
        f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})"
        for m in matches
        if m.rule.id.startswith("E")
    ]
    assert errors == []
