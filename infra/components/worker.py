"""The worker's SQS event source: how Lambda polls the jobs queue for the worker."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from jobpipe.topology import WorkerShape


class WorkerEventSource(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        worker: lambda_.IFunction,
        queue: sqs.IQueue,
        shape: WorkerShape,
    ) -> None:
        super().__init__(scope, construct_id)
        # The mapping polls with the worker's role, which the stack grants exactly the actions
        # the poller and the worker use (`SqsEventSource` would add GetQueueUrl too).
        self.mapping = lambda_.EventSourceMapping(
            self,
            "Mapping",
            target=worker,
            event_source_arn=queue.queue_arn,
            batch_size=shape.batch_size,
            max_batching_window=Duration.seconds(shape.batching_window_seconds),
            # Without it one failed record would send the whole batch back to the queue, and a
            # misspelt response key would delete every message.
            report_batch_item_failures=True,
            # Reserved concurrency does not bound an SQS mapping; this does.
            max_concurrency=shape.maximum_concurrency,
        )
