"""The worker's SQS event source mapping."""

from __future__ import annotations

import pytest

from jobpipe.topology import TOPOLOGY
from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.xdist_group("cdk")


def test_the_worker_polls_the_jobs_queue_and_reports_partial_batch_failures(
    synthesized: Synthesized,
) -> None:
    # Given the only event source mapping of the stack
    (mapping,) = synthesized.resources("AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    # Then it feeds the jobs queue to the worker
    assert props["EventSourceArn"] == {
        "Fn::GetAtt": [synthesized.logical_id("Queues/Queue"), "Arn"]
    }
    assert props["FunctionName"] == {"Ref": synthesized.logical_id("Functions/Worker")}
    # And a failed record goes back alone, not with the whole batch
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_batching_and_concurrency_follow_the_topology(synthesized: Synthesized) -> None:
    """Given the mapping, then batch size, window and maximum concurrency are the topology's."""
    (mapping,) = synthesized.resources("AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    assert props["BatchSize"] == TOPOLOGY.worker.batch_size
    assert props["MaximumBatchingWindowInSeconds"] == TOPOLOGY.worker.batching_window_seconds
    # Reserved concurrency does not bound an SQS mapping; MaximumConcurrency does.
    assert props["ScalingConfig"] == {"MaximumConcurrency": TOPOLOGY.worker.maximum_concurrency}
    assert (
        "ReservedConcurrentExecutions"
        not in (
            synthesized.raw["Resources"][synthesized.logical_id("Functions/Worker")]["Properties"]
        )
    )
