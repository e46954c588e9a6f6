"""Settings that would lose or duplicate work refuse to synthesize, each with a clear message."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from infra.app import build_app
from infra.bundling import Bundle
from infra.guardrails import (
    GuardrailError,
    SqsEventSourceRules,
    check_topology,
)
from pydantic import BaseModel

from jobpipe.domain.registry import load_job_types
from jobpipe.topology import TOPOLOGY, Topology

pytestmark = pytest.mark.xdist_group("cdk")


@dataclasses.dataclass(frozen=True)
class JobTypesWithMaxAttempts:
    largest: int

    schedules: dict[str, Any] = dataclasses.field(default_factory=dict)

    def max_attempts(self) -> int:
        return self.largest

    def schedule_problems(self) -> list[str]:
        return []

    def timeout_problems(
        self, max_timeout_seconds: float, worker_timeout_seconds: int
    ) -> list[str]:
        return []


class NoParams(BaseModel):
    pass


def _topology(**queue: int) -> Topology:
    return dataclasses.replace(TOPOLOGY, queue=dataclasses.replace(TOPOLOGY.queue, **queue))


def test_the_shipped_topology_and_job_types_pass() -> None:
    """Given the shipped topology and example job types, when checked, then nothing is refused."""
    check_topology(TOPOLOGY, load_job_types())


def test_visibility_below_six_timeouts_plus_window_is_refused() -> None:
    # Given a visibility one second short of 6 x 60 s + 1 s
    topology = _topology(visibility_timeout_seconds=6 * TOPOLOGY.worker.timeout_seconds)
    # When the topology is checked / Then it is refused, naming the setting and the minimum
    with pytest.raises(GuardrailError, match=r"visibility timeout 360 s is below .* = 361 s"):
        check_topology(topology, load_job_types())


def test_max_receive_count_below_five_is_refused() -> None:
    """Given maxReceiveCount 4, when checked, then it is refused: throttles alone would dead-letter
    jobs.
    """
    with pytest.raises(GuardrailError, match="maxReceiveCount 4 is below 5"):
        check_topology(_topology(max_receive_count=4), JobTypesWithMaxAttempts(1))


def test_max_receive_count_not_above_a_job_types_max_attempts_is_refused() -> None:
    # Given a job type that may run 10 attempts and a queue that redrives on the 10th receive
    job_types = JobTypesWithMaxAttempts(TOPOLOGY.queue.max_receive_count)
    # Then SQS would dead-letter a job with attempts left: refused
    with pytest.raises(GuardrailError, match="not above the largest job type max_attempts"):
        check_topology(TOPOLOGY, job_types)


def test_a_job_type_whose_timeout_cannot_fit_the_worker_is_refused_by_name() -> None:
    from jobpipe.domain.registry import Registry, job_type

    # Given a job type declaring as long a timeout as the worker function itself has
    registry = Registry()

    @job_type("transcode", timeout=TOPOLOGY.worker.timeout_seconds, into=registry)
    def transcode(params: NoParams) -> None:
        return None

    # When the synth checks it / Then it is refused, naming the type and what would fit
    limit = f"{TOPOLOGY.max_job_timeout_seconds():g} s"
    with pytest.raises(GuardrailError, match=rf"'transcode' declares timeout=60 s.*{limit}"):
        check_topology(TOPOLOGY, registry)


def test_dlq_retention_not_longer_than_the_source_is_refused() -> None:
    """Given a DLQ keeping messages no longer than the queue, when checked, then it is refused."""
    topology = _topology(dlq_retention_seconds=TOPOLOGY.queue.retention_seconds)
    with pytest.raises(GuardrailError, match=r"DLQ retention .* is not longer than the queue's"):
        check_topology(topology, load_job_types())


def test_every_broken_rule_is_reported_at_once() -> None:
    """Given three broken rules, when checked, then the one error lists all three."""
    topology = _topology(max_receive_count=2, visibility_timeout_seconds=30)
    with pytest.raises(GuardrailError) as refused:
        check_topology(topology, load_job_types())
    assert str(refused.value).count("\n- ") == 3


def test_the_app_refuses_a_bad_topology_before_declaring_anything(bundle: Bundle) -> None:
    """Given a bad topology, when the app is built, then it raises before any resource exists."""
    with pytest.raises(GuardrailError, match="maxReceiveCount"):
        build_app(topology=_topology(max_receive_count=3), bundle=bundle)


def _guarded_app(
    *,
    report_batch_item_failures: bool = True,
    visibility_seconds: int = 361,
    timeout_seconds: int = 60,
    window_seconds: int = 1,
    max_receive_count: int | None = 10,
    dlq_retention_days: int = 14,
) -> App:
    """A minimal stack with the validation: a queue (and DLQ) feeding a function."""
    app = App()
    stack = Stack(app, "Guarded")
    stack.node.add_validation(SqsEventSourceRules(stack))
    dlq = sqs.Queue(stack, "Dlq", retention_period=Duration.days(dlq_retention_days))
    queue = sqs.Queue(
        stack,
        "Queue",
        visibility_timeout=Duration.seconds(visibility_seconds),
        retention_period=Duration.days(4),
        dead_letter_queue=(
            sqs.DeadLetterQueue(queue=dlq, max_receive_count=max_receive_count)
            if max_receive_count is not None
            else None
        ),
    )
    function = lambda_.Function(
        stack,
        "Worker",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="index.handler",
        timeout=Duration.seconds(timeout_seconds),
        code=lambda_.Code.from_inline("def handler(event, context): return None"),
    )
    lambda_.EventSourceMapping(
        stack,
        "Mapping",
        target=function,
        event_source_arn=queue.queue_arn,
        max_batching_window=Duration.seconds(window_seconds),
        report_batch_item_failures=report_batch_item_failures,
    )
    return app


def test_an_sqs_event_source_without_report_batch_item_failures_fails_the_synth() -> None:
    # Given a stack whose SQS mapping does not report partial batch failures
    app = _guarded_app(report_batch_item_failures=False)
    # When it is synthesized / Then the synth fails and says why and how to fix it
    with pytest.raises(
        RuntimeError, match=r"without FunctionResponseTypes.*ReportBatchItemFailures"
    ):
        app.synth()


def test_a_consistent_sqs_event_source_synthesizes() -> None:
    """Given a queue consistent with its consumer, when synthesized, then the validation passes."""
    _guarded_app().synth()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"visibility_seconds": 360},
            r"visibility timeout 360 s is below 6 x function timeout \(60 s\) \+ batching "
            r"window \(1 s\) = 361 s",
        ),
        ({"timeout_seconds": 90}, r"= 541 s"),
        ({"max_receive_count": None}, r"no redrive policy"),
        ({"max_receive_count": 3}, r"maxReceiveCount 3 is below 5"),
        ({"dlq_retention_days": 4}, r"DLQ retention 345600 s is not longer"),
    ],
    ids=["visibility", "timeout", "no-dlq", "max-receive", "dlq-retention"],
)
def test_a_queue_inconsistent_with_its_consumer_fails_the_synth(
    settings: dict[str, Any], message: str
) -> None:
    # Given a mapping whose queue was declared without the topology (settings edited in place)
    app = _guarded_app(**settings)
    # When it is synthesized / Then the template-level check refuses it too
    with pytest.raises(RuntimeError, match=message):
        app.synth()


def test_the_jobpipe_stack_checks_its_own_event_source(tmp_path: Path, bundle: Bundle) -> None:
    # Given the real stack whose mapping lost ReportBatchItemFailures after construction
    app, stack = build_app(outdir=str(tmp_path), bundle=bundle)
    (mapping,) = [n for n in stack.node.find_all() if isinstance(n, lambda_.CfnEventSourceMapping)]
    mapping.function_response_types = []
    # When it is synthesized / Then it fails
    with pytest.raises(RuntimeError, match="ReportBatchItemFailures"):
        app.synth()
