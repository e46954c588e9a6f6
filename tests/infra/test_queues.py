"""The jobs queue and DLQ: redrive, visibility, retention, encryption, TLS, redrive allow."""

from __future__ import annotations

from typing import Any

import pytest

from jobpipe.domain.registry import load_job_types
from jobpipe.topology import TOPOLOGY
from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.xdist_group("cdk")

QUEUE = TOPOLOGY.queue


def _queues(synthesized: Synthesized) -> tuple[str, dict[str, Any], str, dict[str, Any]]:
    queue_id = synthesized.logical_id("Queues/Queue")
    dlq_id = synthesized.logical_id("Queues/DeadLetterQueue")
    resources = synthesized.raw["Resources"]
    return queue_id, resources[queue_id]["Properties"], dlq_id, resources[dlq_id]["Properties"]


def test_failed_messages_are_redriven_to_the_dlq_after_max_receive_count(
    synthesized: Synthesized,
) -> None:
    # Given the synthesized queues
    _, queue, dlq_id, _ = _queues(synthesized)
    # Then the jobs queue redrives to the DLQ, above every job type's attempts and at least 5
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
    assert redrive["maxReceiveCount"] == QUEUE.max_receive_count
    assert redrive["maxReceiveCount"] >= 5
    assert redrive["maxReceiveCount"] > load_job_types().max_attempts()


def test_visibility_outlasts_six_worker_timeouts_plus_the_batching_window(
    synthesized: Synthesized,
) -> None:
    """Given the queue and the worker, then a message stays hidden for 6 worker timeouts plus the
    window.
    """
    _, queue, _, _ = _queues(synthesized)
    worker_id = synthesized.logical_id("Functions/Worker")
    worker = synthesized.raw["Resources"][worker_id]["Properties"]
    (mapping,) = synthesized.resources("AWS::Lambda::EventSourceMapping").values()
    window = mapping["Properties"]["MaximumBatchingWindowInSeconds"]
    assert queue["VisibilityTimeout"] == QUEUE.visibility_timeout_seconds
    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"] + window


def test_dead_letters_outlive_the_source_queue_for_fourteen_days(
    synthesized: Synthesized,
) -> None:
    """Given both queues, then dead letters are kept 14 days, longer than the queue keeps any.

    Standard queues keep the original enqueue time on redrive: the DLQ must keep longer.
    """
    _, queue, _, dlq = _queues(synthesized)
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    assert queue["MessageRetentionPeriod"] == QUEUE.retention_seconds


def test_both_queues_are_encrypted_at_rest(synthesized: Synthesized) -> None:
    """Given both queues, then SQS-managed encryption is on."""
    _, queue, _, dlq = _queues(synthesized)
    assert queue["SqsManagedSseEnabled"] is True
    assert dlq["SqsManagedSseEnabled"] is True


def test_both_queues_refuse_requests_without_tls(synthesized: Synthesized) -> None:
    # Given each queue's resource policy
    queue_id, _, dlq_id, _ = _queues(synthesized)
    policies = synthesized.resources("AWS::SQS::QueuePolicy").values()
    denied: set[str] = set()
    for policy in policies:
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if (
                statement["Effect"] == "Deny"
                and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                and statement["Action"] == "sqs:*"
            ):
                denied.update(q["Ref"] for q in policy["Properties"]["Queues"])
    # Then both deny any non-TLS request
    assert denied == {queue_id, dlq_id}


def test_only_the_jobs_queue_may_use_the_dlq(synthesized: Synthesized) -> None:
    """Given the DLQ's redrive allow policy, then only the jobs queue may redrive into it."""
    _, queue, _, dlq = _queues(synthesized)
    allow = dlq["RedriveAllowPolicy"]
    assert allow["redrivePermission"] == "byQueue"
    (source,) = allow["sourceQueueArns"]
    # The source is named by ARN (a token would be a dependency cycle): it must be the queue's.
    assert source["Fn::Join"][1][-1] == ":" + queue["QueueName"]


def test_workers_long_poll(synthesized: Synthesized) -> None:
    """Given the queue, then receives long-poll (fewer empty receives to pay for)."""
    _, queue, _, _ = _queues(synthesized)
    assert queue["ReceiveMessageWaitTimeSeconds"] == QUEUE.receive_wait_seconds
