"""Firing EventBridge Scheduler schedules in local mode.

moto stores schedules but never fires them. When the local clock moves, every schedule
of the trigger group that falls due on the way is fired in deadline order: the clock is
set to its time, the check function is invoked with the schedule's Input (what
Scheduler delivers to a Lambda target), and the schedule is deleted as
ActionAfterCompletion=DELETE does. A target that keeps failing is retried, then its
payload goes to the scheduler dead-letter queue (the target's DeadLetterConfig).

The recurring schedules (`rate(N unit)`, the train function's group) fire too, and are
kept: occurrences are counted from the time local mode started. Consecutive occurrences
with no one-time schedule due between them run once, at the last of them: a train run
reads current state, so the earlier runs would leave nothing the last one does not
redo (a clock moved 30 days on runs training once, not 720 times)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import boto3

from nudge import constants as C
from nudge.adapters.scheduler import parse_at
from nudge.local.emulation import REGION

if TYPE_CHECKING:
    from mypy_boto3_scheduler.type_defs import GetScheduleOutputTypeDef, TargetOutputTypeDef
    from mypy_boto3_sqs.type_defs import SendMessageRequestTypeDef

    from nudge.local.server import LocalMode

log = logging.getLogger("nudge.local")
LOCAL_RETRIES = 2


class ScheduleReader:
    """Lists the group's schedules, reading each one's definition once per modification."""

    def __init__(self, endpoint_url: str, group: str) -> None:
        self.client = boto3.client("scheduler", endpoint_url=endpoint_url, region_name=REGION)
        self.group = group
        # name -> (its LastModificationDate, its time, its definition)
        self._cache: dict[str, tuple[datetime | None, datetime, GetScheduleOutputTypeDef]] = {}

    def due_list(self) -> list[tuple[datetime, str, GetScheduleOutputTypeDef]]:
        out = []
        seen = set()
        for page in self.client.get_paginator("list_schedules").paginate(GroupName=self.group):
            for summary in page.get("Schedules", []):
                name = summary["Name"]
                seen.add(name)
                stamp = summary.get("LastModificationDate")
                hit = self._cache.get(name)
                if hit is None or hit[0] != stamp or stamp is None:
                    full = self.client.get_schedule(Name=name, GroupName=self.group)
                    hit = (stamp, parse_at(full["ScheduleExpression"]), full)
                    self._cache[name] = hit
                out.append((hit[1], name, hit[2]))
        for gone in set(self._cache) - seen:
            del self._cache[gone]
        out.sort(key=lambda x: (x[0], x[1]))
        return out

    def delete(self, name: str) -> None:
        with contextlib.suppress(self.client.exceptions.ResourceNotFoundException):
            self.client.delete_schedule(Name=name, GroupName=self.group)
        self._cache.pop(name, None)


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}


def parse_rate(expression: str) -> timedelta:
    """The period of a `rate(N unit)` expression (Scheduler's: minutes, hours, days)."""
    match = _RATE.match(expression.strip())
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"not a rate expression: {expression!r} (e.g. 'rate(1 hour)')")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")])


class RecurringSchedules:
    """The recurring schedules of the train function's group, with their last occurrence
    fired (local mode's start time at first)."""

    def __init__(self, endpoint_url: str | None, group: str, *, started: datetime) -> None:
        self.client = boto3.client("scheduler", endpoint_url=endpoint_url, region_name=REGION)
        self.group = group
        self.started = started
        self.last: dict[str, datetime] = {}  # name -> the last occurrence fired

    def latest_due(self, limit: datetime) -> tuple[datetime, str, GetScheduleOutputTypeDef] | None:
        """The earliest schedule with an occurrence not fired up to `limit`, at its latest
        such occurrence (the ones before it are collapsed into it)."""
        best = None
        for page in self.client.get_paginator("list_schedules").paginate(GroupName=self.group):
            for summary in page.get("Schedules", []):
                name = summary["Name"]
                full = self.client.get_schedule(Name=name, GroupName=self.group)
                if full.get("State") == "DISABLED":
                    continue
                period = parse_rate(full["ScheduleExpression"])
                last = self.last.get(name, self.started)
                n = int((limit - self.started) / period)
                occurrence = self.started + n * period
                if occurrence <= last:
                    continue
                first_unfired = last + period
                if best is None or (first_unfired, name) < (best[0], best[1]):
                    best = (first_unfired, name, occurrence, full)
        if best is None:
            return None
        return best[2], best[1], best[3]

    def fired(self, name: str, at: datetime) -> None:
        self.last[name] = at


