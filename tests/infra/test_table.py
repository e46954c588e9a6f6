"""The jobs table: pay per request, recoverable, expiring, listable by owner without a scan."""

from __future__ import annotations

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
            "GlobalSecondaryIndexes": [
                Match.object_like(
                    {
                        "IndexName": TABLE.owner_index,
                        "KeySchema": [
                            {"AttributeName": TABLE.owner_index_partition_key, "KeyType": "HASH"},
                            {"AttributeName": TABLE.owner_index_sort_key, "KeyType": "RANGE"},
                        ],
                    }
                )
            ]
        },
    )


def test_job_history_survives_stack_deletion(synthesized: Synthesized) -> None:
    # Given the stack / Then deleting it (or replacing the table) keeps the table and its jobs
    (table,) = synthesized.resources("AWS::DynamoDB::Table").values()
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
