"""The stack outputs the jobpipe CLI reads (`--stack NAME`)."""

from __future__ import annotations

import pytest

from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.xdist_group("cdk")


def test_outputs_name_the_api_queues_and_table_by_the_keys_the_cli_reads(
    synthesized: Synthesized,
) -> None:
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