def _fire_recurring(local: LocalMode, limit: datetime) -> bool:
    """Fires the recurring schedule due up to `limit`, if one is; True when it did."""
    assert local.resources is not None, "local mode is started"
    if local.config.train_schedule is None:
        return False  # none was made (the bench): no listing on every clock move
    recurring = local.recurring_schedules()
    due = recurring.latest_due(limit)
    if due is None:
        return False
    when, name, schedule = due
    if when > local.clock.now():
        local.clock.set(when)
    fn = local.functions[C.FN_TRAIN]
    _run_target(local, name, schedule, lambda: fn.invoke(_input(schedule)))
    recurring.fired(name, when)
    local.settle()
    return True


def fire_due(local: LocalMode, target: datetime) -> int:
    assert local.resources is not None, "local mode is started"
    reader = local._schedule_reader or ScheduleReader(
        local.resources.endpoint_url, C.SCHEDULE_GROUP
    )
    local._schedule_reader = reader
    fired = 0
    while True:
        due = [d for d in reader.due_list() if d[0] <= target]
        if _fire_recurring(local, min(target, due[0][0]) if due else target):
            fired += 1
            continue
        if not due:
            return fired
        when, name, schedule = due[0]
        if when > local.clock.now():
            local.clock.set(when)
        _run_target(local, name, schedule, partial(_to_target, local, name, schedule))
        reader.delete(name)
        fired += 1
        local.settle()


def _input(schedule: GetScheduleOutputTypeDef) -> Any:
    return json.loads(schedule["Target"].get("Input") or "{}")


def _to_target(local: LocalMode, name: str, schedule: GetScheduleOutputTypeDef) -> None:
    """A one-time schedule's target: an SQS queue (a deferred action) or the check
    function (a wake-up bucket)."""
    target = schedule["Target"]
    if target["Arn"].startswith("arn:aws:sqs:"):
        _send_to_queue(local, target, name)
    else:
        local.functions[C.FN_CHECK].invoke(_input(schedule))


def _run_target(
    local: LocalMode, name: str, schedule: GetScheduleOutputTypeDef, call: Callable[[], object]
) -> None:
    """Delivers the schedule to its target as Scheduler would: a failure is retried
    LOCAL_RETRIES times, then the payload goes to the scheduler dead-letter queue."""
    for attempt in range(LOCAL_RETRIES + 1):
        try:
            call()
            return
        except Exception as err:
            log.exception("schedule %s: target failed (attempt %d)", name, attempt + 1)
            if attempt == LOCAL_RETRIES:
                _dead_letter(local, schedule, repr(err))


def _send_to_queue(local: LocalMode, target: TargetOutputTypeDef, schedule_name: str) -> None:
    """An SQS target: Scheduler sends the Input as the message body (FIFO: with the
    target's MessageGroupId, deduplicated per schedule)."""
    assert local.resources is not None, "local mode is started"
    queue_name = target["Arn"].rsplit(":", 1)[1]
    sqs = boto3.client("sqs", endpoint_url=local.resources.endpoint_url, region_name=REGION)
    params: SendMessageRequestTypeDef = {
        "QueueUrl": local.resources.queues[queue_name],
        "MessageBody": target.get("Input") or "{}",
    }
    if queue_name.endswith(".fifo"):
        params["MessageGroupId"] = (target.get("SqsParameters") or {}).get(
            "MessageGroupId"
        ) or schedule_name
        params["MessageDeduplicationId"] = schedule_name
    sqs.send_message(**params)


def _dead_letter(local: LocalMode, schedule: GetScheduleOutputTypeDef, reason: str) -> None:
    assert local.resources is not None, "local mode is started"
    sqs = boto3.client("sqs", endpoint_url=local.resources.endpoint_url, region_name=REGION)
    sqs.send_message(
        QueueUrl=local.resources.queues["nudge-scheduler-dlq"],
        MessageBody=schedule["Target"].get("Input") or "{}",
        MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1000]}},
    )
