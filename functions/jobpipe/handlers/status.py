"""GET /jobs/{id} (API Gateway HTTP API, payload v2): the routes of the `Status` function in
`jobpipe.api.routes`."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobpipe.adapters.clients import deadline
from jobpipe.api.app import resolver_for
from jobpipe.observability import logger, tracer

app = resolver_for("Status")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # No AWS call starts that could not finish before the function times out (a 503 instead).
    with deadline(context.get_remaining_time_in_millis()):
        return app.resolve(event, context)
