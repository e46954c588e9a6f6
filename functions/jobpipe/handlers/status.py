"""GET /jobs/{id} (API Gateway HTTP API, payload v2)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobpipe.api.app import build_resolver, status_router
from jobpipe.observability import logger, tracer

app = build_resolver(status_router())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
