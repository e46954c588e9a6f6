"""The Lambda code asset, built without Docker: the lock file's wheels for Lambda's platform
(Python 3.13 on arm64) plus the `jobpipe` package, in one directory.

`uv export` turns `uv.lock` into a hash-pinned requirements file (runtime dependencies only:
no dev or infra groups), and `uv pip install --target` installs exactly those versions as
manylinux aarch64 wheels, whatever machine runs the synth. The result is cached under
`.build/lambda/<key>/`, where the key covers the lock file, the function source and the
target platform, so a synth after the first one does not install anything
(`JOBPIPE_BUNDLE_CACHE` names another cache directory).

The build is the same whatever runs it: uv gets no colour settings from the environment (the
CDK CLI sets `FORCE_COLOR` for the app, which made uv colour the requirements file it wrote),
and a build that fails leaves neither a half-built bundle nor its requirements file behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# The target the Lambda functions run on; `components/functions.py` declares the same.
PYTHON_VERSION = "3.13"
PYTHON_PLATFORM = "aarch64-manylinux2014"
# Bump when the layout of the bundle changes, so older caches are not reused.
BUNDLE_FORMAT = "1"

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_NAME = "jobpipe"
CACHE_DIR_NAME = ".build"
ENV_CACHE_DIR = "JOBPIPE_BUNDLE_CACHE"
KEEP_BUNDLES = 3
# Settings that make tools colour their output even when it is not a terminal.
COLOUR_VARIABLES = ("FORCE_COLOR", "CLICOLOR_FORCE", "NO_COLOR")


class BundlingError(RuntimeError):
    """The Lambda bundle could not be built (no uv, or no wheel for the target platform)."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    key: str


def _uv() -> str:
    try:
        from uv import find_uv_bin  # the pinned uv of the dev group

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise BundlingError("uv is not installed: run `make venv` first") from None
        return found


# What the Lambda functions never run: the CLI and its client, the local stack, the in-memory
# fakes and the operator tools. The asset ships the runtime only.
NOT_SHIPPED = ("cli", "local", "ops", "client.py", "adapters/memory.py")


def shipped(relative: Path) -> bool:
    """Whether a file of the package (a path relative to it) goes into the Lambda asset."""
    path = relative.as_posix()
    return not any(path == item or path.startswith(f"{item}/") for item in NOT_SHIPPED)


def _source_files(root: Path) -> list[Path]:
    package = root / "functions" / PACKAGE_NAME
    return sorted(
        p
        for p in package.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix not in (".pyc", ".pyo")
        and shipped(p.relative_to(package))
    )


def bundle_key(root: Path = REPO_ROOT) -> str:
    """A digest of everything the bundle is built from."""
    digest = hashlib.sha256()
    for part in (BUNDLE_FORMAT, PYTHON_VERSION, PYTHON_PLATFORM):
        digest.update(part.encode() + b"\0")
    for name in ("uv.lock", "pyproject.toml"):
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    for path in _source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def _run(command: list[str], cwd: Path) -> None:
    """Run a uv command with colour off, whatever the environment asks for."""
    env = {name: value for name, value in os.environ.items() if name not in COLOUR_VARIABLES}
    result = subprocess.run(  # noqa: S603  (a fixed command line, no shell)
        [*command, "--color", "never"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BundlingError(
            f"`{' '.join(command[:3])} ...` failed while building the Lambda bundle:\n"
            f"{result.stderr.strip()}"
        )


def build_bundle(
    root: Path,
    target: Path,
    *,
    python_platform: str = PYTHON_PLATFORM,
    python_version: str = PYTHON_VERSION,
) -> None:
    """Install the locked runtime dependencies for the platform, and `jobpipe`, into `target`
    (uncached; `lambda_bundle` is the cached build for Lambda's platform)."""
    uv = _uv()
    # The requirements file lives outside the cache, and goes whether the build succeeds or not.
    with tempfile.TemporaryDirectory(prefix="jobpipe-bundle-") as scratch:
        requirements = Path(scratch) / "requirements.txt"
        _run(
            [
                uv,
                "export",
                "--frozen",
                "--no-default-groups",
                "--no-emit-project",
                "--format",
                "requirements-txt",
                "--quiet",
                "--output-file",
                str(requirements),
            ],
            cwd=root,
        )
        _run(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--target",
                str(target),
                "--python-platform",
                python_platform,
                "--python-version",
                python_version,
                "--only-binary",
                ":all:",
                "--no-deps",
                "--require-hashes",
                "--no-compile",
                "-r",
                str(requirements),
            ],
            cwd=root,
        )
    # Console scripts of the dependencies are never run on Lambda.
    shutil.rmtree(target / "bin", ignore_errors=True)
    source = root / "functions" / PACKAGE_NAME
    for path in _source_files(root):
        destination = target / PACKAGE_NAME / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)


def cache_dir(root: Path = REPO_ROOT) -> Path:
    """Where built bundles are kept: `JOBPIPE_BUNDLE_CACHE`, else `.build/lambda/`."""
    configured = os.environ.get(ENV_CACHE_DIR)
    return Path(configured) if configured else root / CACHE_DIR_NAME / "lambda"


def lambda_bundle(root: Path = REPO_ROOT) -> Bundle:
    """The directory to deploy as the functions' code, built on first use and cached."""
    key = bundle_key(root)
    cache = cache_dir(root)
    final = cache / key
    if (final / PACKAGE_NAME).is_dir():
        return Bundle(final, key)
    cache.mkdir(parents=True, exist_ok=True)
    # Build beside the cache and rename into place: parallel synths (test workers) never see
    # a half-built bundle, and the one that loses the race throws its copy away.
    staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=cache))
    try:
        build_bundle(root, staging)
        try:
            staging.rename(final)
        except OSError:
            if not (final / PACKAGE_NAME).is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _prune(cache, keep=final)
    return Bundle(final, key)


def _prune(cache: Path, keep: Path) -> None:
    """Drop all but the newest few bundles (each is tens of MB; one per source change)."""
    bundles = sorted(
        (p for p in cache.iterdir() if p.is_dir() and "." not in p.name and p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in bundles[KEEP_BUNDLES - 1 :]:
        shutil.rmtree(old, ignore_errors=True)
