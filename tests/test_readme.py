"""The README's Python examples are the code users copy: each passes `make lint` as it stands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
TOOLS = Path(sys.executable).parent


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Each ```python block of the README, as a module of its own."""
    directory = tmp_path_factory.mktemp("readme")
    blocks = PYTHON_BLOCK.findall(README.read_text())
    paths = [directory / f"readme_example_{number}.py" for number in range(len(blocks))]
    for path, code in zip(paths, blocks, strict=True):
        path.write_text(code)
    return paths


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_readme_has_python_examples(examples: list[Path]) -> None:
    # Given the README / Then it shows the client and a job type in Python
    assert len(examples) >= 2


def test_the_readme_python_examples_are_formatted_and_lint_clean(examples: list[Path]) -> None:
    # Given each Python example / When ruff checks it with the project's settings
    config = str(REPO_ROOT / "pyproject.toml")
    formatted = _run(str(TOOLS / "ruff"), "format", "--check", "--diff", "--config", config,
                     *map(str, examples))  # fmt: skip
    linted = _run(str(TOOLS / "ruff"), "check", "--config", config, *map(str, examples))
    # Then it is formatted and has no finding
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_readme_python_examples_type_check_strictly(examples: list[Path]) -> None:
    # Given each Python example / When mypy checks it as `make lint` checks the code (strict)
    checked = _run(str(TOOLS / "mypy"), *map(str, examples))
    # Then it has no error
    assert checked.returncode == 0, checked.stdout + checked.stderr
