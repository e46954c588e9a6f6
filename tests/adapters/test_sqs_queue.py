"""The queue port on SQS (moto): delayed sends, and how long the queue's backlog has waited."""

from __future__ import annotations

import time
from typing import Any

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


def test_many_messages_are_sent_ten_at_a_time_within_one_mib(aws: Aws) -> None:
    from jobpipe.adapters.sqs import _send_batches

    # Given 23 small bodies and 5 of 300 KiB
    small = [f'{{"n": {i}}}' for i in range(23)]
    large = ["x" * 300 * 1024 for _ in range(5)]
    queue = SQSJobQueue(aws.queue_url, aws.dlq_url)
    # When they are sent / Then every one is on the queue
    assert queue.send_many(small + large) == set()
    assert aws.queue_depth() == 28
    # And no request held more than 10 entries or more than 1 MiB
    batches = _send_batches(small + large)
    assert [len(b) for b in batches] == [10, 10, 6, 2]


class FlakyBatchClient:
    """SendMessageBatch that refuses some entries: `transient` ones the first `times` calls
    (SQS's own fault), `refused` ones always (the message's fault)."""

    def __init__(self, transient: set[str], refused: set[str], times: int) -> None:
        self.transient, self.refused, self.times = transient, refused, times
        self.calls: list[list[str]] = []

    def send_message_batch(self, **request: Any) -> dict[str, Any]:
        entries: list[dict[str, str]] = request["Entries"]
        self.calls.append([e["Id"] for e in entries])
        failed = []
        for entry in entries:
            if entry["Id"] in self.refused:
                failed.append({"Id": entry["Id"], "SenderFault": True, "Code": "InvalidBody"})
            elif entry["Id"] in self.transient and len(self.calls) <= self.times:
                failed.append({"Id": entry["Id"], "SenderFault": False, "Code": "InternalError"})
        failed_ids = {f["Id"] for f in failed}
        ok = [{"Id": e["Id"], "MessageId": "m"} for e in entries if e["Id"] not in failed_ids]
        return {"Successful": ok, "Failed": failed}


def test_entries_sqs_did_not_take_are_sent_again_and_those_it_refused_are_reported(
    monkeypatch: Any,
) -> None:
    import jobpipe.adapters.sqs as sqs

    monkeypatch.setattr(sqs, "SEND_BACKOFF_SECONDS", 0.0)
    # Given SQS failing two entries twice, and refusing one as malformed
    client = FlakyBatchClient(transient={"1", "3"}, refused={"4"}, times=2)
    queue = SQSJobQueue("q", "d", client)  # type: ignore[arg-type]
    # When five messages are sent
    unsent = queue.send_many([f"m{i}" for i in range(5)])
    # Then the two are sent again until taken, and only the refused one is reported unsent
    assert unsent == {4}
    assert client.calls == [["0", "1", "2", "3", "4"], ["1", "3"], ["1", "3"]]


def test_entries_that_keep_failing_are_reported_after_the_retries(monkeypatch: Any) -> None:
    import jobpipe.adapters.sqs as sqs

    monkeypatch.setattr(sqs, "SEND_BACKOFF_SECONDS", 0.0)
    client = FlakyBatchClient(transient={"0"}, refused=set(), times=100)
    queue = SQSJobQueue("q", "d", client)  # type: ignore[arg-type]
    assert queue.send_many(["a", "b"]) == {0}
    assert len(client.calls) == sqs.SEND_RETRIES + 1
