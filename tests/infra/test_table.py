"""The jobs table: pay per request, recoverable, expiring, listable by owner and searchable for
stuck jobs without a scan."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from jobpipe.topology import TOPOLOGY
from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.xdist_group("cdk")

TABLE = TOPOLOGY.table


def test_table_is_on_demand_with_point_in_time_recovery(template: Template) -> None:
    # Given the synthesized stack / Then the table bills per request and can be restored
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "KeySchema": [{"AttributeName": TABLE.partition_key, "KeyType": "HASH"}],
        },
    )


def test_expired_jobs_are_deleted_by_ttl_on_the_attribute_the_code_writes(
    template: Template,
) -> None:
    """Given the table, then TTL deletes items by the attribute the job store writes."""
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {"TimeToLiveSpecification": {"AttributeName": TABLE.ttl_attribute, "Enabled": True}},
    )


def test_owner_index_lists_a_callers_jobs_in_time_order_without_a_scan(
    template: Template,
) -> None:
    """Given the table, then the owner index is keyed by owner and time-sortable job id."""
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "GlobalSecondaryIndexes": Match.array_with(
                [
                    Match.object_like(
                        {
                            "IndexName": TABLE.owner_index,
                            "KeySchema": [
                                {
                                    "AttributeName": TABLE.owner_index_partition_key,
                                    "KeyType": "HASH",
                                },
                                {"AttributeName": TABLE.owner_index_sort_key, "KeyType": "RANGE"},
                            ],
                        }
                    )
                ]
            )
        },
    )


def test_the_reapers_indexes_are_keyed_by_type_and_the_sparse_time_attributes(
    synthesized: Synthesized,
) -> None:
    # Given the table's indexes
    (table,) = synthesized.resources("AWS::DynamoDB::Table").values()
    indexes = {i["IndexName"]: i for i in table["Properties"]["GlobalSecondaryIndexes"]}
    # Then the lease index finds running jobs of a type by lease, with their attempt counts
    lease = indexes[TABLE.lease_index]
    assert lease["KeySchema"] == [
        {"AttributeName": TABLE.stuck_index_partition_key, "KeyType": "HASH"},
        {"AttributeName": TABLE.lease_index_sort_key, "KeyType": "RANGE"},
    ]
    assert lease["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": list(TABLE.lease_index_attributes),
    }
    # And the pending index finds pending jobs of a type by the time they became pending
    pending = indexes[TABLE.pending_index]
    assert pending["KeySchema"] == [
        {"AttributeName": TABLE.stuck_index_partition_key, "KeyType": "HASH"},
        {"AttributeName": TABLE.pending_index_sort_key, "KeyType": "RANGE"},
    ]
    assert pending["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    # And both sort keys are numbers (epoch milliseconds)
    types = {
        a["AttributeName"]: a["AttributeType"] for a in table["Properties"]["AttributeDefinitions"]
    }
    assert types[TABLE.lease_index_sort_key] == types[TABLE.pending_index_sort_key] == "N"


def test_the_local_table_has_exactly_the_deployed_tables_keys_and_indexes(
    synthesized: Synthesized,
) -> None:
    import boto3
    from moto import mock_aws

    from jobpipe.local.resources import create_resources

    def shape(table: dict[str, Any]) -> tuple[Any, ...]:
        indexes = {
            i["IndexName"]: (i["KeySchema"], i["Projection"])
            for i in table["GlobalSecondaryIndexes"]
        }
        attributes = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
        return table["KeySchema"], attributes, indexes

    # Given the deployed table (the synthesized template) and the one `make local` creates
    (deployed,) = synthesized.resources("AWS::DynamoDB::Table").values()
    with mock_aws():
        create_resources(boto3.client("dynamodb"), boto3.client("sqs"), prefix="same")
        local = boto3.client("dynamodb").describe_table(TableName="same-jobs")["Table"]
    # Then keys, attribute types, index keys and projections are the same
    assert shape(local) == shape(deployed["Properties"])


def test_job_history_survives_stack_deletion(synthesized: Synthesized) -> None:
    # Given the stack / Then deleting it (or replacing the table) keeps the table and its jobs
    (table,) = synthesized.resources("AWS::DynamoDB::Table").values()
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
