"""The four functions, all from one factory: runtime, logs, tracing, environment."""

from __future__ import annotations

from typing import Any

import pytest

from jobpipe import settings
from jobpipe.api.routes import FUNCTIONS
from jobpipe.topology import TOPOLOGY
from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.xdist_group("cdk")

HANDLERS = {spec.name: spec.handler for spec in FUNCTIONS}


def _function(synthesized: Synthesized, name: str) -> dict[str, Any]:
    props: dict[str, Any] = synthesized.raw["Resources"][
        synthesized.logical_id(f"Functions/{name}")
    ]["Properties"]
    return props


def test_there_is_a_function_for_each_handler_of_the_package(synthesized: Synthesized) -> None:
    """Given the stack, then its functions run exactly the package's handlers."""
    from pathlib import Path

    import jobpipe.handlers

    package = Path(jobpipe.handlers.__file__).parent
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    assert {f"jobpipe.handlers.{m}.handler" for m in modules} == set(HANDLERS.values())
    handlers = {
        f["Properties"]["Handler"] for f in synthesized.resources("AWS::Lambda::Function").values()
    }
    assert handlers == set(HANDLERS.values())


@pytest.mark.parametrize("name", sorted(HANDLERS))
def test_each_function_runs_python_3_13_on_arm64_with_its_handler(
    synthesized: Synthesized, name: str
) -> None:
    """Given each function, then it runs Python 3.13 on arm64 (what the bundle was built for)."""
    function = _function(synthesized, name)
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == HANDLERS[name]


def test_worker_and_api_functions_get_the_topologys_timeouts_and_memory(
    synthesized: Synthesized,
) -> None:
    """Given the functions, then their timeouts and memory are the topology's."""
    worker = _function(synthesized, "Worker")
    assert (worker["Timeout"], worker["MemorySize"]) == (
        TOPOLOGY.worker.timeout_seconds,
        TOPOLOGY.worker.memory_mb,
    )
    for name in ("Submit", "Status"):
        function = _function(synthesized, name)
        assert (function["Timeout"], function["MemorySize"]) == (
            TOPOLOGY.api.function_timeout_seconds,
            TOPOLOGY.api.function_memory_mb,
        )
    reaper = _function(synthesized, "Reaper")
    assert (reaper["Timeout"], reaper["MemorySize"]) == (
        TOPOLOGY.reaper.timeout_seconds,
        TOPOLOGY.reaper.memory_mb,
    )


@pytest.mark.parametrize("name", sorted(HANDLERS))
def test_each_function_logs_json_to_its_own_group_with_retention(
    synthesized: Synthesized, name: str
) -> None:
    # Given the function's logging config
    logging = _function(synthesized, name)["LoggingConfig"]
    # Then it logs JSON into a log group of this stack that expires
    assert logging["LogFormat"] == "JSON"
    group_id = synthesized.logical_id(f"Functions/{name}Logs")
    assert logging["LogGroup"] == {"Ref": group_id}
    group = synthesized.raw["Resources"][group_id]["Properties"]
    assert group["RetentionInDays"] == TOPOLOGY.log_retention_days


@pytest.mark.parametrize("name", sorted(HANDLERS))
def test_each_function_traces_with_xray(synthesized: Synthesized, name: str) -> None:
    """Given each function, then X-Ray tracing is active."""
    assert _function(synthesized, name)["TracingConfig"] == {"Mode": "Active"}


@pytest.mark.parametrize("name", sorted(HANDLERS))
def test_each_function_gets_its_settings_and_powertools_environment(
    synthesized: Synthesized, name: str
) -> None:
    # Given the function's environment
    env = _function(synthesized, name)["Environment"]["Variables"]
    table_id = synthesized.logical_id("Jobs/Table")
    queue_id = synthesized.logical_id("Queues/Queue")
    dlq_id = synthesized.logical_id("Queues/DeadLetterQueue")
    # Then settings point at this stack's resources, so get_settings() validates on AWS
    assert env[settings.ENV_TABLE_NAME] == {"Ref": table_id}
    assert env[settings.ENV_QUEUE_URL] == {"Ref": queue_id}
    assert env[settings.ENV_DLQ_URL] == {"Ref": dlq_id}
    assert env[settings.ENV_MAX_BODY_BYTES] == str(TOPOLOGY.api.max_body_bytes)
    assert env[settings.ENV_RETENTION_DAYS] == str(TOPOLOGY.retention_days)
    # And Powertools emits the metrics the alarms and dashboard read
    assert env["POWERTOOLS_SERVICE_NAME"] == TOPOLOGY.service_name
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == TOPOLOGY.metrics_namespace


def test_all_functions_share_one_code_asset(synthesized: Synthesized) -> None:
    """Given the four functions, then they deploy one code asset (one upload, one version of the
    code).
    """
    codes = {
        str(f["Properties"]["Code"])
        for f in synthesized.resources("AWS::Lambda::Function").values()
    }
    assert len(codes) == 1


@pytest.mark.parametrize("variant", ["iam", "jwt"])
def test_no_deployed_function_names_a_local_principal(
    synthesized: Synthesized, jwt_synthesized: Synthesized, variant: str
) -> None:
    """Given either auth variant, then no function's environment names a local principal, so
    a request that names no caller is refused on AWS instead of sharing one owner."""
    stack = synthesized if variant == "iam" else jwt_synthesized
    for function in stack.resources("AWS::Lambda::Function").values():
        environment = function["Properties"].get("Environment", {}).get("Variables", {})
        assert settings.ENV_LOCAL_PRINCIPAL not in environment
