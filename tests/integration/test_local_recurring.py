"""Local mode's recurring schedules (the train function's): provisioned as on AWS, fired
at their occurrences, the ones passed with nothing else due collapsed into one run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from nudge import constants as C
from nudge.local.emulation import Resources
from nudge.local.schedules import RecurringSchedules, parse_rate

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_rate_expressions_are_read_as_scheduler_writes_them() -> None:
    assert parse_rate("rate(1 hour)") == timedelta(hours=1)
    assert parse_rate("rate(15 minutes)") == timedelta(minutes=15)
    assert parse_rate("rate(2 days)") == timedelta(days=2)
    for bad in ("rate(0 hours)", "rate(1 week)", "cron(0 * * * ? *)", "hourly"):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_the_train_schedule_is_provisioned_in_its_own_group(aws: Resources) -> None:
    assert aws.schedule_groups == [C.SCHEDULE_GROUP, C.TRAIN_SCHEDULE_GROUP]
    got = boto3.client("scheduler").get_schedule(
        Name=C.TRAIN_SCHEDULE_NAME, GroupName=C.TRAIN_SCHEDULE_GROUP
    )
    assert got["ScheduleExpression"] == C.DEFAULT_TRAIN_SCHEDULE
    assert got["Target"]["Arn"] == aws.train_function_arn


def test_occurrences_passed_together_run_once_at_the_last_of_them(aws: Resources) -> None:
    recurring = RecurringSchedules(None, C.TRAIN_SCHEDULE_GROUP, started=T0)
    assert recurring.latest_due(T0 + timedelta(minutes=59)) is None
    due = recurring.latest_due(T0 + timedelta(hours=3, minutes=30))
    assert due is not None and due[0] == T0 + timedelta(hours=3) and due[1] == C.TRAIN_SCHEDULE_NAME
    recurring.fired(due[1], due[0])
    assert recurring.latest_due(T0 + timedelta(hours=3, minutes=59)) is None
    again = recurring.latest_due(T0 + timedelta(hours=4))
    assert again is not None and again[0] == T0 + timedelta(hours=4)
