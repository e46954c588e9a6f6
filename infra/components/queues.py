"""The jobs queue and its dead-letter queue."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from jobpipe.topology import QueueShape


class JobQueues(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, shape: QueueShape) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # The DLQ's redrive allow policy names the source queue, and the source's redrive policy
        # names the DLQ: referencing the source by token would be a dependency cycle, so the
        # source gets a name derived from the stack's (unique per account and region) and the
        # DLQ names it by ARN.
        queue_name = f"{stack.stack_name[:75]}-jobs"  # SQS names stop at 80 characters
        source_arn = stack.format_arn(service="sqs", resource=queue_name)
        self.dlq = sqs.Queue(
            self,
            "DeadLetterQueue",
            retention_period=Duration.seconds(shape.dlq_retention_seconds),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            redrive_allow_policy=sqs.RedriveAllowPolicy(
                redrive_permission=sqs.RedrivePermission.BY_QUEUE,
                source_queues=[sqs.Queue.from_queue_arn(self, "SourceQueueRef", source_arn)],
            ),
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=queue_name,
            visibility_timeout=Duration.seconds(shape.visibility_timeout_seconds),
            retention_period=Duration.seconds(shape.retention_seconds),
            receive_message_wait_time=Duration.seconds(shape.receive_wait_seconds),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=shape.max_receive_count, queue=self.dlq
            ),
        )
