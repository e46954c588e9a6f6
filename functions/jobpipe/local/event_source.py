"""An SQS event source mapping, off AWS: receives real batches from an SQS queue (moto, locally),
calls the worker handler with Lambda-shaped SQS events and a Lambda context whose clock it
controls, and applies Lambda's rules to the response.

Lambda's rules for a partial batch response (ReportBatchItemFailures), as AWS documents them:
- the batch succeeds in full when the response is None, `{}`, or has an empty or null
  `batchItemFailures` — including a response whose top-level key is misspelt;
- the batch fails in full when the handler raises, the response is not a JSON object, or any
  failure entry has no `itemIdentifier`, an empty one, or one that is not in the batch;
- otherwise the listed messages stay on the queue and every other message is deleted.
Messages that stay become visible again when their visibility timeout ends; SQS moves a message
to the dead-letter queue once it has been received more than `maxReceiveCount` times.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobpipe.topology import TOPOLOGY

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

Handler = Callable[[dict[str, Any], Any], Any]
SQS_MAX_RECEIVE = 10


class InvocationKilled(BaseException):
    """Raised (by fault injection) to end an invocation abruptly, as a Lambda timeout or a
    crashed runtime would: nothing after it runs, and the whole batch stays on the queue."""


class LambdaContext:
    """The parts of the Lambda context that handlers and Powertools use, on a controlled clock."""

    def __init__(
        self,
        function_name: str,
        timeout_seconds: float,
        clock: Callable[[], float] = time.time,
        memory_mb: int = TOPOLOGY.worker.memory_mb,
        region: str = "us-east-1",
    ) -> None:
        self._clock = clock
        self._deadline = clock() + timeout_seconds
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - self._clock()) * 1000))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324  (SQS's own checksum)


def sqs_event(messages: list[MessageTypeDef], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS event exactly as Lambda's event source mapping sends it."""
    records = []
    for message in messages:
        attributes = message.get("Attributes", {})
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {
                "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
                "SenderId": attributes.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
                "ApproximateFirstReceiveTimestamp": attributes.get(
                    "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
                ),
            },
            "messageAttributes": {
                name: {
                    "stringValue": value.get("StringValue"),
                    "binaryValue": value.get("BinaryValue"),
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": value["DataType"],
                }
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message.get("MD5OfBody") or _md5(message["Body"]),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
        if message.get("MD5OfMessageAttributes"):
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


def failed_ids(response: Any, batch_ids: set[str]) -> set[str]:
    """The message ids Lambda would leave on the queue for this handler response."""
    if response is None:
        return set()
    try:
        json.dumps(response)
    except (TypeError, ValueError):
        return set(batch_ids)
    if not isinstance(response, dict):
        return set(batch_ids)
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return set(batch_ids)
    left: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or not identifier or identifier not in batch_ids:
            return set(batch_ids)
        left.add(identifier)
    return left


@dataclass
class BatchResult:
    received: int = 0
    deleted: int = 0
    whole_batch_failed: bool = False
    error: str | None = None
    # Receipt handles of the messages left on the queue (they reappear when their visibility
    # timeout ends).
    left_receipts: list[str] = field(default_factory=list)

    @property
    def left(self) -> int:
        return len(self.left_receipts)


@dataclass
class Stats:
    batches: int = 0
    received: int = 0
    deleted: int = 0
    left: int = 0
    failed_batches: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, result: BatchResult) -> None:
        with self._lock:
            self.batches += 1
            self.received += result.received
            self.deleted += result.deleted
            self.left += result.left
            self.failed_batches += int(result.whole_batch_failed)


class EventSourceMapping:
    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        handler: Handler,
        *,
        function_name: str = "jobpipe-worker",
        batch_size: int = TOPOLOGY.worker.batch_size,
        batching_window_seconds: float = TOPOLOGY.worker.batching_window_seconds,
        function_timeout_seconds: float = TOPOLOGY.worker.timeout_seconds,
        clock: Callable[[], float] = time.time,
        region: str = "us-east-1",
        poll_wait_seconds: int = 1,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._function_name = function_name
        self._batch_size = batch_size
        self._window = batching_window_seconds
        self._timeout = function_timeout_seconds
        self._clock = clock
        self._region = region
        self._poll_wait = poll_wait_seconds
        self._queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.stats = Stats()

    def receive_batch(self, wait_seconds: float | None = None) -> list[MessageTypeDef]:
        """Gather up to `batch_size` messages, for at most the batching window."""
        wait = self._poll_wait if wait_seconds is None else wait_seconds
        deadline = time.monotonic() + max(self._window, 0)
        batch: list[MessageTypeDef] = []
        while len(batch) < self._batch_size:
            response = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=min(SQS_MAX_RECEIVE, self._batch_size - len(batch)),
                WaitTimeSeconds=int(wait) if not batch else 0,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            batch.extend(messages)
            if not messages and (batch or time.monotonic() >= deadline):
                break
            if time.monotonic() >= deadline:
                break
        return batch

    def invoke(self, messages: list[MessageTypeDef]) -> BatchResult:
        """Invoke the handler with one batch and apply Lambda's rules to its response."""
        result = BatchResult(received=len(messages))
        if not messages:
            return result
        event = sqs_event(messages, self._queue_arn, self._region)
        context = LambdaContext(
            self._function_name, self._timeout, self._clock, region=self._region
        )
        batch_ids = {m["MessageId"] for m in messages}
        try:
            response = self._handler(event, context)
        except (Exception, InvocationKilled) as error:  # noqa: BLE001  (Lambda's rule: any)
            left = set(batch_ids)
            result.error = f"{type(error).__name__}: {error}"
        else:
            left = failed_ids(response, batch_ids)
        result.whole_batch_failed = left == batch_ids
        done = [m for m in messages if m["MessageId"] not in left]
        for start in range(0, len(done), SQS_MAX_RECEIVE):
            chunk = done[start : start + SQS_MAX_RECEIVE]
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
        result.deleted = len(done)
        result.left_receipts = [m["ReceiptHandle"] for m in messages if m["MessageId"] in left]
        self.stats.add(result)
        return result

    def poll_once(self, wait_seconds: float | None = None) -> BatchResult:
        return self.invoke(self.receive_batch(wait_seconds))

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set."""
        while not stop.is_set():
            self.poll_once()

    def drain(self, max_batches: int = 1000) -> Stats:
        """Poll until the queue yields nothing (tests): visible messages only."""
        for _ in range(max_batches):
            if self.poll_once(wait_seconds=0).received == 0:
                break
        return self.stats
