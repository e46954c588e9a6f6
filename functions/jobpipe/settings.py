"""Runtime settings, read from the environment once, on first use (never at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

from jobpipe.errors import ConfigurationError
from jobpipe.topology import TOPOLOGY

# The names the CDK stack and the local stack pass settings by.
ENV_TABLE_NAME = "JOBPIPE_TABLE_NAME"
ENV_QUEUE_URL = "JOBPIPE_QUEUE_URL"
ENV_DLQ_URL = "JOBPIPE_DLQ_URL"
ENV_MAX_BODY_BYTES = "JOBPIPE_MAX_BODY_BYTES"
ENV_RETENTION_DAYS = "JOBPIPE_RETENTION_DAYS"
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
    )
