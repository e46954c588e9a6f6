"""The scheduler port on EventBridge Scheduler: one-time schedules in the stack's schedule group
that send a delayed job's message to the jobs queue, then delete themselves.

Each schedule is named after its job (`job-<id>`), so creating it twice (a retried submit)
finds the first one (ConflictException) instead of making a second. A delivery EventBridge
cannot make goes to the jobs DLQ after its retries, where `jobpipe dlq replay` finds it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from jobpipe.adapters.clients import error_code
from jobpipe.domain.schedule import at_expression, one_time_name
from jobpipe.errors import SchedulerError
from jobpipe.ports import OneTimeSchedule

if TYPE_CHECKING:
    from mypy_boto3_scheduler import EventBridgeSchedulerClient

# EventBridge Scheduler's most patient retry policy: a delivery that keeps failing is tried for
# a day before it goes to the dead-letter queue.
MAX_EVENT_AGE_SECONDS = 86400
MAX_RETRY_ATTEMPTS = 185


class EventBridgeScheduler:
    def __init__(
        self,
        group: str,
        *,
        queue_arn: str,
        dlq_arn: str,
        role_arn: str,
        client: EventBridgeSchedulerClient | None = None,
    ) -> None:
        self.group = group
        self._queue_arn = queue_arn
        self._dlq_arn = dlq_arn
        self._role_arn = role_arn
        self._client_override = client

    @property
    def _client(self) -> EventBridgeSchedulerClient:
        if self._client_override is not None:
            return self._client_override
        from jobpipe.adapters import clients

        return clients.scheduler()

    def schedule_once(self, job_id: str, at_ms: int, body: str) -> None:
        try:
            self._client.create_schedule(
                Name=one_time_name(job_id),
                GroupName=self.group,
                ScheduleExpression=at_expression(at_ms),
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Description=f"jobpipe: the message of delayed job {job_id}",
                # A retried request within EventBridge's idempotency window is the same one.
                ClientToken=job_id,
                Target={
                    "Arn": self._queue_arn,
                    "RoleArn": self._role_arn,
                    "Input": body,
                    "RetryPolicy": {
                        "MaximumEventAgeInSeconds": MAX_EVENT_AGE_SECONDS,
                        "MaximumRetryAttempts": MAX_RETRY_ATTEMPTS,
                    },
                    "DeadLetterConfig": {"Arn": self._dlq_arn},
                },
            )
        except self._client.exceptions.ConflictException:
            return  # made by an earlier try of the same submit
        except Exception as exc:
            raise _scheduler_error("CreateSchedule", exc) from exc

    def cancel_once(self, job_id: str) -> bool:
        try:
            self._client.delete_schedule(Name=one_time_name(job_id), GroupName=self.group)
        except self._client.exceptions.ResourceNotFoundException:
            return False
        except Exception as exc:
            raise _scheduler_error("DeleteSchedule", exc) from exc
        return True

    def once(self, job_id: str) -> OneTimeSchedule | None:
        try:
            found = self._client.get_schedule(Name=one_time_name(job_id), GroupName=self.group)
        except self._client.exceptions.ResourceNotFoundException:
            return None
        except Exception as exc:
            raise _scheduler_error("GetSchedule", exc) from exc
        expression = found["ScheduleExpression"]
        at = datetime.fromisoformat(expression.removeprefix("at(").removesuffix(")"))
        return OneTimeSchedule(
            job_id=job_id,
            at_ms=int(at.replace(tzinfo=UTC).timestamp() * 1000),
            body=found["Target"].get("Input", ""),
        )


def _scheduler_error(operation: str, exc: Exception) -> SchedulerError:
    code = error_code(exc) or type(exc).__name__
    return SchedulerError(f"EventBridge Scheduler {operation} failed: {code}")
