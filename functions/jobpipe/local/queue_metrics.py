"""What SQS does on AWS and moto does not: publish a queue's `ApproximateAgeOfOldestMessage` to
CloudWatch, so that the reaper reads the same metric locally as on AWS (it tells a backlog from
a lost message by it). Read from the moto server's own state, in this process.

As SQS counts it: the age of the oldest message not yet deleted, leaving out messages received
three times or more (SQS moves those out of the way of the metric), unless there are only such.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from jobpipe.adapters.sqs import AGE_METRIC

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

MOTO_ACCOUNT = "123456789012"


def oldest_message_age_seconds(queue_url: str, region: str, now: float | None = None) -> float:
    """The age SQS would publish for the queue at `queue_url` on the in-process moto server."""
    from moto.sqs.models import sqs_backends

    name = queue_url.rstrip("/").rsplit("/", 1)[-1]
    queue: Any = sqs_backends[MOTO_ACCOUNT][region].get_queue(name)
    messages = [m for m in list(queue._messages) if m.sent_timestamp]
    counted = [m for m in messages if m.approximate_receive_count < 3] or messages
    if not counted:
        return 0.0
    oldest_ms = min(int(m.sent_timestamp) for m in counted)
    return max(0.0, (time.time() if now is None else now) - oldest_ms / 1000)


def publish(cloudwatch: CloudWatchClient, queue_url: str, region: str) -> float:
    """Publish the queue's oldest-message age, as SQS would; returns it."""
    age = oldest_message_age_seconds(queue_url, region)
    cloudwatch.put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": AGE_METRIC,
                "Dimensions": [
                    {"Name": "QueueName", "Value": queue_url.rstrip("/").rsplit("/", 1)[-1]}
                ],
                "Value": age,
                "Unit": "Seconds",
            }
        ],
    )
    return age
