"""The pinned CDK CLI synthesizes the app the way `make synth` and `make deploy` do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from infra.bundling import REPO_ROOT

# Its own group: this runs beside the in-process synth tests on the other worker.
pytestmark = pytest.mark.xdist_group("cdk-cli")

CDK_CLI = REPO_ROOT / "node_modules" / ".bin" / "cdk"


def test_cdk_synth_succeeds_with_the_pinned_cli(tmp_path: Path) -> None:
    # Given the CLI installed from package-lock.json (the Makefile runs `npm ci`)
    assert CDK_CLI.exists(), "run `make test` (it runs `npm ci`) to install the pinned CDK CLI"
    npx = shutil.which("npx")
    assert npx is not None, "Node.js with npx is required"
    out = tmp_path / "cdk.out"
    env = {
        **os.environ,
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "CI": "true",
    }
    # When `cdk synth` runs from the repository root, as `make synth` does
    result = subprocess.run(
        [npx, "--no-install", "cdk", "synth", "--quiet", "--no-notices", "-o", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Then it succeeds (cdk-nag and the guardrails passed) and writes the template
    assert result.returncode == 0, result.stderr[-4000:]
    template = json.loads((out / "Jobpipe.template.json").read_text())
    assert "AWS::Lambda::EventSourceMapping" in {r["Type"] for r in template["Resources"].values()}
    report = json.loads((out / "validation-report.json").read_text())
    assert report["pluginReports"][0]["violations"] == []
