"""Time on EventBridge Scheduler: the stack's schedule group, the role its schedules send with,
the recurring schedules the job types declare, and alarms on deliveries that fail.

- Delayed jobs due beyond SQS's 15 minutes wait on one-time schedules the submit function
  creates in the group (each sends the job's message to the jobs queue, retried into the DLQ).
- A recurring schedule invokes the Recurring function, which creates the firing's job (one per
  schedule and scheduled time, however often it is delivered). A Lambda target rather than a
  message on the jobs queue: the job must be written before its message means anything, and a
  worker that wrote jobs from messages would need PutItem for every message it receives.

The scheduler's role may only send to the jobs queue and its DLQ and invoke the Recurring
function; nothing else may pass it (the submit function alone, by `iam:PassRole` on it).
Pausing is a deploy-time setting (`-c pausedSchedules=all` or names): the paused schedules are
deployed DISABLED, so the stack is the one place that says what runs.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Token, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.components.queues import JobQueues
from jobpipe.domain.schedule import ScheduleDefinition

# How long and how often EventBridge Scheduler tries a delivery before it gives up (the most it
# allows), for one-time schedules (`jobpipe.adapters.scheduler`) and recurring ones alike.
MAX_EVENT_AGE_SECONDS = 86400
MAX_RETRY_ATTEMPTS = 185
PERIOD = Duration.minutes(5)


class Schedules(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        queues: JobQueues,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # Named after the stack (unique per account and region); at most 64 characters.
        self.group_name = f"{stack.stack_name[:50]}-schedules"
        # Deleted with the stack, as its queues are: a delayed job's schedule has nowhere to send.
        self.group = scheduler.ScheduleGroup(
            self, "Group", schedule_group_name=self.group_name, removal_policy=RemovalPolicy.DESTROY
        )
        # By reference, so that what names the group (the functions' environment, the recurring
        # schedules) is deployed after it.
        cfn_group = self.group.node.default_child
        assert isinstance(cfn_group, scheduler.CfnScheduleGroup)
        self.group_ref: str = cfn_group.ref
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
            description="jobpipe schedules: send delayed jobs' messages, invoke Recurring",
        )
        # A delayed job's message to the jobs queue; what the retries cannot deliver, to the DLQ.
        queues.queue.grant(self.role, "sqs:SendMessage")
        queues.dlq.grant(self.role, "sqs:SendMessage")
        self.schedules_arn = stack.format_arn(
            service="scheduler",
            resource="schedule",
            resource_name=f"{self.group_name}/*",
        )

    def grant(self, function: lambda_.IFunction, actions: Iterable[str]) -> None:
        """`actions` on the schedules of the group, and nowhere else."""
        iam.Grant.add_to_principal(
            grantee=function, actions=list(actions), resource_arns=[self.schedules_arn]
        )
        if function.role is not None:
            # cdk-nag names the finding by the ARN as synthesized: a region or account the
            # stack's environment fixes is written out, otherwise it is a pseudo parameter.
            stack = Stack.of(self)
            region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
            account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
            Validations.of(function.role).acknowledge(
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:"
                    f"scheduler:{region}:{account}:schedule/{self.group_name}/*]",
                    reason="A delayed job's one-time schedule is named after the job, made at "
                    "submit: the grant covers the stack's schedule group and no other.",
                )
            )

    def grant_pass_role(self, function: lambda_.IFunction) -> None:
        """Hand the scheduler's role to the schedules it creates: this role, to this service."""
        iam.Grant.add_to_principal(
            grantee=function,
            actions=["iam:PassRole"],
            resource_arns=[self.role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
        )

    def recurring(
        self,
        definitions: Iterable[ScheduleDefinition],
        *,
        target: lambda_.IFunction,
    ) -> list[scheduler.CfnSchedule]:
        """A schedule per declaration, each invoking `target` with its firing's input."""
        declared = list(definitions)
        if declared:
            # The function itself (not its versions or aliases: `grant_invoke` adds `:*`).
            iam.Grant.add_to_principal(
                grantee=self.role,
                actions=["lambda:InvokeFunction"],
                resource_arns=[target.function_arn],
            )
        created = []
        for each in declared:
            created.append(
                scheduler.CfnSchedule(
                    self,
                    f"Recurring-{each.name}",
                    name=each.name,
                    group_name=self.group_ref,
                    description=each.description,
                    schedule_expression=each.expression,
                    schedule_expression_timezone=each.timezone,
                    flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(
                        mode="OFF"
                    ),
                    state="ENABLED" if each.enabled else "DISABLED",
                    target=scheduler.CfnSchedule.TargetProperty(
                        arn=target.function_arn,
                        role_arn=self.role.role_arn,
                        input=each.input,
                        retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                            maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
                            maximum_retry_attempts=MAX_RETRY_ATTEMPTS,
                        ),
                    ),
                )
            )
        return created

    def alarms(self, notify: sns.ITopic | None) -> list[cloudwatch.Alarm]:
        """Deliveries EventBridge Scheduler gave up on (a delayed job's message, or a recurring
        firing), or could not even put in the DLQ."""

        def alarm(alarm_id: str, metric: cloudwatch.IMetric, description: str) -> cloudwatch.Alarm:
            created = cloudwatch.Alarm(
                self,
                alarm_id,
                metric=metric,
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            if notify is not None:
                created.add_alarm_action(cloudwatch_actions.SnsAction(notify))
            return created

        return [
            alarm(
                "DroppedDeliveries",
                self.group.metric_dropped(period=PERIOD, statistic="Sum"),
                "EventBridge Scheduler dropped a delivery after its retries: a recurring "
                "firing made no job (or a delayed job's message is in the DLQ).",
            ),
            alarm(
                "UndeliverableToDlq",
                self.group.metric_failed_to_be_sent_to_dlq(period=PERIOD, statistic="Sum"),
                "EventBridge Scheduler could not deliver a delayed job's message, nor put it in "
                "the DLQ: the reaper re-queues the job once it is overdue.",
            ),
        ]
