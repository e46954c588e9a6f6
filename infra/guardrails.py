"""Settings that would let SQS and Lambda lose or duplicate work stop the synth.

Two layers: `check_topology` refuses a topology (or a set of job types) that breaks an
SQS/Lambda rule before any resource is declared, and `SqsEventSourceRules`, a validation on the
stack, checks every SQS event source mapping in the synthesized tree, however it was declared:
partial batch responses on, and the queue's visibility, redrive and DLQ retention consistent
with the function it feeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import jsii
from aws_cdk import CfnResource, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import IConstruct, IValidation

from jobpipe.domain.schedule import RecurringSchedule
from jobpipe.topology import Topology

MIN_MAX_RECEIVE_COUNT = 5
VISIBILITY_TIMEOUT_FACTOR = 6
REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"


class GuardrailError(ValueError):
    """A setting would let SQS/Lambda lose or duplicate work; the message says which and why."""


class JobTypes(Protocol):
    # The recurring schedules the job types declare, by name (deployed by the stack).
    @property
    def schedules(self) -> Mapping[str, RecurringSchedule]: ...

    def max_attempts(self) -> int: ...

    def schedule_problems(self) -> list[str]: ...

    def timeout_problems(
        self, max_timeout_seconds: float, worker_timeout_seconds: int
    ) -> list[str]: ...


def topology_problems(topology: Topology, job_types: JobTypes) -> list[str]:
    """Every rule `topology` breaks, as sentences naming the setting, the value and the fix."""
    problems: list[str] = []
    queue, worker = topology.queue, topology.worker
    needed = VISIBILITY_TIMEOUT_FACTOR * worker.timeout_seconds + worker.batching_window_seconds
    if queue.visibility_timeout_seconds < needed:
        problems.append(
            f"queue visibility timeout {queue.visibility_timeout_seconds} s is below "
            f"{VISIBILITY_TIMEOUT_FACTOR} x worker timeout ({worker.timeout_seconds} s) + "
            f"batching window ({worker.batching_window_seconds} s) = {needed} s: messages "
            "would reappear while a worker still runs them and run twice"
        )
    if queue.max_receive_count < MIN_MAX_RECEIVE_COUNT:
        problems.append(
            f"maxReceiveCount {queue.max_receive_count} is below {MIN_MAX_RECEIVE_COUNT}: "
            "throttles and redeliveries consume receives, so jobs would be dead-lettered "
            "without ever failing"
        )
    largest = job_types.max_attempts()
    if queue.max_receive_count <= largest:
        problems.append(
            f"maxReceiveCount {queue.max_receive_count} is not above the largest job type "
            f"max_attempts ({largest}): SQS would dead-letter jobs that still have attempts "
            "left; raise maxReceiveCount above every max_attempts"
        )
    problems.extend(
        job_types.timeout_problems(topology.max_job_timeout_seconds(), worker.timeout_seconds)
    )
    # A schedule for an unknown job type, or with params its model refuses, would fail at every
    # firing: it never reaches a template.
    problems.extend(job_types.schedule_problems())
    if queue.dlq_retention_seconds <= queue.retention_seconds:
        problems.append(
            f"DLQ retention {queue.dlq_retention_seconds} s is not longer than the queue's "
            f"{queue.retention_seconds} s: a redriven message keeps its original enqueue time, "
            "so it would expire from the DLQ unseen"
        )
    return problems


def check_topology(topology: Topology, job_types: JobTypes) -> None:
    """Raise `GuardrailError` listing every rule `topology` breaks; return if it breaks none."""
    problems = topology_problems(topology, job_types)
    if problems:
        raise GuardrailError(
            "jobpipe refuses this topology:\n" + "\n".join(f"- {p}" for p in problems)
        )


# CloudFormation's defaults for the properties the rules below read.
DEFAULT_VISIBILITY_TIMEOUT = 30
DEFAULT_RETENTION = 4 * 24 * 3600
DEFAULT_FUNCTION_TIMEOUT = 3


def _referenced_id(value: Any) -> str | None:
    """The logical id a resolved `Ref` or `Fn::GetAtt` points at, if it is one."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def _int(value: Any, default: int) -> int | None:
    """A concrete integer setting, its default when unset, None when only known at deploy."""
    if value is None:
        return default
    return value if isinstance(value, int) else None


