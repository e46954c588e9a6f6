"""Alarms on what loses or delays work, and a dashboard of the pipeline."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from jobpipe.topology import MetricNames

PERIOD = Duration.minutes(5)
# The queue is falling behind when its oldest message has waited this long. Retries hide their
# message for the backoff, so this sits well above the default backoff cap (300 s).
OLDEST_MESSAGE_ALARM_SECONDS = 3600


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        queue: sqs.IQueue,
        dlq: sqs.IQueue,
        worker: lambda_.IFunction,
        api_functions: Mapping[str, lambda_.IFunction],
        reaper: lambda_.IFunction,
        api: apigw.HttpApi,
        metrics: MetricNames,
        namespace: str,
        service: str,
        notify: sns.ITopic | None = None,
    ) -> None:
        super().__init__(scope, construct_id)

        def job_metric(name: str, statistic: str = "Sum") -> cloudwatch.Metric:
            # Powertools publishes EMF metrics with the `service` dimension.
            return cloudwatch.Metric(
                namespace=namespace,
                metric_name=name,
                dimensions_map={"service": service},
                statistic=statistic,
                period=PERIOD,
                label=f"{name} ({statistic})" if statistic != "Sum" else name,
            )

        def alarm(
            alarm_id: str,
            metric: cloudwatch.IMetric,
            threshold: float,
            description: str,
            missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
        ) -> cloudwatch.Alarm:
            created = cloudwatch.Alarm(
                self,
                alarm_id,
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=missing,
                alarm_description=description,
            )
            if notify is not None:
                created.add_alarm_action(cloudwatch_actions.SnsAction(notify))
            return created

        self.alarms = [
            alarm(
                "DeadLetters",
                dlq.metric_approximate_number_of_messages_visible(
                    period=PERIOD, statistic="Maximum"
                ),
                0,
                "Jobs are in the dead-letter queue: list and replay them with `jobpipe dlq`.",
                # SQS stops publishing metrics for a queue nobody touches for a while: missing
                # data keeps the alarm as it was instead of clearing it while letters wait.
                cloudwatch.TreatMissingData.IGNORE,
            ),
            alarm(
                "OldestMessageAge",
                queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum"),
                OLDEST_MESSAGE_ALARM_SECONDS,
                "The jobs queue is falling behind: its oldest message has waited over an hour.",
            ),
            alarm(
                "WorkerErrors",
                worker.metric_errors(period=PERIOD, statistic="Sum"),
                0,
                "The worker failed whole batches (crash or timeout): their jobs are redelivered.",
            ),
            alarm(
                "WorkerThrottles",
                worker.metric_throttles(period=PERIOD, statistic="Sum"),
                0,
                "The worker was throttled: throttles consume receives toward maxReceiveCount.",
            ),
            alarm(
                "ReaperErrors",
                reaper.metric_errors(period=PERIOD, statistic="Sum"),
                0,
                "The stuck-job reaper failed: stuck jobs wait until a run succeeds.",
            ),
            alarm(
                "ReaperUnresolved",
                job_metric(metrics.reaper_unresolved),
                0,
                "The reaper could not resolve a stuck job (a claim or a send failed); the next "
                "run tries again.",
            ),
            alarm(
                "Api5xx",
                api.metric_server_error(period=PERIOD, statistic="Sum"),
                0,
                "The job API answered 5xx.",
            ),
        ]

        functions = {"worker": worker, **api_functions}
        stack = Stack.of(self)
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            # Dashboard names are global to the account: the region keeps deployments apart.
            dashboard_name=f"{stack.stack_name}-{stack.region}",
            default_interval=Duration.hours(3),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Queue depth",
                left=[
                    queue.metric_approximate_number_of_messages_visible(
                        period=PERIOD, statistic="Maximum", label="waiting"
                    ),
                    queue.metric_approximate_number_of_messages_not_visible(
                        period=PERIOD, statistic="Maximum", label="in flight or backing off"
                    ),
                    dlq.metric_approximate_number_of_messages_visible(
                        period=PERIOD, statistic="Maximum", label="dead-lettered"
                    ),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Age of the oldest message (s)",
                left=[
                    queue.metric_approximate_age_of_oldest_message(
                        period=PERIOD, statistic="Maximum", label="jobs queue"
                    ),
                    dlq.metric_approximate_age_of_oldest_message(
                        period=PERIOD, statistic="Maximum", label="dead-letter queue"
                    ),
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Job outcomes",
                left=[
                    job_metric(metrics.submitted),
                    job_metric(metrics.succeeded),
                    job_metric(metrics.failed),
                    job_metric(metrics.retried),
                    job_metric(metrics.dead_lettered),
                    job_metric(metrics.poison),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Errors",
                left=[
                    *(
                        fn.metric_errors(period=PERIOD, statistic="Sum", label=f"{name} errors")
                        for name, fn in functions.items()
                    ),
                    *(
                        fn.metric_throttles(
                            period=PERIOD, statistic="Sum", label=f"{name} throttles"
                        )
                        for name, fn in functions.items()
                    ),
                    api.metric_server_error(period=PERIOD, statistic="Sum", label="API 5xx"),
                    api.metric_client_error(period=PERIOD, statistic="Sum", label="API 4xx"),
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Job duration (ms)",
                left=[job_metric(metrics.duration, "Average"), job_metric(metrics.duration, "p99")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Function and API duration, p99 (ms)",
                left=[
                    *(
                        fn.metric_duration(period=PERIOD, statistic="p99", label=name)
                        for name, fn in functions.items()
                    ),
                    api.metric_latency(period=PERIOD, statistic="p99", label="API latency"),
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24)
        )
