"""The jobpipe stack: composes the components and grants each function what its code calls."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput, Duration, Environment, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.bundling import Bundle
from infra.components.api import JobsApi, JwtAuth
from infra.components.functions import FunctionFactory
from infra.components.monitoring import Monitoring
from infra.components.queues import JobQueues
from infra.components.schedules import Schedules
from infra.components.table import JobsTable
from infra.components.worker import WorkerEventSource
from infra.guardrails import JobTypes, SqsEventSourceRules, check_topology
from jobpipe import settings
from jobpipe.api.routes import FUNCTIONS, ROUTES, Grants
from jobpipe.domain.schedule import definition
from jobpipe.topology import Topology

# The stack outputs' keys: the jobpipe CLI finds a deployed stack's API and queues by them.
OUTPUT_API_URL = "ApiUrl"
OUTPUT_QUEUE_URL = "QueueUrl"
OUTPUT_DLQ_URL = "DlqUrl"
OUTPUT_TABLE_NAME = "TableName"


class JobpipeStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topology: Topology,
        job_types: JobTypes,
        bundle: Bundle,
        jwt: JwtAuth | None = None,
        alarms: AlarmTarget | None = None,
        paused_schedules: frozenset[str] = frozenset(),
        env: Environment | None = None,
        description: str | None = None,
    ) -> None:
        # Refuse before declaring anything: a bad topology never reaches a template.
        check_topology(topology, job_types)
        super().__init__(scope, construct_id, env=env, description=description)
        self.node.add_validation(SqsEventSourceRules(self))

        table = JobsTable(self, "Jobs", shape=topology.table).table
        queues = JobQueues(self, "Queues", shape=topology.queue)
        schedules = Schedules(self, "Schedules", queues=queues)
        factory = FunctionFactory(
            self,
            "Functions",
            bundle=bundle,
            log_retention_days=topology.log_retention_days,
            environment={
                settings.ENV_TABLE_NAME: table.table_name,
                settings.ENV_QUEUE_URL: queues.queue.queue_url,
                settings.ENV_DLQ_URL: queues.dlq.queue_url,
                settings.ENV_MAX_BODY_BYTES: str(topology.api.max_body_bytes),
                settings.ENV_RETENTION_DAYS: str(topology.retention_days),
                settings.ENV_QUEUE_ARN: queues.queue.queue_arn,
                settings.ENV_DLQ_ARN: queues.dlq.queue_arn,
                settings.ENV_SCHEDULE_GROUP: schedules.group_ref,
                settings.ENV_SCHEDULER_ROLE_ARN: schedules.role.role_arn,
                "POWERTOOLS_SERVICE_NAME": topology.service_name,
                "POWERTOOLS_METRICS_NAMESPACE": topology.metrics_namespace,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
        )
        # Every function of `jobpipe.api.routes`, granted exactly what its code calls. Item
        # actions go on the table itself: `Table.grant` would add its indexes (`/index/*`).
        functions: dict[str, lambda_.Function] = {}
        for spec in FUNCTIONS:
            memory, timeout = {
                "Worker": (topology.worker.memory_mb, topology.worker.timeout_seconds),
                "Reaper": (topology.reaper.memory_mb, topology.reaper.timeout_seconds),
            }.get(
                spec.name, (topology.api.function_memory_mb, topology.api.function_timeout_seconds)
            )
            function = factory.function(
                spec.name,
                handler=spec.handler,
                description=spec.description,
                memory_mb=memory,
                timeout_seconds=timeout,
            )
            _grant(function, spec.grants, table, queues, schedules)
            functions[spec.name] = function
        worker, reaper = functions["Worker"], functions["Reaper"]
        # The reaper is reached by this schedule only: no route of the API leads to it.
        events.Rule(
            self,
            "ReaperSchedule",
            description="Runs the stuck-job reaper",
            schedule=events.Schedule.rate(Duration.minutes(topology.reaper.schedule_minutes)),
            targets=[targets.LambdaFunction(reaper, retry_attempts=0)],
        )
        WorkerEventSource(
            self, "WorkerSource", worker=worker, queue=queues.queue, shape=topology.worker
        )
        # The recurring schedules the job types declare, each firing the Recurring function.
        schedules.recurring(
            [
                definition(each, paused=each.name in paused_schedules)
                for each in job_types.schedules.values()
            ],
            target=functions["Recurring"],
        )

        api = JobsApi(
            self,
            "Api",
            shape=topology.api,
            routes=ROUTES,
            functions=functions,
            log_retention_days=topology.log_retention_days,
            jwt=jwt,
        )
        notify = self._alarm_topic(alarms)
        schedules.alarms(notify)
        Monitoring(
            self,
            "Monitoring",
            queue=queues.queue,
            dlq=queues.dlq,
            worker=worker,
            api_functions={
                spec.name.lower(): functions[spec.name] for spec in FUNCTIONS if spec.api
            },
            reaper=reaper,
            api=api.api,
            metrics=topology.metrics,
            namespace=topology.metrics_namespace,
            service=topology.service_name,
            notify=notify,
        )

        CfnOutput(self, OUTPUT_API_URL, value=api.url, description="The job API's base URL")
        CfnOutput(self, OUTPUT_QUEUE_URL, value=queues.queue.queue_url, description="Jobs queue")
        CfnOutput(self, OUTPUT_DLQ_URL, value=queues.dlq.queue_url, description="Dead letters")
        CfnOutput(self, OUTPUT_TABLE_NAME, value=table.table_name, description="Jobs table")

    def _alarm_topic(self, target: AlarmTarget | None) -> sns.ITopic | None:
        """Where alarms notify: an existing SNS topic, or a new one that emails an address."""
        if target is None:
            return None
        if target.topic_arn:
            return sns.Topic.from_topic_arn(self, "AlarmTopic", target.topic_arn)
        topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name="jobpipe alarms",
            enforce_ssl=True,
            master_key=kms.Alias.from_alias_name(self, "SnsKey", "alias/aws/sns"),
        )
        if target.email:
            topic.add_subscription(subscriptions.EmailSubscription(target.email))
        return topic


def _grant(
    function: lambda_.Function,
    grants: Grants,
    table: dynamodb.ITable,
    queues: JobQueues,
    schedules: Schedules,
) -> None:
    if grants.table:
        iam.Grant.add_to_principal(
            grantee=function, actions=list(grants.table), resource_arns=[table.table_arn]
        )
    if grants.indexes:
        iam.Grant.add_to_principal(
            grantee=function,
            actions=list(grants.index_actions),
            resource_arns=[f"{table.table_arn}/index/{index}" for index in grants.indexes],
        )
    if grants.queue:
        queues.queue.grant(function, *grants.queue)
    if grants.dlq:
        queues.dlq.grant(function, *grants.dlq)
    if grants.schedules:
        schedules.grant(function, grants.schedules)
    if grants.pass_scheduler_role:
        schedules.grant_pass_role(function)
    if grants.unscoped:
        # Actions with no resource-level permissions (acknowledged in the function factory).
        iam.Grant.add_to_principal(
            grantee=function, actions=list(grants.unscoped), resource_arns=["*"]
        )


@dataclass(frozen=True)
class AlarmTarget:
    """Who hears the alarms: an email address (a topic is created) or an existing topic."""

    email: str | None = None
    topic_arn: str | None = None