@jsii.implements(IValidation)
class SqsEventSourceRules:
    """Fails the synth if an SQS event source mapping under `scope` could lose or duplicate work,
    whatever the topology said: it must report batch item failures, and, where its queue and
    function are in the same stack, the queue must outlast the function's timeouts and redrive
    to a DLQ that keeps messages longer than it does.

    Without ReportBatchItemFailures one failed record makes Lambda return the whole batch to the
    queue (running the records that succeeded again), and `batchItemFailures` is ignored.
    """

    def __init__(self, scope: IConstruct) -> None:
        self._scope = scope

    def validate(self) -> list[str]:
        stack = Stack.of(self._scope)
        resources: dict[str, CfnResource] = {
            stack.resolve(stack.get_logical_id(n)): n
            for n in self._scope.node.find_all()
            if isinstance(n, CfnResource)
        }
        errors: list[str] = []
        for mapping in resources.values():
            if isinstance(mapping, lambda_.CfnEventSourceMapping):
                errors.extend(self._check(stack, mapping, resources))
        return errors

    def _check(
        self,
        stack: Stack,
        mapping: lambda_.CfnEventSourceMapping,
        resources: dict[str, CfnResource],
    ) -> list[str]:
        source = stack.resolve(mapping.event_source_arn)
        queue = resources.get(_referenced_id(source) or "")
        if queue is None:
            # An imported source: SQS ARNs carry the service name.
            if ":sqs:" not in str(source):
                return []
        elif not isinstance(queue, sqs.CfnQueue):
            return []
        path = mapping.node.path
        errors: list[str] = []
        response_types = stack.resolve(mapping.function_response_types) or []
        if REPORT_BATCH_ITEM_FAILURES not in response_types:
            errors.append(
                f"{path}: an SQS event source without FunctionResponseTypes "
                f"[{REPORT_BATCH_ITEM_FAILURES}] retries whole batches (running succeeded jobs "
                "again) and ignores batchItemFailures; set report_batch_item_failures=True"
            )
        if queue is None:
            return errors
        function = resources.get(_referenced_id(stack.resolve(mapping.function_name)) or "")
        visibility = _int(stack.resolve(queue.visibility_timeout), DEFAULT_VISIBILITY_TIMEOUT)
        window = _int(stack.resolve(mapping.maximum_batching_window_in_seconds), 0)
        if isinstance(function, lambda_.CfnFunction):
            timeout = _int(stack.resolve(function.timeout), DEFAULT_FUNCTION_TIMEOUT)
            if None not in (visibility, timeout, window):
                assert visibility is not None and timeout is not None and window is not None
                needed = VISIBILITY_TIMEOUT_FACTOR * timeout + window
                if visibility < needed:
                    errors.append(
                        f"{path}: queue visibility timeout {visibility} s is below "
                        f"{VISIBILITY_TIMEOUT_FACTOR} x function timeout ({timeout} s) + "
                        f"batching window ({window} s) = {needed} s"
                    )
        redrive = stack.resolve(queue.redrive_policy)
        if not isinstance(redrive, dict):
            errors.append(f"{path}: the source queue has no redrive policy (dead-letter queue)")
            return errors
        receives = redrive.get("maxReceiveCount")
        if isinstance(receives, int) and receives < MIN_MAX_RECEIVE_COUNT:
            errors.append(
                f"{path}: maxReceiveCount {receives} is below {MIN_MAX_RECEIVE_COUNT}: "
                "throttles alone would dead-letter jobs"
            )
        dlq = resources.get(_referenced_id(redrive.get("deadLetterTargetArn")) or "")
        if isinstance(dlq, sqs.CfnQueue):
            kept = _int(stack.resolve(dlq.message_retention_period), DEFAULT_RETENTION)
            source_kept = _int(stack.resolve(queue.message_retention_period), DEFAULT_RETENTION)
            if kept is not None and source_kept is not None and kept <= source_kept:
                errors.append(
                    f"{path}: DLQ retention {kept} s is not longer than the source queue's "
                    f"{source_kept} s: redriven messages keep their enqueue time and would expire"
                )
        return errors
