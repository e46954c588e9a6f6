"""The SQS worker: Powertools batch processing with the partial batch response."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobpipe.observability import logger, metrics, tracer
from jobpipe.worker.service import QueueRecord

# Every record failing is a normal outcome here (e.g. a whole batch backing off), not a crash:
# report it in batchItemFailures instead of raising.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    from jobpipe.wiring import worker

    worker().process(
        QueueRecord(
            message_id=record.message_id,
            receipt_handle=record.receipt_handle,
            body=record.body,
            receive_count=int(record.attributes.approximate_receive_count or 1),
        ),
        lambda_context.get_remaining_time_in_millis,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    from jobpipe.wiring import worker

    # Without this an interrupted job would stay locked past the Lambda's deadline.
    worker().idempotency_config.register_lambda_context(context)
    records = event.get("Records") or []
    if len(records) > 1:
        order = worker().order([str(r.get("body", "")) for r in records])
        event = {**event, "Records": [records[i] for i in order]}
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
