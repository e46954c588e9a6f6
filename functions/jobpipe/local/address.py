"""Where the local stack listens, read the same way by `jobpipe local` (which serves there) and by
the CLI (which, given no other target, calls there): 127.0.0.1, on `JOBPIPE_PORT` (8000 unset).

A value that is not a port is refused by both, rather than each replacing it with 8000 in its
own way (the stack then served where the CLI was not told to look)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from jobpipe.errors import ConfigurationError

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8000
ENV_PORT = "JOBPIPE_PORT"


def port_from_env() -> int:
    """`JOBPIPE_PORT`, or 8000 when it is unset or empty."""
    raw = os.environ.get(ENV_PORT, "").strip()
    if not raw:
        return DEFAULT_PORT
    if not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 65536):
        raise ConfigurationError(f"{ENV_PORT} must be a port number (1-65535), got {raw!r}")
    return int(raw)


def local_url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


@dataclass(frozen=True)
class LocalConfig:
    """Where the local stack's parts are: what `GET /_local/config` answers, so that the CLI
    can reach the queues (`jobpipe dlq ...`) knowing only the API's URL."""

    api_url: str
    aws_endpoint_url: str
    region: str
    table_name: str
    queue_url: str
    dlq_url: str
    # The EventBridge Scheduler group of delayed jobs and recurring schedules.
    schedule_group: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
