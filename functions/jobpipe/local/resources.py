"""Creates the jobs table, queue and dead-letter queue off AWS (on moto) with the settings the
CDK stack declares, read from the same `jobpipe.topology`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobpipe.topology import TOPOLOGY, Topology

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class Resources:
    table_name: str
    queue_url: str
    dlq_url: str

    def environment(self) -> dict[str, str]:
        from jobpipe.settings import ENV_DLQ_URL, ENV_QUEUE_URL, ENV_TABLE_NAME

        return {
            ENV_TABLE_NAME: self.table_name,
            ENV_QUEUE_URL: self.queue_url,
            ENV_DLQ_URL: self.dlq_url,
        }


def create_resources(
    dynamodb: DynamoDBClient,
    sqs: SQSClient,
    prefix: str = "jobpipe",
    topology: Topology = TOPOLOGY,
) -> Resources:
    table = topology.table
    queue = topology.queue
    table_name = f"{prefix}-jobs"
    dynamodb.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": table.partition_key, "AttributeType": "S"},
            {"AttributeName": table.owner_index_partition_key, "AttributeType": "S"},
            {"AttributeName": table.stuck_index_partition_key, "AttributeType": "S"},
            {"AttributeName": table.lease_index_sort_key, "AttributeType": "N"},
            {"AttributeName": table.pending_index_sort_key, "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": table.partition_key, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": table.owner_index,
                "KeySchema": [
                    {"AttributeName": table.owner_index_partition_key, "KeyType": "HASH"},
                    {"AttributeName": table.owner_index_sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": table.lease_index,
                "KeySchema": [
                    {"AttributeName": table.stuck_index_partition_key, "KeyType": "HASH"},
                    {"AttributeName": table.lease_index_sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": list(table.lease_index_attributes),
                },
            },
            {
                "IndexName": table.pending_index,
                "KeySchema": [
                    {"AttributeName": table.stuck_index_partition_key, "KeyType": "HASH"},
                    {"AttributeName": table.pending_index_sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
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
    return Resources(table_name=table_name, queue_url=queue_url, dlq_url=dlq_url)
