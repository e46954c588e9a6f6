"""The pinned CDK CLI synthesizes the app the way `make synth` and `make deploy` do: from a fresh
clone's empty bundle cache, with its output going to a file (CI, a pipe, a log) rather than a
terminal, and the colour the CLI forces on the app."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from infra.bundling import ENV_CACHE_DIR, PACKAGE_NAME, REPO_ROOT

# Its own group: this runs beside the in-process synth tests on the other worker.
pytestmark = pytest.mark.xdist_group("cdk-cli")

CDK_CLI = REPO_ROOT / "node_modules" / ".bin" / "cdk"


@dataclass(frozen=True)
class Synth:
    returncode: int
    log: str
    out: Path
    cache: Path


def _node_major() -> str:
    node = shutil.which("node")
    assert node is not None, "Node.js is required"
    version = subprocess.run(
        [node, "-p", "process.versions.node"], capture_output=True, text=True, check=True
    )
    return version.stdout.split(".")[0]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """`cdk synth` through the pinned CLI, from an empty bundle cache, all output in a file."""
    assert CDK_CLI.exists(), "run `make test` (it runs `npm ci`) to install the pinned CDK CLI"
    npx = shutil.which("npx")
    assert npx is not None, "Node.js with npx is required"
    root = tmp_path_factory.mktemp("cli-synth")
    cache, out, log = root / "bundles", root / "cdk.out", root / "synth.log"
    env = {
        **os.environ,
        # What the Makefile exports for the app's jsii runtime.
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": _node_major(),
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "CI": "true",
        # The CDK CLI sets this for the app when it wants colour; uv honoured it.
        "FORCE_COLOR": "1",
        ENV_CACHE_DIR: str(cache),
    }
    with log.open("w") as written:
        result = subprocess.run(
            [npx, "--no-install", "cdk", "synth", "--quiet", "--no-notices", "-o", str(out)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=written,
            stderr=subprocess.STDOUT,
            timeout=600,
            check=False,
        )
    return Synth(result.returncode, log.read_text(), out, cache)


def test_synth_builds_the_bundle_from_an_empty_cache_with_its_output_in_a_file(
    synth: Synth,
) -> None:
    # Given an empty bundle cache and the synth's output redirected to a file
    # When `cdk synth` runs from the repository root, as `make synth` does
    # Then it succeeds, having built exactly one bundle, with nothing half-written beside it
    assert synth.returncode == 0, synth.log[-4000:]
    [bundle] = synth.cache.iterdir()
    assert (bundle / PACKAGE_NAME / "handlers" / "submit.py").is_file()
    assert (bundle / "pydantic").is_dir()
    # And the template is written
    template = json.loads((synth.out / "Jobpipe.template.json").read_text())
    assert "AWS::Lambda::EventSourceMapping" in {r["Type"] for r in template["Resources"].values()}


def test_synth_output_carries_no_node_banner_bytes(synth: Synth) -> None:
    # Given the synth's log / Then no line is a Python bytes repr of jsii's Node banner
    assert synth.returncode == 0, synth.log[-4000:]
    assert not [line for line in synth.log.splitlines() if line.startswith(("b'", 'b"'))]


def test_the_synthesized_stack_passes_cdk_nag(synth: Synth) -> None:
    # Given the synth / Then cdk-nag and the guardrails found nothing unacknowledged
    assert synth.returncode == 0, synth.log[-4000:]
    report = json.loads((synth.out / "validation-report.json").read_text())
    assert report["pluginReports"][0]["violations"] == []
