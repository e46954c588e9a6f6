"""The Lambda bundle: the lock file's versions, built for Python 3.13 on arm64, no Docker."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from infra.bundling import (
    ENV_CACHE_DIR,
    REPO_ROOT,
    Bundle,
    BundlingError,
    build_bundle,
    bundle_key,
    lambda_bundle,
)

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
    """Given the bundle, then its compiled extensions are for CPython 3.13 on aarch64 only."""
    extensions = [p.name for p in bundle.path.rglob("*.so")]
    assert any(
        name.startswith("_pydantic_core.cpython-313-aarch64-linux-gnu") for name in extensions
    )
    wrong = [n for n in extensions if "x86_64" in n or ("cpython-" in n and "cpython-313" not in n)]
    assert wrong == []


def test_the_bundle_carries_the_handlers(bundle: Bundle) -> None:
    """Given the bundle, then it holds every function's handler and no bytecode caches."""
    from jobpipe.api.routes import FUNCTIONS

    for spec in FUNCTIONS:
        assert (bundle.path / (spec.module.replace(".", "/") + ".py")).is_file(), spec.name
    assert not list(bundle.path.rglob("__pycache__"))


def test_the_bundle_ships_the_runtime_only(bundle: Bundle) -> None:
    # Given the Lambda asset's own package
    package = bundle.path / "jobpipe"
    shipped = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    # Then it holds no CLI, client, local stack, in-memory fakes or operator tools
    assert not [path for path in shipped if path.startswith(("cli/", "local/", "ops/"))]
    assert "client.py" not in shipped and "adapters/memory.py" not in shipped
    # And everything else of the package is there
    assert {"wiring.py", "handlers/worker.py", "domain/states.py", "adapters/dynamodb.py"} <= (
        shipped
    )


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


def test_the_handlers_import_from_the_bundle_alone(tmp_path: Path) -> None:
    # Given the same bundle built for this machine's Python and platform (Lambda's own arm64
    # wheels cannot load here)
    target = tmp_path / "bundle"
    build_bundle(
        REPO_ROOT,
        target,
        python_platform=f"{platform.machine()}-manylinux2014",
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
    )
    # When each handler is imported with nothing but the standard library and the bundle,
    # in a fresh interpreter, as the Lambda runtime does
    script = (
        "import sys; sys.path[:0] = [sys.argv[1]]\n"
        "import importlib\n"
        "for name in ('submit', 'status', 'cancel', 'worker', 'reaper'):\n"
        "    module = importlib.import_module(f'jobpipe.handlers.{name}')\n"
        "    assert callable(module.handler), name\n"
        "import aws_xray_sdk.core, jobpipe, pydantic  # the tracer's SDK is shipped too\n"
        "assert jobpipe.__file__.startswith(sys.argv[1]), jobpipe.__file__\n"
        "assert pydantic.__file__.startswith(sys.argv[1]), pydantic.__file__\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script, str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then every import resolves inside the bundle: no runtime dependency is missing
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_failed_build_leaves_nothing_behind_in_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an empty bundle cache, colour forced as the CDK CLI forces it, and no wheel to be had
    # (uv offline with an empty cache of its own): the install fails after the export
    cache = tmp_path / "bundles"
    monkeypatch.setenv(ENV_CACHE_DIR, str(cache))
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    # When the bundle is asked for
    with pytest.raises(BundlingError) as failed:
        lambda_bundle()
    # Then the error is uv's, in plain text
    assert "uv pip install" in str(failed.value) and "\x1b[" not in str(failed.value)
    # And no half-built bundle or requirements file is left to be mistaken for a build
    assert not cache.exists() or list(cache.iterdir()) == []
