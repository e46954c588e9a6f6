"""The one factory every jobpipe function is built by.

Runtime, architecture, code, logging, tracing and the environment are decided here once; a
function differs only by its handler, memory, timeout and the grants its construct gives it.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Acknowledgment, AssetHashType, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.bundling import PYTHON_VERSION, Bundle

RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64
assert RUNTIME.name == f"python{PYTHON_VERSION}", "the bundle targets another Python"

# CloudWatch Logs accepts only these retention periods.
_RETENTION_BY_DAYS: dict[int, logs.RetentionDays] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def log_retention(days: int) -> logs.RetentionDays:
    """The CloudWatch retention setting for `days`, refusing periods Logs does not offer."""
    try:
        return _RETENTION_BY_DAYS[days]
    except KeyError:
        allowed = ", ".join(str(d) for d in sorted(_RETENTION_BY_DAYS))
        raise ValueError(f"log retention of {days} days is not one of {allowed}") from None


class FunctionFactory(Construct):
    """Holds what every function shares; `function()` adds one."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bundle: Bundle,
        environment: Mapping[str, str],
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        # One asset for all three functions, identified by the bundle's own content key so the
        # CDK does not hash the whole dependency tree on every synth.
        self._code = lambda_.Code.from_asset(
            str(bundle.path),
            asset_hash=bundle.key,
            asset_hash_type=AssetHashType.CUSTOM,
        )
        self._environment = dict(environment)
        self._retention = log_retention(log_retention_days)

    def function(
        self,
        construct_id: str,
        *,
        handler: str,
        description: str,
        memory_mb: int,
        timeout_seconds: int,
    ) -> lambda_.Function:
        """A function running `handler` from the shared code asset, with its own role and logs.

        The role starts empty apart from writing its own log group and X-Ray traces; every other
        permission is a grant by the construct that wires the function up.
        """
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            retention=self._retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"jobpipe {construct_id} function: only the actions its code calls",
        )
        log_group.grant(role, "logs:CreateLogStream", "logs:PutLogEvents")
        function = lambda_.Function(
            self,
            construct_id,
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=self._code,
            handler=handler,
            memory_size=memory_mb,
            timeout=Duration.seconds(timeout_seconds),
            role=role,
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            log_group=log_group,
            environment=self._environment,
        )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray PutTraceSegments/PutTelemetryRecords (added by active tracing) "
                "and CloudWatch GetMetricData (the reaper reads the queue's age) support no "
                "resource-level permissions.",
            )
        )
        Validations.of(function).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-L1",
                reason=f"Pinned to {RUNTIME.name}: the bundle installs the lock file's wheels "
                "for this Python; move both together when the dependencies support a newer one.",
            )
        )
        return function
