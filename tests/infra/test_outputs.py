"""The stack outputs the jobpipe CLI reads (`--stack NAME`)."""

from __future__ import annotations

import pytest

from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.xdist_group("cdk")


def test_outputs_name_the_api_queues_and_table_by_the_keys_the_cli_reads(
    synthesized: Synthesized,
) -> None:
    """Given the stack outputs, then ApiUrl, QueueUrl, DlqUrl and TableName point at this stack's
    resources.
    """
    outputs = synthesized.raw["Outputs"]
    api_id = synthesized.logical_id("Api/HttpApi")
    assert outputs["QueueUrl"]["Value"] == {"Ref": synthesized.logical_id("Queues/Queue")}
    assert outputs["DlqUrl"]["Value"] == {"Ref": synthesized.logical_id("Queues/DeadLetterQueue")}
    assert outputs["TableName"]["Value"] == {"Ref": synthesized.logical_id("Jobs/Table")}
    # The API URL is the $default stage's: https://{api}.execute-api.{region}.{suffix}/
    url = outputs["ApiUrl"]["Value"]["Fn::Join"][1]
    assert url[0] == "https://"
    assert {"Ref": api_id} in url
    assert url[-1] == "/"


def test_the_cli_reads_the_keys_the_stack_declares(synthesized: Synthesized) -> None:
    # Given the output keys the jobpipe CLI looks up for `--stack NAME`
    from jobpipe.cli import target

    wanted = {
        target.OUTPUT_API_URL,
        target.OUTPUT_QUEUE_URL,
        target.OUTPUT_DLQ_URL,
        target.OUTPUT_TABLE_NAME,
    }
    # Then the stack declares every one of them
    assert wanted <= set(synthesized.raw["Outputs"])
