"""Reports how many requests the fuzz sent and how many answered 5xx (the figure `make fuzz`
prints last)."""

from __future__ import annotations

from typing import Any

TALLY: dict[str, int] = {"requests": 0, "server_errors": 0}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY["requests"]:
        terminalreporter.write_line(
            f"fuzz: requests={TALLY['requests']} server_errors={TALLY['server_errors']}"
        )
