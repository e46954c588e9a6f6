"""EventBridge Scheduler, off AWS: moto stores schedules but never fires them, so the local stack
fires the schedules of its group itself, with EventBridge's semantics.

- A one-time `at(...)` schedule fires once its time has come, and is deleted after it fires
  when its `ActionAfterCompletion` says DELETE (a delayed job's schedule does).
- A recurring `cron(...)` (6 EventBridge fields, in its time zone) or `rate(...)` schedule fires
  at each of its times from when this scheduler first saw it (EventBridge does not fire times
  from before a schedule existed either).
- Only ENABLED schedules fire (a paused one is DISABLED).
- Firing delivers the target's input, with `<aws.scheduler.scheduled-time>` filled in, to the
  target: an SQS queue (SendMessage) or a function (its handler, called as Lambda calls it).
  A delivery that fails is tried again at the next tick.

`tick()` fires whatever is due on its clock; the local stack calls it every second, and tests
call it after moving a clock of their own (no sleeping).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobpipe.domain.schedule import (
    SCHEDULED_TIME,
    ScheduleDefinition,
    at_time,
    firings_after,
)

if TYPE_CHECKING:
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sqs import SQSClient

Invoke = Callable[[str, dict[str, Any]], Any]
_log = logging.getLogger(__name__)
# Fired per schedule and tick at most: a clock moved far ahead does not flood the queue.
MAX_FIRINGS_PER_TICK = 100


@dataclass(frozen=True)
class Delivery:
    schedule: str
    scheduled_time: datetime
    target_arn: str


def scheduled_time_text(when: datetime) -> str:
    """As EventBridge fills in `<aws.scheduler.scheduled-time>`: `2026-03-22T18:59:43Z`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LocalScheduler:
    def __init__(
        self,
        scheduler: EventBridgeSchedulerClient,
        sqs: SQSClient,
        group: str,
        invoke: Invoke,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._scheduler = scheduler
        self._sqs = sqs
        self.group = group
        self._invoke = invoke
        self.clock = clock
        # Recurring schedules: the time each last fired for (or was first seen at).
        self._last: dict[str, datetime] = {}
        self._first_seen: dict[str, datetime] = {}
        self.deliveries: list[Delivery] = []
        # Deliver each firing this many more times (EventBridge delivers at least once): tests
        # and `make chaos` duplicate deliveries with it.
        self.extra_deliveries = 0

    def tick(self) -> list[Delivery]:
        """Fire every schedule of the group that is due on the clock; returns what it fired."""
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        fired: list[Delivery] = []
        for name in self._names():
            try:
                schedule = self._scheduler.get_schedule(Name=name, GroupName=self.group)
            except self._scheduler.exceptions.ResourceNotFoundException:
                continue  # deleted since it was listed (a cancelled job's)
            if schedule.get("State", "ENABLED") != "ENABLED":
                continue
            expression = schedule["ScheduleExpression"]
            if expression.startswith("at("):
                fired.extend(self._fire_once(name, schedule, now))
            else:
                fired.extend(self._fire_recurring(name, schedule, now))
        self.deliveries.extend(fired)
        return fired

    def _names(self) -> list[str]:
        names: list[str] = []
        token: str | None = None
        while True:
            page = (
                self._scheduler.list_schedules(GroupName=self.group, NextToken=token)
                if token
                else self._scheduler.list_schedules(GroupName=self.group)
            )
            names.extend(s["Name"] for s in page.get("Schedules", []))
            token = page.get("NextToken")
            if not token:
                return names

    def _fire_once(self, name: str, schedule: Any, now: datetime) -> list[Delivery]:
        timezone = schedule.get("ScheduleExpressionTimezone") or "UTC"
        at = at_time(schedule["ScheduleExpression"], timezone)
        if at > now:
            return []
        if not self._deliver(name, schedule["Target"], at):
            return []
        if schedule.get("ActionAfterCompletion") == "DELETE":
            self._scheduler.delete_schedule(Name=name, GroupName=self.group)
        return [Delivery(name, at, schedule["Target"]["Arn"])]

    def _fire_recurring(self, name: str, schedule: Any, now: datetime) -> list[Delivery]:
        timezone = schedule.get("ScheduleExpressionTimezone") or "UTC"
        first_seen = self._first_seen.setdefault(name, now)
        last = self._last.setdefault(name, now)
        fired: list[Delivery] = []
        for when in firings_after(
            schedule["ScheduleExpression"], timezone, last, started=first_seen
        ):
            if when > now or len(fired) >= MAX_FIRINGS_PER_TICK:
                break
            if not self._deliver(name, schedule["Target"], when):
                break  # tried again at the next tick, from the same time
            self._last[name] = when
            fired.append(Delivery(name, when, schedule["Target"]["Arn"]))
        return fired

    def _deliver(self, name: str, target: Any, when: datetime) -> bool:
        """Send the target its input for the firing at `when` (again, `extra_deliveries` more
        times); False when the first delivery failed."""
        delivered = self._deliver_once(name, target, when)
        for _ in range(self.extra_deliveries if delivered else 0):
            self._deliver_once(name, target, when)
        return delivered

    def _deliver_once(self, name: str, target: Any, when: datetime) -> bool:
        payload = str(target.get("Input", "")).replace(SCHEDULED_TIME, scheduled_time_text(when))
        arn = str(target["Arn"])
        try:
            if arn.startswith("arn:aws:sqs:"):
                queue_url = self._sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]
                self._sqs.send_message(QueueUrl=queue_url, MessageBody=payload)
            elif arn.startswith("arn:aws:lambda:"):
                self._invoke(arn, json.loads(payload))
            else:
                _log.warning("schedule %s: its target %s is not emulated", name, arn)
                return False
        except Exception:  # noqa: BLE001  (a failed delivery is tried again, as EventBridge does)
            _log.exception("schedule %s: delivery failed; trying again", name)
            return False
        return True


def create_recurring(
    scheduler: EventBridgeSchedulerClient,
    group: str,
    definitions: list[ScheduleDefinition],
    *,
    function_arn: str,
    role_arn: str,
) -> None:
    """Create the recurring schedules as the CDK app deploys them (`definition()`), each firing
    the function that creates its jobs."""
    for each in definitions:
        scheduler.create_schedule(
            Name=each.name,
            GroupName=group,
            Description=each.description,
            ScheduleExpression=each.expression,
            ScheduleExpressionTimezone=each.timezone,
            FlexibleTimeWindow={"Mode": "OFF"},
            State="ENABLED" if each.enabled else "DISABLED",
            Target={"Arn": function_arn, "RoleArn": role_arn, "Input": each.input},
        )
