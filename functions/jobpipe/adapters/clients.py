"""boto3 clients, created on first use and reused for the life of the process.

Their timeouts and attempts come from `settings.client_shape()`, so one call's worst case is
known. An API request that is running out of time does not start a call it could not finish: a
request sets its deadline with `deadline()`, and a call that would start with less than its
worst case left fails at once with `DeadlineError` (the API answers 503, safe to retry).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import TYPE_CHECKING, Any

from jobpipe.errors import DeadlineError

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sqs import SQSClient

# Monotonic time by which the current request must have answered; None outside a request.
_deadline: ContextVar[float | None] = ContextVar("jobpipe_deadline", default=None)


def _config() -> Any:
    from botocore.config import Config

    from jobpipe.settings import client_shape

    shape = client_shape()
    # Standard retry mode backs off on throttling.
    return Config(
        retries={"mode": "standard", "total_max_attempts": shape.max_attempts},
        connect_timeout=shape.connect_timeout_seconds,
        read_timeout=shape.read_timeout_seconds,
        tcp_keepalive=True,
    )


@contextmanager
def deadline(remaining_ms: int) -> Iterator[None]:
    """Within this block, no AWS call starts unless its worst case ends `remaining_ms` from now."""
    token = _deadline.set(time.monotonic() + remaining_ms / 1000)
    try:
        yield
    finally:
        _deadline.reset(token)


def _check_deadline(**_: Any) -> None:
    from jobpipe.settings import client_shape

    ends = _deadline.get()
    if ends is not None and time.monotonic() + client_shape().worst_case_seconds() > ends:
        raise DeadlineError("not enough time left in this request for another AWS call")


def _client(service: str) -> Any:
    import boto3

    client = boto3.client(service, config=_config())  # type: ignore[call-overload]
    client.meta.events.register("before-call.*.*", _check_deadline)
    return client


@cache
def dynamodb() -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb")
    return client


@cache
def sqs() -> SQSClient:
    client: SQSClient = _client("sqs")
    return client


@cache
def cloudwatch() -> CloudWatchClient:
    client: CloudWatchClient = _client("cloudwatch")
    return client


@cache
def scheduler() -> EventBridgeSchedulerClient:
    client: EventBridgeSchedulerClient = _client("scheduler")
    return client


def reset() -> None:
    """Forget cached clients (tests start each mock with fresh clients)."""
    dynamodb.cache_clear()
    sqs.cache_clear()
    cloudwatch.cache_clear()
    scheduler.cache_clear()


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore error (`ThrottlingException`), or None for one that
    carries no answer: a timeout or a connection error has no `response`, or one of None."""
    response = getattr(exc, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    return str(code) if code else None
