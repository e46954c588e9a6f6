"""A recurring schedule's firing (EventBridge Scheduler invokes this function with the
schedule's input): creates the firing's job. Reached by the scheduler only, never by the API."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobpipe.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    from jobpipe.recurring.service import Firing
    from jobpipe.wiring import recurring_jobs

    fired = recurring_jobs().fire(Firing.from_event(event))
    return {"job_id": fired.job.job_id, "created": fired.created}
