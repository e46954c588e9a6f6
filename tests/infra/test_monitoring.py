"""Alarms on lost or delayed work, and the dashboard's metrics."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobpipe.topology import TOPOLOGY
from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.xdist_group("cdk")


def _alarm(synthesized: Synthesized, name: str) -> dict[str, Any]:
    props: dict[str, Any] = synthesized.raw["Resources"][
        synthesized.logical_id(f"Monitoring/{name}")
    ]["Properties"]
    return props


def _dimension(alarm: dict[str, Any]) -> dict[str, Any]:
    (dimension,) = alarm["Dimensions"]
    return dimension  # type: ignore[no-any-return]


def test_any_dead_lettered_message_raises_an_alarm(synthesized: Synthesized) -> None:
    """Given the DLQ alarm, then one visible dead letter sets it off."""
    alarm = _alarm(synthesized, "DeadLetters")
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert _dimension(alarm)["Value"] == {
        "Fn::GetAtt": [synthesized.logical_id("Queues/DeadLetterQueue"), "QueueName"]
    }
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


def test_a_queue_falling_behind_raises_an_alarm(synthesized: Synthesized) -> None:
    """Given the age alarm, then it watches the jobs queue's oldest message."""
    alarm = _alarm(synthesized, "OldestMessageAge")
    assert alarm["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert _dimension(alarm)["Value"] == {
        "Fn::GetAtt": [synthesized.logical_id("Queues/Queue"), "QueueName"]
    }
    # Above the largest retry backoff of the examples, below the queue's retention.
    assert 0 < alarm["Threshold"] < TOPOLOGY.queue.retention_seconds


@pytest.mark.parametrize(
    "name, metric", [("WorkerErrors", "Errors"), ("WorkerThrottles", "Throttles")]
)
def test_worker_errors_and_throttles_raise_alarms(
    synthesized: Synthesized, name: str, metric: str
) -> None:
    """Given the worker alarms, then any error or throttle of the worker sets them off."""
    alarm = _alarm(synthesized, name)
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", metric)
    assert _dimension(alarm)["Value"] == {"Ref": synthesized.logical_id("Functions/Worker")}
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


def test_api_5xx_raises_an_alarm(synthesized: Synthesized) -> None:
    """Given the API alarm, then it watches this API's 5xx count."""
    alarm = _alarm(synthesized, "Api5xx")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "5xx")
    assert _dimension(alarm) == {
        "Name": "ApiId",
        "Value": {"Ref": synthesized.logical_id("Api/HttpApi")},
    }


def _dashboard_body(synthesized: Synthesized) -> str:
    (dashboard,) = synthesized.resources("AWS::CloudWatch::Dashboard").values()
    return json.dumps(dashboard["Properties"]["DashboardBody"])


def test_the_dashboard_shows_every_job_outcome_the_functions_emit(
    synthesized: Synthesized,
) -> None:
    """Given the dashboard, then it graphs every metric the functions emit, by the names they emit
    them.
    """
    body = _dashboard_body(synthesized)
    names = TOPOLOGY.metrics
    for metric in (
        names.submitted,
        names.succeeded,
        names.failed,
        names.retried,
        names.dead_lettered,
        names.poison,
        names.duration,
    ):
        assert (
            f'\\"{TOPOLOGY.metrics_namespace}\\",\\"{metric}\\",\\"service\\",\\"{TOPOLOGY.service_name}\\"'
            in body
        ), metric


def test_the_dashboard_shows_queue_depth_age_errors_and_durations(
    synthesized: Synthesized,
) -> None:
    """Given the dashboard, then it graphs queue depth and age, errors, throttles and durations."""
    body = _dashboard_body(synthesized)
    for metric in (
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateAgeOfOldestMessage",
        "Errors",
        "Throttles",
        "Duration",
        "5xx",
        "Latency",
    ):
        assert f'\\"{metric}\\"' in body, metric
