"""The CDK app (`cdk.json` runs `python -m infra.app`).

Context values (`cdk deploy -c name=value`):
- `stackName`: the stack's name (default `Jobpipe`).
- `jwtIssuer` and `jwtAudience` (comma-separated): accept JWTs from this OIDC issuer on every
  route instead of IAM (SigV4) auth.
- `alarmEmail` or `alarmTopicArn`: where the alarms notify (an email address, subscribed to a new
  SNS topic; or an existing topic). Without either the alarms only show on the dashboard.
- `pausedSchedules`: recurring schedules deployed paused (DISABLED): `all`, or their names,
  comma-separated. A name no job type declares fails the synth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import App, Environment, Stack, Validations
from cdk_nag import AwsSolutionsChecks

from infra.bundling import Bundle, lambda_bundle
from infra.components.api import JwtAuth
from infra.guardrails import JobTypes
from infra.stack import AlarmTarget, JobpipeStack
from jobpipe.topology import TOPOLOGY, Topology

DEFAULT_STACK_NAME = "Jobpipe"
CONTEXT_STACK_NAME = "stackName"
CONTEXT_JWT_ISSUER = "jwtIssuer"
CONTEXT_JWT_AUDIENCE = "jwtAudience"
CONTEXT_ALARM_EMAIL = "alarmEmail"
CONTEXT_ALARM_TOPIC = "alarmTopicArn"
CONTEXT_PAUSED_SCHEDULES = "pausedSchedules"


class ContextError(ValueError):
    """A context value is missing, malformed, or given without its partner."""


def jwt_from_context(app: App) -> JwtAuth | None:
    """The JWT authorizer the context asks for, or None (IAM auth)."""
    issuer = app.node.try_get_context(CONTEXT_JWT_ISSUER)
    audience = app.node.try_get_context(CONTEXT_JWT_AUDIENCE)
    if not issuer and not audience:
        return None
    if not issuer or not audience:
        raise ContextError(f"set both {CONTEXT_JWT_ISSUER} and {CONTEXT_JWT_AUDIENCE}, or neither")
    if not str(issuer).startswith("https://"):
        raise ContextError(f"{CONTEXT_JWT_ISSUER} must be an https:// URL, got {issuer!r}")
    audiences = audience if isinstance(audience, list) else str(audience).split(",")
    return JwtAuth(str(issuer), tuple(a.strip() for a in audiences if a.strip()))


def alarms_from_context(app: App) -> AlarmTarget | None:
    """Where the alarms notify, from the context, or None."""
    email = app.node.try_get_context(CONTEXT_ALARM_EMAIL)
    topic = app.node.try_get_context(CONTEXT_ALARM_TOPIC)
    if email and topic:
        raise ContextError(f"set {CONTEXT_ALARM_EMAIL} or {CONTEXT_ALARM_TOPIC}, not both")
    if email and "@" not in str(email):
        raise ContextError(f"{CONTEXT_ALARM_EMAIL} must be an email address, got {email!r}")
    if topic and not str(topic).startswith("arn:"):
        raise ContextError(f"{CONTEXT_ALARM_TOPIC} must be an SNS topic ARN, got {topic!r}")
    if not email and not topic:
        return None
    return AlarmTarget(email=str(email) if email else None, topic_arn=str(topic) if topic else None)


def build_app(
    *,
    context: Mapping[str, Any] | None = None,
    outdir: str | None = None,
    topology: Topology = TOPOLOGY,
    job_types: JobTypes | None = None,
    bundle: Bundle | None = None,
    env: Environment | None = None,
) -> tuple[App, Stack]:
    """The app with the jobpipe stack and cdk-nag's AWS Solutions checks applied."""
    from jobpipe.domain.registry import load_job_types
    from jobpipe.domain.schedule import paused_names

    app = App(context=dict(context or {}), outdir=outdir)
    types = job_types if job_types is not None else load_job_types()
    paused = app.node.try_get_context(CONTEXT_PAUSED_SCHEDULES)
    stack = JobpipeStack(
        app,
        str(app.node.try_get_context(CONTEXT_STACK_NAME) or DEFAULT_STACK_NAME),
        topology=topology,
        job_types=types,
        bundle=bundle if bundle is not None else lambda_bundle(),
        jwt=jwt_from_context(app),
        alarms=alarms_from_context(app),
        paused_schedules=paused_names(str(paused) if paused else None, types.schedules),
        env=env,
        description="jobpipe: serverless job pipeline (API Gateway, SQS, Lambda, DynamoDB)",
    )
    # Any unacknowledged finding interrupts the synth (CDK policy validation).
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app, stack


def main() -> None:
    import os

    env = Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    app, _ = build_app(env=env)
    app.synth()


if __name__ == "__main__":
    main()
