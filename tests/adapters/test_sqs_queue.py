"""The queue port on SQS (moto): delayed sends, and how long the queue's backlog has waited."""

from __future__ import annotations

import time

from jobpipe.adapters.sqs import SQSJobQueue
from tests.conftest import Aws


def test_an_empty_queue_has_no_backlog(aws: Aws) -> None:
    queue = SQSJobQueue(aws.queue_url, aws.dlq_url)
    assert queue.oldest_message_age_seconds() == 0.0


def test_a_queue_with_messages_reports_its_oldest_messages_age_from_sqs_metric(aws: Aws) -> None:
    import boto3

    from jobpipe.local.queue_metrics import publish

    # Given messages in the queue, and the age SQS publishes for it (the local stack publishes
    # what SQS would: moto does not)
    queue = SQSJobQueue(aws.queue_url, aws.dlq_url)
    queue.send("{}")
    cloudwatch = boto3.client("cloudwatch")
    time.sleep(0.05)
    published = publish(cloudwatch, aws.queue_url, "us-east-1")
    # Then the queue reports that age
    assert published > 0
    assert queue.oldest_message_age_seconds() == published


def test_a_queue_with_messages_but_no_published_age_cannot_say(aws: Aws) -> None:
    queue = SQSJobQueue(aws.queue_url, aws.dlq_url)
    queue.send("{}")
    assert queue.oldest_message_age_seconds() is None


def test_a_delayed_message_stays_hidden_for_its_delay(aws: Aws) -> None:
    queue = SQSJobQueue(aws.queue_url, aws.dlq_url)
    queue.send("{}", delay_seconds=60)
    visible = aws.sqs.receive_message(QueueUrl=aws.queue_url).get("Messages", [])
    assert visible == [] and aws.queue_depth() == 1
