"""The queue port on SQS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from jobpipe.domain.retry import MAX_VISIBILITY_SECONDS
from jobpipe.errors import QueueError

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_sqs import SQSClient

# SQS publishes its queue metrics once a minute: the oldest age is the highest of these last
# minutes (a later minute may not be published yet).
AGE_WINDOW_SECONDS = 300
AGE_METRIC = "ApproximateAgeOfOldestMessage"


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


def _queue_error(operation: str, exc: Exception) -> QueueError:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
    return QueueError(f"SQS {operation} failed: {code}")
