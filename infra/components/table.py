"""The jobs table: one item per job (and per submit idempotency key)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from jobpipe.topology import TableShape


class JobsTable(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, shape: TableShape) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(
                name=shape.partition_key, type=dynamodb.AttributeType.STRING
            ),
            # Pay per request: nothing to pay when nothing runs, no capacity to tune.
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=shape.ttl_attribute,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            # Job history outlives a `cdk destroy`; delete the table by hand when it must go.
            removal_policy=RemovalPolicy.RETAIN,
        )
        # Every index as `TableShape.indexes()` declares it (the local stack builds the same).
        for index in shape.indexes():
            self.table.add_global_secondary_index(
                index_name=index.name,
                partition_key=dynamodb.Attribute(
                    name=index.partition_key, type=dynamodb.AttributeType.STRING
                ),
                sort_key=dynamodb.Attribute(
                    name=index.sort_key, type=_ATTRIBUTE_TYPES[index.sort_key_type]
                ),
                projection_type=dynamodb.ProjectionType[index.projection],
                non_key_attributes=list(index.non_key_attributes) or None,
            )


_ATTRIBUTE_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}
