"""A real headless Chromium (the system's package) driven by Playwright, for the dashboard.

Under CI (`CI` set, as `.ci/run` runs) a missing browser fails the run; elsewhere the browser
tests skip, saying how to get one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.local.conftest import client, local_stack  # noqa: F401  (shared fixtures)

CHROMIUM = Path(os.environ.get("JOBPIPE_CHROMIUM", "/usr/bin/chromium"))
# Headless, and nothing that reaches out to the internet on its own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOW_TO_GET_IT = (
    "the dashboard's browser tests need Chromium at {path}: install it with "
    "`apt-get install -y chromium` (Debian/Ubuntu), or point JOBPIPE_CHROMIUM at a Chromium binary"
)


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _missing(HOW_TO_GET_IT.format(path=CHROMIUM))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed: run `make venv`")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    try:
        yield opened
    finally:
        context.close()
