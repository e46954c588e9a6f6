"""Runtime settings, read from the environment once, on first use (never at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

from jobpipe.errors import ConfigurationError
from jobpipe.topology import TOPOLOGY, ClientShape

# The names the CDK stack and the local stack pass settings by.
ENV_TABLE_NAME = "JOBPIPE_TABLE_NAME"
ENV_QUEUE_URL = "JOBPIPE_QUEUE_URL"
ENV_DLQ_URL = "JOBPIPE_DLQ_URL"
ENV_MAX_BODY_BYTES = "JOBPIPE_MAX_BODY_BYTES"
ENV_RETENTION_DAYS = "JOBPIPE_RETENTION_DAYS"
# The AWS clients' timeouts and attempts (defaults: `TOPOLOGY.aws_client`).
ENV_AWS_CONNECT_TIMEOUT = "JOBPIPE_AWS_CONNECT_TIMEOUT"
ENV_AWS_READ_TIMEOUT = "JOBPIPE_AWS_READ_TIMEOUT"
ENV_AWS_MAX_ATTEMPTS = "JOBPIPE_AWS_MAX_ATTEMPTS"
# Where delayed jobs wait beyond SQS's 15 minutes: the stack's EventBridge Scheduler group, the
# role its schedules send with, and the queues' ARNs (the jobs queue, and the DLQ for deliveries
# that fail).
ENV_SCHEDULE_GROUP = "JOBPIPE_SCHEDULE_GROUP"
ENV_SCHEDULER_ROLE_ARN = "JOBPIPE_SCHEDULER_ROLE_ARN"
ENV_QUEUE_ARN = "JOBPIPE_QUEUE_ARN"
ENV_DLQ_ARN = "JOBPIPE_DLQ_ARN"
# Who owns the jobs of a request without credentials; only the local stack sets it. Unset (as
# on AWS), such a request is refused.
ENV_LOCAL_PRINCIPAL = "JOBPIPE_LOCAL_PRINCIPAL"


@dataclass(frozen=True)
class Settings:
    table_name: str
    queue_url: str
    dlq_url: str
    max_body_bytes: int = TOPOLOGY.api.max_body_bytes
    retention_days: int = TOPOLOGY.retention_days
    local_principal: str | None = None
    schedule_group: str = ""
    scheduler_role_arn: str = ""
    queue_arn: str = ""
    dlq_arn: str = ""


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {value}")
    return value


def _positive_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {value}")
    return value


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ConfigurationError(f"{name} is not set")
    return value


@cache
def get_settings() -> Settings:
    """The process's settings; validated on the first call and cached."""
    return Settings(
        table_name=_required(ENV_TABLE_NAME),
        queue_url=_required(ENV_QUEUE_URL),
        dlq_url=_required(ENV_DLQ_URL),
        max_body_bytes=_positive_int(ENV_MAX_BODY_BYTES, TOPOLOGY.api.max_body_bytes),
        retention_days=_positive_int(ENV_RETENTION_DAYS, TOPOLOGY.retention_days),
        local_principal=os.environ.get(ENV_LOCAL_PRINCIPAL) or None,
        schedule_group=os.environ.get(ENV_SCHEDULE_GROUP, ""),
        scheduler_role_arn=os.environ.get(ENV_SCHEDULER_ROLE_ARN, ""),
        queue_arn=os.environ.get(ENV_QUEUE_ARN, ""),
        dlq_arn=os.environ.get(ENV_DLQ_ARN, ""),
    )


@cache
def client_shape() -> ClientShape:
    """The AWS clients' timeouts and attempts: the topology's, unless the environment says
    otherwise (`make chaos` compresses them with the rest of its clocks)."""
    default = TOPOLOGY.aws_client
    return ClientShape(
        connect_timeout_seconds=_positive_float(
            ENV_AWS_CONNECT_TIMEOUT, default.connect_timeout_seconds
        ),
        read_timeout_seconds=_positive_float(ENV_AWS_READ_TIMEOUT, default.read_timeout_seconds),
        max_attempts=_positive_int(ENV_AWS_MAX_ATTEMPTS, default.max_attempts),
    )
