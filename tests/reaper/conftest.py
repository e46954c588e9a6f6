"""The reaper runs against the worker tests' pipeline: the real worker handler, the adapters on
moto, the event-source harness and a controllable clock."""

from __future__ import annotations

from tests.worker.conftest import pipeline  # noqa: F401  (the fixture, shared)
