"""The synthesized stack, once per test worker: every infra test reads the same template.

The infra tests carry the xdist group `cdk` so that, under `--dist loadgroup`, one worker
synthesizes the app (a few seconds of jsii) while the other runs the rest of the suite.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
# The CI machine's Node.js is past its end of life: jsii says so on every exit, which buries the
# test output. The Makefile silences it the same way for the Node it runs on.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, CfnElement, Stack
from aws_cdk.assertions import Template
from constructs import IConstruct
from infra.app import build_app
from infra.bundling import REPO_ROOT, Bundle, lambda_bundle

JWT_ISSUER = "https://issuer.example.com/"
JWT_AUDIENCE = "jobpipe-web"


@dataclass(frozen=True)
class Synthesized:
    app: App
    stack: Stack
    template: Template
    raw: dict[str, Any]
    outdir: Path

    def resources(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.raw["Resources"].items()
            if resource["Type"] == cfn_type
        }

    def logical_id(self, construct_path: str) -> str:
        """The logical id of the CloudFormation resource of the construct at `construct_path`
        (relative to the stack, e.g. `Queues/Queue`)."""
        node: IConstruct = self.stack
        for part in construct_path.split("/"):
            node = node.node.find_child(part)
        resource = node.node.default_child if not isinstance(node, CfnElement) else node
        assert isinstance(resource, CfnElement), construct_path
        logical_id: str = self.stack.resolve(self.stack.get_logical_id(resource))
        return logical_id


def cdk_json_context() -> dict[str, Any]:
    """The context `cdk synth` passes the app from cdk.json (feature flags)."""
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return context


def synthesize(outdir: Path, context: dict[str, Any] | None = None) -> Synthesized:
    app, stack = build_app(context={**cdk_json_context(), **(context or {})}, outdir=str(outdir))
    assembly = app.synth()
    raw: dict[str, Any] = assembly.get_stack_by_name(stack.stack_name).template
    return Synthesized(app, stack, Template.from_json(raw), raw, outdir)


@pytest.fixture(scope="session")
def bundle() -> Bundle:
    return lambda_bundle()


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory, bundle: Bundle) -> Iterator[Synthesized]:
    yield synthesize(tmp_path_factory.mktemp("cdk-default"))


@pytest.fixture(scope="session")
def template(synthesized: Synthesized) -> Template:
    return synthesized.template


@pytest.fixture(scope="session")
def jwt_synthesized(tmp_path_factory: pytest.TempPathFactory, bundle: Bundle) -> Synthesized:
    return synthesize(
        tmp_path_factory.mktemp("cdk-jwt"),
        context={"jwtIssuer": JWT_ISSUER, "jwtAudience": JWT_AUDIENCE},
    )


def as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
