"""The Lambda bundle: the lock file's versions, built for Python 3.13 on arm64, no Docker."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from infra.bundling import REPO_ROOT, Bundle, bundle_key, lambda_bundle

pytestmark = pytest.mark.xdist_group("cdk")


def _locked_versions() -> dict[str, str]:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    return {p["name"]: p["version"] for p in lock["package"] if "version" in p}


def _installed_versions(bundle: Bundle) -> dict[str, str]:
    versions: dict[str, str] = {}
    for info in bundle.path.glob("*.dist-info"):
        metadata = (info / "METADATA").read_text()
        name = re.search(r"^Name: (.+)$", metadata, re.M)
        version = re.search(r"^Version: (.+)$", metadata, re.M)
        assert name and version, info
        versions[name.group(1).strip().lower().replace("_", "-")] = version.group(1).strip()
    return versions


def test_the_bundle_holds_the_runtime_dependencies_at_the_locked_versions(
    bundle: Bundle,
) -> None:
    # Given the bundle and the lock file
    installed = _installed_versions(bundle)
    locked = _locked_versions()
    # Then the functions' direct dependencies are there, each at the lock file's version
    for name in ("aws-lambda-powertools", "pydantic", "pydantic-core", "boto3", "python-ulid"):
        assert installed[name] == locked[name], name
    for name, version in installed.items():
        assert locked.get(name) == version, name
    # And nothing of the CDK or the test tools is shipped
    assert not {"aws-cdk-lib", "moto", "pytest", "cfn-lint"} & installed.keys()


def test_compiled_wheels_target_python_3_13_on_arm64(bundle: Bundle) -> None:
    extensions = [p.name for p in bundle.path.rglob("*.so")]
    assert any(
        name.startswith("_pydantic_core.cpython-313-aarch64-linux-gnu") for name in extensions
    )
    wrong = [n for n in extensions if "x86_64" in n or ("cpython-" in n and "cpython-313" not in n)]
    assert wrong == []


def test_the_bundle_carries_the_handlers(bundle: Bundle) -> None:
    for module in ("submit", "status", "worker"):
        assert (bundle.path / "jobpipe" / "handlers" / f"{module}.py").is_file()
    assert not list(bundle.path.rglob("__pycache__"))


def test_a_second_build_reuses_the_cached_bundle() -> None:
    # Given a bundle built (or found) once
    first = lambda_bundle()
    marker = first.path / "jobpipe" / ".reused"
    marker.touch()
    try:
        # When it is asked for again with the same inputs / Then the same directory is reused
        assert lambda_bundle() == first
        assert marker.exists()
    finally:
        marker.unlink()


def test_the_cache_key_changes_with_the_function_source(tmp_path: Path) -> None:
    # Given a copy of the inputs the bundle is built from
    for name in ("uv.lock", "pyproject.toml"):
        (tmp_path / name).write_bytes((REPO_ROOT / name).read_bytes())
    handler = tmp_path / "functions" / "jobpipe" / "handler.py"
    handler.parent.mkdir(parents=True)
    handler.write_text("VALUE = 1\n")
    before = bundle_key(tmp_path)
    # When the code changes / Then the key does too, so a stale bundle is never deployed
    handler.write_text("VALUE = 2\n")
    assert bundle_key(tmp_path) != before
