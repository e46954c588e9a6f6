"""The stuck-job reaper, on an EventBridge schedule (never behind the API)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobpipe.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:  # noqa: ARG001
    # The scheduled event carries nothing the run needs; the context is the decorators'.
    from jobpipe.wiring import reaper

    return reaper().run().counts()
