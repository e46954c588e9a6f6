"""Creates the jobs table, queue and dead-letter queue off AWS (on moto) with the settings the
CDK stack declares, read from the same `jobpipe.topology`, and the schedule group delayed jobs
wait in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobpipe.topology import TOPOLOGY, Topology

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sqs import SQSClient

# moto's account: the scheduler's role is named, never assumed (moto enforces no IAM).
LOCAL_ACCOUNT = "123456789012"


@dataclass(frozen=True)
class Resources:
    table_name: str
    queue_url: str
    dlq_url: str
    queue_arn: str = ""
    dlq_arn: str = ""
    schedule_group: str = ""
    scheduler_role_arn: str = ""

    def environment(self) -> dict[str, str]:
        from jobpipe import settings

        return {
            settings.ENV_TABLE_NAME: self.table_name,
            settings.ENV_QUEUE_URL: self.queue_url,
            settings.ENV_DLQ_URL: self.dlq_url,
            settings.ENV_QUEUE_ARN: self.queue_arn,
            settings.ENV_DLQ_ARN: self.dlq_arn,
            settings.ENV_SCHEDULE_GROUP: self.schedule_group,
            settings.ENV_SCHEDULER_ROLE_ARN: self.scheduler_role_arn,
        }


def create_resources(
    dynamodb: DynamoDBClient,
    sqs: SQSClient,
    prefix: str = "jobpipe",
    topology: Topology = TOPOLOGY,
    scheduler: EventBridgeSchedulerClient | None = None,
) -> Resources:
    table = topology.table
    queue = topology.queue
    table_name = f"{prefix}-jobs"
    key_types = {table.partition_key: "S"}
    indexes = []
    for index in table.indexes():
        key_types.setdefault(index.partition_key, "S")
        key_types.setdefault(index.sort_key, index.sort_key_type)
        projection: dict[str, Any] = {"ProjectionType": index.projection}
        if index.non_key_attributes:
            projection["NonKeyAttributes"] = list(index.non_key_attributes)
        indexes.append(
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": projection,
            }
        )
    dynamodb.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": kind}  # type: ignore[typeddict-item]
            for name, kind in key_types.items()
        ],
        KeySchema=[{"AttributeName": table.partition_key, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=indexes,  # type: ignore[arg-type]
    )
    dynamodb.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
    )
    dlq_url = sqs.create_queue(
        QueueName=f"{prefix}-dlq",
        Attributes={
            "MessageRetentionPeriod": str(queue.dlq_retention_seconds),
            "SqsManagedSseEnabled": "true",
        },
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=f"{prefix}-jobs",
        Attributes={
            "VisibilityTimeout": str(queue.visibility_timeout_seconds),
            "MessageRetentionPeriod": str(queue.retention_seconds),
            "SqsManagedSseEnabled": "true",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queue.max_receive_count}
            ),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    group = f"{prefix}-schedules"
    if scheduler is None:
        import boto3

        scheduler = boto3.client("scheduler")
    scheduler.create_schedule_group(Name=group)
    return Resources(
        table_name=table_name,
        queue_url=queue_url,
        dlq_url=dlq_url,
        queue_arn=queue_arn,
        dlq_arn=dlq_arn,
        schedule_group=group,
        scheduler_role_arn=f"arn:aws:iam::{LOCAL_ACCOUNT}:role/{prefix}-scheduler",
    )
