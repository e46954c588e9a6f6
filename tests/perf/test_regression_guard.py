"""Guards on what a job costs and what a cold start loads: counts, never times.

If one of these fails because a change needs more, update the expectation here in the same
commit and say why in its message; `make bench` shows what it costs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from scripts import bench

# Third-party (and own) top-level packages each handler may load at import, on Lambda.
RUNTIME = {
    "aws_lambda_powertools",
    "aws_xray_sdk",
    "botocore",
    "certifi",
    "dateutil",
    "jmespath",
    "jobpipe",
    "pydantic",
    "pydantic_core",
    "six",
    "typing_extensions",
    "typing_inspection",
    "urllib3",
    "wrapt",
}
ALLOWED_PACKAGES = {
    "submit": RUNTIME | {"annotated_types"},
    "status": RUNTIME | {"annotated_types"},
    "cancel": RUNTIME | {"annotated_types"},
    # Powertools' idempotency package imports its DynamoDB layer, hence boto3; a run's typed
    # outcome is a pydantic model (annotated_types).
    "worker": RUNTIME | {"boto3", "s3transfer", "annotated_types"},
}
# Every module in sys.modules after the import (standard library included), with some room.
MODULE_BUDGET = {"submit": 640, "status": 640, "cancel": 640, "worker": 680}
BASE = {
    "jobpipe.domain",
    "jobpipe.domain.expressions",
    "jobpipe.domain.job",
    "jobpipe.domain.states",
    "jobpipe.errors",
    "jobpipe.handlers",
    "jobpipe.observability",
    "jobpipe.topology",
}
# What every API function imports: its routes, bodies and errors, and the request deadline (no
# AWS call starts that could not finish). Its services load at its first request.
API = BASE | {
    "jobpipe.adapters",
    "jobpipe.adapters.clients",
    "jobpipe.api",
    "jobpipe.api.app",
    "jobpipe.api.bodies",
    "jobpipe.api.errors",
    "jobpipe.api.identity",
    "jobpipe.api.routes",
}
OWN_MODULES = {
    "submit": API | {"jobpipe.handlers.submit"},
    "status": API | {"jobpipe.handlers.status"},
    "cancel": API | {"jobpipe.handlers.cancel"},
    "worker": BASE
    | {
        "jobpipe.domain.context",
        "jobpipe.domain.outcome",
        "jobpipe.domain.record",
        "jobpipe.domain.registry",
        "jobpipe.domain.retry",
        # Recurring declarations (Cron, Rate) are imported with the registry: plain data.
        "jobpipe.domain.schedule",
        "jobpipe.followups",
        "jobpipe.handlers.worker",
        "jobpipe.ports",
        "jobpipe.worker",
        "jobpipe.worker.idempotency",
        "jobpipe.worker.limits",
        "jobpipe.worker.service",
    },
}


@pytest.fixture(scope="module")
def probes() -> dict[str, dict[str, Any]]:
    return {
        name: bench.import_probe(module, f"jobpipe-{name}")
        for name, module in bench.HANDLERS.items()
    }


@pytest.mark.parametrize("handler", sorted(bench.HANDLERS))
def test_a_handler_cold_start_loads_only_the_packages_it_needs(
    probes: dict[str, dict[str, Any]], handler: str
) -> None:
    # Given a fresh interpreter with Lambda's environment (X-Ray in Lambda mode)
    # When the handler module is imported
    probe = probes[handler]
    third_party = {
        name
        for name in probe["packages"]
        if name not in sys.stdlib_module_names and not name.startswith(("_", "__"))
    }
    # Then it loads no package beyond the expected ones, and no more modules than budgeted
    assert third_party <= ALLOWED_PACKAGES[handler], sorted(third_party - ALLOWED_PACKAGES[handler])
    assert probe["modules"] <= MODULE_BUDGET[handler]


@pytest.mark.parametrize("handler", sorted(bench.HANDLERS))
def test_a_handler_imports_only_its_own_part_of_jobpipe(
    probes: dict[str, dict[str, Any]], handler: str
) -> None:
    # Given a fresh interpreter / When the handler module is imported
    # Then exactly the expected jobpipe modules are loaded: no local stack, CLI, client,
    # operator tooling or the other functions' code
    assert set(probes[handler]["own"]) == OWN_MODULES[handler]


@pytest.mark.xdist_group("local")
def test_a_successful_job_costs_the_minimum_aws_calls() -> None:
    # Given the local stack and a few echo jobs submitted over HTTP
    # When they have succeeded and each was read once through the status API
    result = bench.measure_local(jobs=20, clients=2)
    # Then each job cost PutItem + SendMessage at submit, one write at start and one at
    # success, one GetItem for the status read, and its share of a full batch's receive and
    # delete: 5.2 requests, well under the 6.5 budget
    assert result["calls_breakdown"] == {
        "dynamodb.GetItem": 1.0,
        "dynamodb.PutItem": 1.0,
        "dynamodb.UpdateItem": 2.0,
        "sqs.DeleteMessageBatch": 0.1,
        "sqs.ReceiveMessage": 0.1,
        "sqs.SendMessage": 1.0,
    }
    assert result["calls_per_job"] <= 6.5


def test_the_cost_model_prices_a_job_from_its_calls() -> None:
    # Given the calls of one job and handler durations
    calls = {
        "dynamodb.PutItem": 1.0,
        "dynamodb.UpdateItem": 2.0,
        "dynamodb.GetItem": 1.0,
        "sqs.SendMessage": 1.0,
        "sqs.ReceiveMessage": 0.1,
        "sqs.DeleteMessageBatch": 0.1,
    }
    durations = bench.Durations(submit_ms=10, status_ms=5, worker_batch_ms=100, batch_size=10)
    # When it is priced with one and with ten status polls
    one = bench.cost_per_job(calls, 0.5, durations, polls=1)
    ten = bench.cost_per_job(calls, 0.5, durations, polls=10)
    # Then polling adds API, Lambda and read costs, and a million jobs cost a few dollars
    assert 1.0 < one * 1e6 < 10.0
    assert ten > one
    assert bench.step_functions_cost_per_job(1) > one


@pytest.mark.xdist_group("local")
def test_a_quick_bench_writes_every_figure_next_to_its_baseline(tmp_path: Path) -> None:
    # Given a CI-sized run of `make bench`
    out = tmp_path / "results.json"
    # When it runs
    assert bench.main(["--quick", "--out", str(out)]) == 0
    # Then results.json holds every figure, each baseline it is measured against, and a verdict
    # for each target (the figures themselves are times: they are for `make bench` to show)
    results = json.loads(out.read_text())
    assert set(results["import_ms"]) == {"boto3", *bench.HANDLERS}
    assert set(results["import_library_floor_ms"]) == set(bench.HANDLERS)
    for figure in (
        "cost_per_million_usd",
        "cost_per_million_usd_10_polls",
        "step_functions_standard_per_million_usd",
        "import_ratio",
        "import_library_floor_ratio",
        "worker_ms_per_job",
        "store_only_worker_ms_per_job",
        "minimal_worker_ms_per_job",
        "worker_overhead_ratio",
        "writes_ratio",
        "framework_ratio",
        "local_throughput_jobs_per_s",
        "local_latency_p50_ms",
        "local_latency_p99_ms",
        "moto_calls_per_s",
        "local_efficiency",
    ):
        assert results[figure] > 0, figure
    assert results["calls_per_job"] == 5.2
    assert set(results["targets"]) == {
        "calls_per_job",
        "import_ratio",
        "worker_overhead_ratio",
        "local_efficiency",
    }
    assert all(isinstance(target["met"], bool) for target in results["targets"].values())
