"""Logger, tracer and metrics, shared by every function (Powertools reads its environment:
POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_LOG_LEVEL)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, Tracer

from jobpipe.topology import TOPOLOGY

if TYPE_CHECKING:
    from jobpipe.domain.job import Job

_service = os.environ.get("POWERTOOLS_SERVICE_NAME", TOPOLOGY.service_name)

logger = Logger(service=_service)
# Only the SDK calls are traced: patching every library X-Ray knows would import them all.
tracer = Tracer(service=_service, patch_modules=("botocore",))
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", TOPOLOGY.metrics_namespace),
    service=_service,
)


def log_transition(job: Job, transition: str) -> None:
    """One structured line per job transition."""
    fields: dict[str, object] = {
        "job_id": job.job_id,
        "job_type": job.type,
        "transition": transition,
        "status": job.status.value,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
    }
    if job.error is not None and job.status != "succeeded":
        fields["error_type"] = job.error.type
    if job.dead_lettered:
        fields["dead_lettered"] = True
    logger.info("job transition", extra=fields)
