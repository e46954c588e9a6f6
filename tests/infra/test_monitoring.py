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


def test_the_dead_letter_alarm_holds_while_sqs_publishes_nothing_for_an_idle_dlq(
    synthesized: Synthesized,
) -> None:
    # Given the DLQ alarm / Then missing data (SQS stops publishing for an idle queue) keeps its
    # state instead of clearing it while letters wait
    assert _alarm(synthesized, "DeadLetters")["TreatMissingData"] == "ignore"


def test_reaper_failures_raise_alarms(synthesized: Synthesized) -> None:
    # Given the reaper's alarms / Then a failed run, or a stuck job it could not resolve, sets
    # them off
    errors = _alarm(synthesized, "ReaperErrors")
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert _dimension(errors)["Value"] == {"Ref": synthesized.logical_id("Functions/Reaper")}
    unresolved = _alarm(synthesized, "ReaperUnresolved")
    (query,) = unresolved["Metrics"]
    assert query["MetricStat"]["Metric"]["MetricName"] == TOPOLOGY.metrics.reaper_unresolved
    assert unresolved["Threshold"] == 0


def test_without_a_notification_target_alarms_have_no_actions(synthesized: Synthesized) -> None:
    for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values():
        assert "AlarmActions" not in alarm["Properties"]


def test_an_alarm_email_is_subscribed_to_a_topic_every_alarm_notifies(
    tmp_path_factory: pytest.TempPathFactory, bundle: Any
) -> None:
    from tests.infra.conftest import synthesize

    # Given a deploy with `-c alarmEmail=ops@example.com`
    synthesized = synthesize(
        tmp_path_factory.mktemp("cdk-alarms"), context={"alarmEmail": "ops@example.com"}
    )
    # Then one encrypted topic emails that address, and every alarm notifies it
    (topic_id, topic), *others = synthesized.resources("AWS::SNS::Topic").items()
    assert others == []
    assert "KmsMasterKeyId" in topic["Properties"]
    (subscription,) = synthesized.resources("AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "ops@example.com"
    alarms = synthesized.resources("AWS::CloudWatch::Alarm").values()
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": topic_id}] for a in alarms)


def test_alarms_may_notify_an_existing_topic(
    tmp_path_factory: pytest.TempPathFactory, bundle: Any
) -> None:
    from tests.infra.conftest import synthesize

    arn = "arn:aws:sns:us-east-1:123456789012:oncall"
    synthesized = synthesize(tmp_path_factory.mktemp("cdk-topic"), context={"alarmTopicArn": arn})
    assert synthesized.resources("AWS::SNS::Topic") == {}
    for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [arn]


@pytest.mark.parametrize(
    "context",
    [
        {"alarmEmail": "ops@example.com", "alarmTopicArn": "arn:aws:sns:us-east-1:1:t"},
        {"alarmEmail": "not-an-address"},
        {"alarmTopicArn": "oncall"},
    ],
)
def test_a_bad_alarm_target_is_refused(context: dict[str, str]) -> None:
    from aws_cdk import App
    from infra.app import ContextError, alarms_from_context

    with pytest.raises(ContextError):
        alarms_from_context(App(context=context))


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
