"""boto3 clients, created on first use and reused for the life of the process."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient


def _config() -> Any:
    from botocore.config import Config

    # Standard retry mode backs off on throttling; short timeouts keep a stuck call from eating
    # the Lambda's remaining time.
    return Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=3,
        read_timeout=10,
        tcp_keepalive=True,
    )


@cache
def dynamodb() -> DynamoDBClient:
    import boto3

    return boto3.client("dynamodb", config=_config())


@cache
def sqs() -> SQSClient:
    import boto3

    return boto3.client("sqs", config=_config())


def reset() -> None:
    """Forget cached clients (tests start each mock with fresh clients)."""
    dynamodb.cache_clear()
    sqs.cache_clear()
