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


def _queue_record(raw: dict[str, Any]) -> QueueRecord:
    record = SQSRecord(raw)
    return QueueRecord(
        message_id=record.message_id,
        receipt_handle=record.receipt_handle,
        body=record.body,
        receive_count=int(record.attributes.approximate_receive_count or 1),
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    from jobpipe.wiring import worker

    runner = worker()
    # Without this an interrupted job would stay locked past the Lambda's deadline.
    runner.idempotency_config.register_lambda_context(context)
    remaining = context.get_remaining_time_in_millis
    raw_records: list[dict[str, Any]] = list(event.get("Records") or [])
    order = runner.order([str(r.get("body", "")) for r in raw_records])
    raw_records = [raw_records[i] for i in order]
    # The async jobs of the batch run first, side by side; Powertools then assembles the batch
    # response from every record, those included.
    concurrent = runner.process_concurrently(
        [_queue_record(r) for r in raw_records if runner.is_async(str(r.get("body", "")))],
        remaining,
    )

    def record_handler(record: SQSRecord) -> None:
        if record.message_id in concurrent:
            error = concurrent[record.message_id]
            if error is not None:
                raise error
            return
        runner.process(_queue_record(record.raw_event), remaining)

    return process_partial_response(
        event={**event, "Records": raw_records},
        record_handler=record_handler,
        processor=processor,
        context=context,
    )
