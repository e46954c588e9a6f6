"""Which stack the CLI talks to, and how: --url, JOBPIPE_URL, the local default, --stack."""

from __future__ import annotations

import socket

import boto3
import pytest
from botocore.stub import Stubber

from jobpipe.cli import target as target_module
from jobpipe.cli.main import EXIT_TARGET, main
from jobpipe.cli.target import Target, TargetError, is_loopback, resolve, stack_outputs

API = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"


@pytest.fixture(autouse=True)
def no_target_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JOBPIPE_URL", "JOBPIPE_PORT", "JOBPIPE_QUEUE_URL", "JOBPIPE_DLQ_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("JOBPIPE_TABLE_NAME", raising=False)


def test_with_nothing_given_the_target_is_the_local_stack() -> None:
    target = resolve()
    assert (target.api_url, target.local, target.source) == (
        "http://127.0.0.1:8000",
        True,
        "default",
    )


def test_jobpipe_port_moves_the_local_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBPIPE_PORT", "8123")
    assert resolve().api_url == "http://127.0.0.1:8123"


@pytest.mark.parametrize("value", ["abc", "8080x", "0", "70000", "\uff18\uff10\uff18\uff10"])
def test_a_jobpipe_port_that_is_not_a_port_is_refused_not_replaced_by_8000(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # Given JOBPIPE_PORT set to something `jobpipe local` cannot serve on
    monkeypatch.setenv("JOBPIPE_PORT", value)
    # When the CLI looks for the local stack / Then it says so instead of calling port 8000
    with pytest.raises(TargetError, match="JOBPIPE_PORT must be a port number"):
        resolve()


def test_an_unreachable_local_default_says_where_the_cli_looked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no target but JOBPIPE_PORT, and nothing listening there
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("JOBPIPE_PORT", str(port))
    # When a command runs
    code = main(["dlq", "list"])
    # Then it fails on the target, naming the port it tried and the variable that moves it
    err = capsys.readouterr().err
    assert code == EXIT_TARGET
    assert f"127.0.0.1:{port}" in err and "set JOBPIPE_PORT to that port here too" in err


def test_url_wins_over_jobpipe_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBPIPE_URL", API)
    assert resolve().api_url == API and resolve().source == "JOBPIPE_URL"
    assert resolve("http://localhost:9000/").api_url == "http://localhost:9000"


def test_a_remote_url_is_aws_with_the_region_from_its_host() -> None:
    target = resolve(API)
    assert not target.local and target.region == "eu-west-1"


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(TargetError, match="not an http"):
        resolve("127.0.0.1:8000")


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("http://[::1]:8000", True),
        ("http://127.1.2.3", True),
        (API, False),
        ("http://10.0.0.1", False),
    ],
)
def test_loopback_urls_are_local(url: str, local: bool) -> None:
    assert is_loopback(url) is local


def test_local_requests_are_not_signed_and_aws_requests_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert resolve().client()._signer is None
    # The test environment's fake credentials stand in for the user's.
    signer = resolve(API).client()._signer
    assert signer is not None and signer.region == "eu-west-1"  # type: ignore[attr-defined]


def test_the_dlq_on_aws_needs_the_stack_or_its_queue_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(TargetError, match="--stack NAME"):
        resolve(API).with_queues()
    monkeypatch.setenv("JOBPIPE_QUEUE_URL", "https://sqs/q")
    monkeypatch.setenv("JOBPIPE_DLQ_URL", "https://sqs/dlq")
    monkeypatch.setenv("JOBPIPE_TABLE_NAME", "jobs")
    target = resolve(API).with_queues()
    assert (target.queue_url, target.dlq_url, target.table_name) == (
        "https://sqs/q",
        "https://sqs/dlq",
        "jobs",
    )


def _stubbed_cloudformation(outputs: dict[str, str]) -> tuple[object, Stubber]:
    client = boto3.client("cloudformation", region_name="eu-west-1")
    stubber = Stubber(client)
    stubber.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "jobpipe",
                    "CreationTime": "2026-11-24T12:00:00Z",
                    "StackStatus": "CREATE_COMPLETE",
                    "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
                }
            ]
        },
        {"StackName": "jobpipe"},
    )
    return client, stubber


OUTPUTS = {
    "ApiUrl": f"{API}/",
    "QueueUrl": "https://sqs.eu-west-1.amazonaws.com/1/jobs",
    "DlqUrl": "https://sqs.eu-west-1.amazonaws.com/1/dlq",
    "TableName": "jobpipe-jobs",
}


def test_stack_outputs_are_read_by_key() -> None:
    client, stubber = _stubbed_cloudformation(OUTPUTS)
    with stubber:
        assert stack_outputs(client, "jobpipe") == OUTPUTS


def test_a_missing_stack_is_a_target_error() -> None:
    client = boto3.client("cloudformation", region_name="eu-west-1")
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "describe_stacks", "ValidationError", "Stack with id nope does not exist"
        )
        with pytest.raises(TargetError, match="does not exist"):
            stack_outputs(client, "nope")


def test_stack_gives_the_api_queues_and_table(monkeypatch: pytest.MonkeyPatch) -> None:
    client, stubber = _stubbed_cloudformation(OUTPUTS)

    class Session:
        region_name = "eu-west-1"

        def __init__(self, **_: object) -> None:
            pass

        def client(self, name: str) -> object:
            assert name == "cloudformation"
            return client

    monkeypatch.setattr(boto3, "Session", Session)
    with stubber:
        target = resolve(stack="jobpipe")
    assert target == Target(
        api_url=API,
        source="--stack jobpipe",
        local=False,
        region="eu-west-1",
        table_name="jobpipe-jobs",
        queue_url=OUTPUTS["QueueUrl"],
        dlq_url=OUTPUTS["DlqUrl"],
    )


def test_a_stack_without_the_outputs_is_a_target_error(monkeypatch: pytest.MonkeyPatch) -> None:
    client, stubber = _stubbed_cloudformation({"ApiUrl": API})

    class Session:
        region_name = "eu-west-1"

        def __init__(self, **_: object) -> None:
            pass

        def client(self, name: str) -> object:
            return client

    monkeypatch.setattr(boto3, "Session", Session)
    with stubber, pytest.raises(TargetError, match="QueueUrl, DlqUrl, TableName"):
        target_module.from_stack("jobpipe", None, None)
