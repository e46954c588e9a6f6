"""The queue port on SQS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobpipe.domain.retry import MAX_VISIBILITY_SECONDS
from jobpipe.errors import QueueError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class SQSJobQueue:
    def __init__(self, queue_url: str, dlq_url: str, client: SQSClient | None = None) -> None:
        self._queue_url = queue_url
        self._dlq_url = dlq_url
        self._client_override = client

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


def _queue_error(operation: str, exc: Exception) -> QueueError:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
    return QueueError(f"SQS {operation} failed: {code}")
