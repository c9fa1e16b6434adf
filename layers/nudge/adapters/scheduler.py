"""Trigger timers as EventBridge Scheduler one-time schedules.

A timer becomes `at(yyyy-mm-ddThh:mm:ss)` in UTC in the trigger schedule group, with
the check function as target (retry policy + DLQ) and ActionAfterCompletion=DELETE.
Names are deterministic per (user, trigger, key), so re-arming updates the one schedule.
A schedule never fires early: its time is rounded up to the next second.

The check function re-arms while its own schedule is still completing, and a schedule
updated during its invocation could still be deleted by ActionAfterCompletion; so a
timer re-armed from the schedule that just fired takes the sibling name (`…-b`), and
disarming deletes both names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from nudge.adapters.aws import client

ALT_SUFFIX = "-b"
RETRY_POLICY = {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 86_400}


def sibling(name: str) -> str:
    return (
        name[: -len(ALT_SUFFIX)]
        if name.endswith(ALT_SUFFIX)
        else name[: 64 - len(ALT_SUFFIX)] + ALT_SUFFIX
    )


def at_expression(due: datetime) -> str:
    due = due.astimezone(UTC)
    if due.microsecond:
        due = due.replace(microsecond=0) + timedelta(seconds=1)
    return f"at({due:%Y-%m-%dT%H:%M:%S})"


def parse_at(expression: str) -> datetime:
    inner = expression.strip()[3:-1]
    return datetime.strptime(inner, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


class SchedulerTimers:
    def __init__(self, *, group: str, target_arn: str, role_arn: str, dlq_arn: str) -> None:
        self.group = group
        self.target_arn = target_arn
        self.role_arn = role_arn
        self.dlq_arn = dlq_arn

    def arm(self, user_id: str, timers: Iterable[Any], *, fired_name: str | None = None) -> None:
        scheduler = client("scheduler")
        for timer in timers:
            name = timer.name
            if fired_name is not None and name == fired_name:
                name = sibling(name)
            payload = {
                "user_id": user_id,
                "trigger_id": timer.trigger_id,
                "key": timer.key,
                "due": timer.due.astimezone(UTC).isoformat(),
                "schedule": name,
            }
            params: dict[str, Any] = {
                "Name": name,
                "GroupName": self.group,
                "ScheduleExpression": at_expression(timer.due),
                "ScheduleExpressionTimezone": "UTC",
                "FlexibleTimeWindow": {"Mode": "OFF"},
                "ActionAfterCompletion": "DELETE",
                "State": "ENABLED",
                "Target": {
                    "Arn": self.target_arn,
                    "RoleArn": self.role_arn,
                    "Input": json.dumps(payload, separators=(",", ":")),
                    "RetryPolicy": RETRY_POLICY,
                    "DeadLetterConfig": {"Arn": self.dlq_arn},
                },
            }
            try:
                scheduler.create_schedule(**params)
            except ClientError as err:
                if err.response["Error"]["Code"] != "ConflictException":
                    raise
                scheduler.update_schedule(**params)

    def disarm(self, names: Iterable[str]) -> None:
        scheduler = client("scheduler")
        for name in names:
            for candidate in (name, sibling(name)):
                try:
                    scheduler.delete_schedule(Name=candidate, GroupName=self.group)
                except ClientError as err:
                    if err.response["Error"]["Code"] != "ResourceNotFoundException":
                        raise
