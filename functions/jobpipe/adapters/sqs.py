"""The queue port on SQS."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from jobpipe.adapters.clients import error_code
from jobpipe.domain.retry import MAX_VISIBILITY_SECONDS
from jobpipe.errors import QueueError
from jobpipe.ports import ReceivedLetter

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_sqs import SQSClient

# SQS publishes its queue metrics once a minute: the oldest age is the highest of these last
# minutes (a later minute may not be published yet).
AGE_WINDOW_SECONDS = 300
AGE_METRIC = "ApproximateAgeOfOldestMessage"
# SendMessageBatch calls in flight at once when many messages are sent (a workflow's first steps).
PARALLEL_BATCHES = 8


class SQSJobQueue:
    def __init__(
        self,
        queue_url: str,
        dlq_url: str,
        client: SQSClient | None = None,
        *,
        cloudwatch: CloudWatchClient | None = None,
    ) -> None:
        self._queue_url = queue_url
        self._dlq_url = dlq_url
        self._client_override = client
        self._cloudwatch_override = cloudwatch

    @property
    def _client(self) -> SQSClient:
        if self._client_override is not None:
            return self._client_override
        from jobpipe.adapters import clients

        return clients.sqs()

    def send(self, body: str, *, delay_seconds: int = 0) -> str:
        try:
            return self._client.send_message(
                QueueUrl=self._queue_url, MessageBody=body, DelaySeconds=delay_seconds
            )["MessageId"]
        except Exception as exc:
            raise _queue_error("SendMessage", exc) from exc

    def send_many(self, bodies: list[str]) -> set[int]:
        """SendMessageBatch: at most 10 entries and 1 MiB a request. An entry SQS did not take
        is sent again (after a doubling pause) unless SQS blames the message itself; a request
        that fails leaves each of its entries unsent, as far as the caller can tell."""
        chunks = list(_send_batches(bodies))

        def send(chunk: list[int]) -> set[int]:
            try:
                return self._send_batch({index: bodies[index] for index in chunk})
            except QueueError:
                return set(chunk)

        if len(chunks) <= 1:
            return set().union(*map(send, chunks))
        # Many batches (a workflow's first steps): up to PARALLEL_BATCHES in flight.
        with ThreadPoolExecutor(max_workers=min(PARALLEL_BATCHES, len(chunks))) as pool:
            return set().union(*pool.map(send, chunks))

    def _send_batch(self, entries: dict[int, str]) -> set[int]:
        refused: set[int] = set()
        pause = SEND_BACKOFF_SECONDS
        for attempt in range(SEND_RETRIES + 1):
            try:
                response = self._client.send_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[{"Id": str(i), "MessageBody": body} for i, body in entries.items()],
                )
            except Exception as exc:
                raise _queue_error("SendMessageBatch", exc) from exc
            failed = response.get("Failed", [])
            refused |= {int(f["Id"]) for f in failed if f.get("SenderFault")}
            retried = {int(f["Id"]) for f in failed if not f.get("SenderFault")}
            if not retried or attempt == SEND_RETRIES:
                return refused | retried
            time.sleep(pause)
            pause *= 2
            entries = {i: entries[i] for i in retried}
        return refused | set(entries)

    def send_to_dlq(self, body: str, attributes: dict[str, str]) -> str:
        try:
            return self._client.send_message(
                QueueUrl=self._dlq_url,
                MessageBody=body,
                MessageAttributes={
                    name: {"DataType": "String", "StringValue": value or "-"}
                    for name, value in attributes.items()
                },
            )["MessageId"]
        except Exception as exc:
            raise _queue_error("SendMessage", exc) from exc

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        try:
            self._client.change_message_visibility(
                QueueUrl=self._queue_url,
                ReceiptHandle=receipt_handle,
                VisibilityTimeout=max(0, min(seconds, MAX_VISIBILITY_SECONDS)),
            )
        except Exception as exc:
            raise _queue_error("ChangeMessageVisibility", exc) from exc

    def oldest_message_age_seconds(self) -> float | None:
        """How long the jobs queue's oldest message has waited: 0 when the queue holds none,
        else SQS's own `ApproximateAgeOfOldestMessage` metric (the highest of the last five
        minutes), None when it has not published one."""
        try:
            attributes = self._client.get_queue_attributes(
                QueueUrl=self._queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
        except Exception as exc:
            raise _queue_error("GetQueueAttributes", exc) from exc
        if not any(int(value) for value in attributes.values()):
            return 0.0
        # The window ends a minute ahead: the current minute's value is still being published.
        end = datetime.now(UTC) + timedelta(seconds=60)
        try:
            response = self._cloudwatch.get_metric_data(
                MetricDataQueries=[
                    {
                        "Id": "age",
                        "MetricStat": {
                            "Metric": {
                                "Namespace": "AWS/SQS",
                                "MetricName": AGE_METRIC,
                                "Dimensions": [{"Name": "QueueName", "Value": self.queue_name}],
                            },
                            "Period": 60,
                            "Stat": "Maximum",
                        },
                    }
                ],
                StartTime=end - timedelta(seconds=AGE_WINDOW_SECONDS + 60),
                EndTime=end,
            )
        except Exception as exc:
            raise _queue_error("GetMetricData", exc) from exc
        values = [v for result in response["MetricDataResults"] for v in result["Values"]]
        return max(values) if values else None

    @property
    def queue_name(self) -> str:
        return self._queue_url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def _cloudwatch(self) -> CloudWatchClient:
        if self._cloudwatch_override is not None:
            return self._cloudwatch_override
        from jobpipe.adapters import clients

        return clients.cloudwatch()


# SQS's batch limits: 10 entries, and 1 MiB for all their bodies together.
SEND_BATCH_ENTRIES = 10
SEND_BATCH_BYTES = 1024 * 1024
SEND_RETRIES = 5
SEND_BACKOFF_SECONDS = 0.05


def _send_batches(bodies: list[str]) -> list[list[int]]:
    """The indexes of `bodies`, in order, cut into requests SendMessageBatch takes."""
    batches: list[list[int]] = []
    size = 0
    for index, body in enumerate(bodies):
        length = len(body.encode("utf-8"))
        if (
            not batches
            or len(batches[-1]) == SEND_BATCH_ENTRIES
            or size + length > SEND_BATCH_BYTES
        ):
            batches.append([])
            size = 0
        batches[-1].append(index)
        size += length
    return batches


def _queue_error(operation: str, exc: Exception) -> QueueError:
    code = error_code(exc) or type(exc).__name__
    return QueueError(f"SQS {operation} failed: {code}")


SQS_BATCH = 10
ACTIVE_MOVE_TASK_STATUSES = frozenset({"RUNNING", "SCHEDULED", "CANCELLING"})


class SQSDeadLetters:
    """The dead-letter queue port on SQS: the DLQ, and the jobs queue it replays into."""

    def __init__(self, dlq_url: str, queue_url: str, client: SQSClient | None = None) -> None:
        self.dlq_url = dlq_url
        self.queue_url = queue_url
        self._client_override = client
        self._arns: dict[str, str] = {}

    @property
    def _client(self) -> SQSClient:
        if self._client_override is not None:
            return self._client_override
        from jobpipe.adapters import clients

        return clients.sqs()

    def receive(self, *, visibility_seconds: int, wait_seconds: int) -> list[ReceivedLetter]:
        messages = self._client.receive_message(
            QueueUrl=self.dlq_url,
            MaxNumberOfMessages=SQS_BATCH,
            VisibilityTimeout=visibility_seconds,
            WaitTimeSeconds=wait_seconds,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
        ).get("Messages", [])
        letters = []
        for message in messages:
            system = message.get("Attributes", {})
            letters.append(
                ReceivedLetter(
                    message_id=message["MessageId"],
                    receipt_handle=message["ReceiptHandle"],
                    body=message.get("Body", ""),
                    attributes={
                        name: value.get("StringValue") or ""
                        for name, value in message.get("MessageAttributes", {}).items()
                    },
                    sent_at_ms=int(system.get("SentTimestamp", "0") or 0),
                    receive_count=int(system.get("ApproximateReceiveCount", "0") or 0),
                )
            )
        return letters

    def release(self, receipt_handles: list[str]) -> None:
        for start in range(0, len(receipt_handles), SQS_BATCH):
            chunk = receipt_handles[start : start + SQS_BATCH]
            self._client.change_message_visibility_batch(
                QueueUrl=self.dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(chunk)
                ],
            )

    def delete(self, receipt_handle: str) -> None:
        self._client.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=receipt_handle)

    def send_back(self, body: str) -> None:
        self._client.send_message(QueueUrl=self.queue_url, MessageBody=body)

    def active_move_task(self) -> dict[str, Any] | None:
        tasks = self._client.list_message_move_tasks(
            SourceArn=self._arn(self.dlq_url), MaxResults=10
        ).get("Results", [])
        for task in tasks:
            if task.get("Status") in ACTIVE_MOVE_TASK_STATUSES:
                return dict(task)
        return None

    def start_move_task(self, rate: int | None) -> str:
        arguments: dict[str, Any] = {
            "SourceArn": self._arn(self.dlq_url),
            "DestinationArn": self._arn(self.queue_url),
        }
        if rate:
            arguments["MaxNumberOfMessagesPerSecond"] = rate
        return self._client.start_message_move_task(**arguments)["TaskHandle"]

    def _arn(self, url: str) -> str:
        if url not in self._arns:
            self._arns[url] = self._client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
        return self._arns[url]
