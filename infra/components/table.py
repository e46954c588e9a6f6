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
        # Owner-scoped listing (a caller's jobs, newest last) is a Query on this index, never a
        # Scan. Keys only: a listing reads the few attributes it shows from the items.
        self.table.add_global_secondary_index(
            index_name=shape.owner_index,
            partition_key=dynamodb.Attribute(
                name=shape.owner_index_partition_key, type=dynamodb.AttributeType.STRING
            ),
            sort_key=dynamodb.Attribute(
                name=shape.owner_index_sort_key, type=dynamodb.AttributeType.STRING
            ),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        # The reaper's sparse indexes (only running jobs carry the lease, only pending ones
        # `pending_since`): stuck jobs of one type are a Query, never a Scan.
        stuck_partition = dynamodb.Attribute(
            name=shape.stuck_index_partition_key, type=dynamodb.AttributeType.STRING
        )
        self.table.add_global_secondary_index(
            index_name=shape.lease_index,
            partition_key=stuck_partition,
            sort_key=dynamodb.Attribute(
                name=shape.lease_index_sort_key, type=dynamodb.AttributeType.NUMBER
            ),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=list(shape.lease_index_attributes),
        )
        self.table.add_global_secondary_index(
            index_name=shape.pending_index,
            partition_key=stuck_partition,
            sort_key=dynamodb.Attribute(
                name=shape.pending_index_sort_key, type=dynamodb.AttributeType.NUMBER
            ),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
