"""Which stack the CLI talks to: `--url`, `JOBPIPE_URL`, `--stack NAME` (the deployed stack's
CloudFormation outputs), or by default the local stack at http://127.0.0.1:8000 (`JOBPIPE_PORT`
changes the port, read as `jobpipe local` reads it)."""

from __future__ import annotations

import ipaddress
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from jobpipe.client import (
    ClientError,
    ConnectionFailedError,
    CredentialsError,
    JobsClient,
    SigV4Signer,
    region_of,
)
from jobpipe.errors import ConfigurationError
from jobpipe.local.address import local_url, port_from_env

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

ENV_URL = "JOBPIPE_URL"
LOCAL_CONFIG_PATH = "/_local/config"
# The stack's CloudFormation outputs (declared by the CDK app in infra/).
OUTPUT_API_URL = "ApiUrl"
OUTPUT_QUEUE_URL = "QueueUrl"
OUTPUT_DLQ_URL = "DlqUrl"
OUTPUT_TABLE_NAME = "TableName"
# Set these with --url to reach a deployed stack's queues without --stack.
ENV_TABLE_NAME = "JOBPIPE_TABLE_NAME"
ENV_QUEUE_URL = "JOBPIPE_QUEUE_URL"
ENV_DLQ_URL = "JOBPIPE_DLQ_URL"


class TargetError(ClientError):
    """The target stack cannot be found or is incompletely described."""


def default_url() -> str:
    """The local stack's URL, on the port `jobpipe local` serves on in this environment."""
    try:
        return local_url(port_from_env())
    except ConfigurationError as error:
        raise TargetError(str(error)) from None


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Target:
    api_url: str
    source: str
    local: bool
    region: str | None = None
    profile: str | None = None
    table_name: str | None = None
    queue_url: str | None = None
    dlq_url: str | None = None
    # The local stack's moto server; None for AWS.
    aws_endpoint_url: str | None = None

    def client(self, timeout: float = 10.0) -> JobsClient:
        """A client for the API; it signs with SigV4 unless the target is on this machine."""
        signer = None
        if not self.local:
            signer = SigV4Signer.from_session(
                region=self.region or region_of(self.api_url), profile=self.profile
            )
        return JobsClient(self.api_url, signer=signer, timeout=timeout)

    def with_queues(self) -> Target:
        """This target with its queue URLs and table name (for `jobpipe dlq`)."""
        if self.queue_url and self.dlq_url and self.table_name:
            return self
        if self.local:
            return self._from_local_config()
        raise TargetError(
            f"`jobpipe dlq` needs the stack's queues and table: pass --stack NAME, or set "
            f"{ENV_QUEUE_URL}, {ENV_DLQ_URL} and {ENV_TABLE_NAME}"
        )

    def sqs(self) -> SQSClient:
        return self._session().client("sqs", **self._client_arguments())  # type: ignore[no-any-return]

    def dynamodb(self) -> DynamoDBClient:
        return self._session().client("dynamodb", **self._client_arguments())  # type: ignore[no-any-return]

    def _session(self) -> Any:
        import boto3

        if self.local:
            # moto takes any credentials; never send real ones to it.
            return boto3.Session(
                aws_access_key_id="local",
                aws_secret_access_key="local",  # noqa: S106  (moto's dummy credentials)
                region_name=self.region or "us-east-1",
            )
        session = boto3.Session(profile_name=self.profile, region_name=self.region)
        if session.get_credentials() is None:
            raise CredentialsError(
                "no AWS credentials found (set AWS_PROFILE or run `aws sso login`)"
            )
        if session.region_name is None:
            raise CredentialsError("no AWS region (set AWS_REGION or pass --region)")
        return session

    def _client_arguments(self) -> dict[str, Any]:
        return {"endpoint_url": self.aws_endpoint_url} if self.aws_endpoint_url else {}

    def _from_local_config(self) -> Target:
        url = f"{self.api_url.rstrip('/')}{LOCAL_CONFIG_PATH}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  (loopback)
                config = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise TargetError(
                f"{self.api_url} is not a jobpipe local stack ({url} answered {error.code})"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            raise ConnectionFailedError(
                f"cannot reach the local stack at {self.api_url}: {getattr(error, 'reason', error)}"
            ) from None
        except ValueError:
            raise TargetError(f"{url} did not answer JSON") from None
        return replace(
            self,
            region=config["region"],
            table_name=config["table_name"],
            queue_url=config["queue_url"],
            dlq_url=config["dlq_url"],
            aws_endpoint_url=config["aws_endpoint_url"],
        )


def resolve(
    url: str | None = None,
    stack: str | None = None,
    region: str | None = None,
    profile: str | None = None,
) -> Target:
    """The target from the options, then the environment, then the local default."""
    if url and stack:
        raise TargetError("pass either --url or --stack, not both")
    if stack:
        return from_stack(stack, region, profile)
    source = "--url"
    if not url:
        url, source = os.environ.get(ENV_URL) or None, ENV_URL
    if not url:
        url, source = default_url(), "default"
    if not url.startswith(("http://", "https://")):
        raise TargetError(f"not an http(s) URL: {url!r} (from {source})")
    url = url.rstrip("/")
    local = is_loopback(url)
    return Target(
        api_url=url,
        source=source,
        local=local,
        region=region or (None if local else region_of(url)),
        profile=profile,
        table_name=None if local else os.environ.get(ENV_TABLE_NAME) or None,
        queue_url=None if local else os.environ.get(ENV_QUEUE_URL) or None,
        dlq_url=None if local else os.environ.get(ENV_DLQ_URL) or None,
    )


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    """A stack's outputs by key."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except NoCredentialsError:
        raise CredentialsError(
            "no AWS credentials found (set AWS_PROFILE or run `aws sso login`)"
        ) from None
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", str(error))
        raise TargetError(f"cannot read stack {stack!r}: {message}") from None
    except BotoCoreError as error:
        raise TargetError(f"cannot read stack {stack!r}: {error}") from None
    if not stacks:
        raise TargetError(f"no stack {stack!r}")
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def from_stack(stack: str, region: str | None, profile: str | None) -> Target:
    import boto3

    session = boto3.Session(profile_name=profile, region_name=region)
    if session.region_name is None:
        raise CredentialsError("no AWS region (set AWS_REGION or pass --region)")
    outputs = stack_outputs(session.client("cloudformation"), stack)
    missing = [
        key
        for key in (OUTPUT_API_URL, OUTPUT_QUEUE_URL, OUTPUT_DLQ_URL, OUTPUT_TABLE_NAME)
        if not outputs.get(key)
    ]
    if missing:
        raise TargetError(f"stack {stack!r} has no output {', '.join(missing)}")
    api_url = outputs[OUTPUT_API_URL].rstrip("/")
    return Target(
        api_url=api_url,
        source=f"--stack {stack}",
        local=False,
        region=session.region_name,
        profile=profile,
        table_name=outputs[OUTPUT_TABLE_NAME],
        queue_url=outputs[OUTPUT_QUEUE_URL],
        dlq_url=outputs[OUTPUT_DLQ_URL],
    )
