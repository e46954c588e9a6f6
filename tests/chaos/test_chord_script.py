"""`make chord`, CI-sized: a chord of 20 steps through the local stack, checked from outside."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from scripts import chord

SCRIPT = Path(chord.__file__)


@pytest.mark.slow
def test_a_chord_runs_its_body_once_with_every_header_result() -> None:
    # Given the local stack / When a chord of 20 header steps is submitted and waited for
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "20", "--timeout", "240"],
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    # Then the body ran once, after every header step, with their sum
    last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert last.startswith("chord: steps=20 body_runs=1 result_ok=true"), run.stdout + run.stderr
    assert run.returncode == 0
