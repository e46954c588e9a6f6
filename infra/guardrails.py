"""Settings that would let SQS and Lambda lose or duplicate work stop the synth.

Two layers: `check_topology` refuses a topology (or a set of job types) that breaks an
SQS/Lambda rule before any resource is declared, and `PartialBatchResponseRequired`, a
validation on the stack, refuses any SQS event source mapping in the synthesized tree that does
not report partial batch failures, however it was declared.
"""

from __future__ import annotations

from typing import Any, Protocol

import jsii
from aws_cdk import CfnResource, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct, IValidation

from jobpipe.topology import Topology

MIN_MAX_RECEIVE_COUNT = 5
VISIBILITY_TIMEOUT_FACTOR = 6
REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"


class GuardrailError(ValueError):
    """A setting would let SQS/Lambda lose or duplicate work; the message says which and why."""


class JobTypes(Protocol):
    def max_attempts(self) -> int: ...


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


def _is_sqs_source(stack: Stack, arn: Any, resource_types: dict[str, str]) -> bool:
    resolved = stack.resolve(arn)
    if isinstance(resolved, str):
        return ":sqs:" in resolved
    if isinstance(resolved, dict) and "Fn::GetAtt" in resolved:
        logical_id = resolved["Fn::GetAtt"][0]
        return resource_types.get(logical_id) == "AWS::SQS::Queue"
    # An imported ARN we cannot see into: SQS ARNs carry the service name.
    return ":sqs:" in str(resolved)


@jsii.implements(IValidation)
class PartialBatchResponseRequired:
    """Fails the synth if an SQS event source mapping under `scope` lacks ReportBatchItemFailures.

    Without it, one failed record makes Lambda return the whole batch to the queue (duplicating
    the records that succeeded), and a handler's `batchItemFailures` is ignored.
    """

    def __init__(self, scope: IConstruct) -> None:
        self._scope = scope

    def validate(self) -> list[str]:
        stack = Stack.of(self._scope)
        nodes = self._scope.node.find_all()
        resource_types = {
            stack.resolve(stack.get_logical_id(n)): n.cfn_resource_type
            for n in nodes
            if isinstance(n, CfnResource)
        }
        errors: list[str] = []
        for node in nodes:
            if not isinstance(node, lambda_.CfnEventSourceMapping):
                continue
            if not _is_sqs_source(stack, node.event_source_arn, resource_types):
                continue
            response_types = stack.resolve(node.function_response_types) or []
            if REPORT_BATCH_ITEM_FAILURES not in response_types:
                errors.append(
                    f"{node.node.path}: an SQS event source without "
                    f"FunctionResponseTypes [{REPORT_BATCH_ITEM_FAILURES}] retries whole "
                    "batches (running succeeded jobs again) and ignores batchItemFailures; "
                    "set report_batch_item_failures=True"
                )
        return errors
