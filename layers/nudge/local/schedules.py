"""Firing EventBridge Scheduler schedules in local mode.

moto stores schedules but never fires them. When the local clock moves, every schedule
of the trigger group that falls due on the way is fired in deadline order: the clock is
set to its time, its target gets the schedule's Input (what Scheduler delivers), and a
one-time schedule is deleted as ActionAfterCompletion=DELETE does. A target that keeps
failing is retried, then its payload goes to the scheduler dead-letter queue (the
target's DeadLetterConfig).

The wake-up sweep (`cron(* * * * ? *)`, docs/decisions.md D49) fires at every minute
the clock passes whose bucket of the wake-up index holds timers: the check function is
invoked with the sweep's Input, the scheduled time filled in as Scheduler does. The
minutes between, whose sweep would find an empty bucket and send nothing, are passed
over without an invocation: local mode looks at the index first (a Query per minute over
short moves, one Scan over long ones), so a clock moved 30 days on does not run the
check function 43,200 times.

The recurring schedules (`rate(N unit)`, the train function's group) fire too, and are
kept: occurrences are counted from the time local mode started. Consecutive occurrences
with no one-time schedule or sweep minute due between them run once, at the last of
them: a train run reads current state, so the earlier runs would leave nothing the last
one does not redo (a clock moved 30 days on runs training once, not 720 times)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import boto3

from nudge import constants as C
from nudge.adapters.scheduler import parse_at
from nudge.domain.wakeups import BUCKET_FORMAT, SCHEDULED_TIME_FORMAT
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
                if name == C.WAKE_UP_SWEEP_SCHEDULE:
                    continue  # recurring: WakeUpSweep fires it
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


# up to this many minutes ahead, the sweep looks at the buckets one Query each; beyond,
# one Scan of the index finds the next one with timers
PEEK_MINUTES = 90


def _minute(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(second=0, microsecond=0)


class WakeUpSweep:
    """The wake-up sweep's minutes in local mode: the last one swept (local mode's start
    at first; then the last fired, or the last the clock passed with nothing found), and
    the next one whose bucket holds timers."""

    def __init__(self, endpoint_url: str | None, timers_table: str, *, started: datetime) -> None:
        self.scheduler = boto3.client("scheduler", endpoint_url=endpoint_url, region_name=REGION)
        self.dynamodb = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=REGION)
        self.table = timers_table
        self.swept = _minute(started)

    def schedule(self) -> GetScheduleOutputTypeDef | None:
        """The sweep's definition, None when it is gone or disabled (nothing fires)."""
        try:
            full = self.scheduler.get_schedule(
                Name=C.WAKE_UP_SWEEP_SCHEDULE, GroupName=C.SCHEDULE_GROUP
            )
        except self.scheduler.exceptions.ResourceNotFoundException:
            return None
        return None if full.get("State") == "DISABLED" else full

    def next_due(self, limit: datetime) -> datetime | None:
        """The first minute after the last swept, up to `limit`, whose bucket holds
        timers. It only reads: the empty minutes stay unswept until the clock has passed
        them (passed), so a timer filed meanwhile in one of them (by events that arrive
        while the clock moves) is still found."""
        first, last = self.swept + timedelta(minutes=1), _minute(limit)
        if first > last:
            return None
        if last - first <= timedelta(minutes=PEEK_MINUTES):
            return next((m for m in _minutes(first, last) if self._holds(m)), None)
        return self._first_after(first, last)

    def fired(self, minute: datetime) -> None:
        """The sweep of `minute` ran: the minutes up to it are done."""
        self.swept = max(self.swept, minute)

    def passed(self, now: datetime) -> None:
        """The clock is at `now` with the queues settled and nothing left to sweep up to
        it: the minutes before it are done (a timer filed from now on is filed after
        them). A sweep disabled meanwhile does not catch them up once enabled again, as
        Scheduler does not run the occurrences of a disabled schedule."""
        self.swept = max(self.swept, _minute(now))

    def _holds(self, minute: datetime) -> bool:
        answer = self.dynamodb.query(
            TableName=self.table,
            KeyConditionExpression="#b = :b",
            ExpressionAttributeNames={"#b": "bucket"},
            ExpressionAttributeValues={":b": {"S": minute.strftime(BUCKET_FORMAT)}},
            Limit=1,
        )
        return bool(answer.get("Items"))

    def _first_after(self, first: datetime, last: datetime) -> datetime | None:
        found: str | None = None
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.table,
            FilterExpression="#b BETWEEN :first AND :last",
            ProjectionExpression="#b",
            ExpressionAttributeNames={"#b": "bucket"},
            ExpressionAttributeValues={
                ":first": {"S": first.strftime(BUCKET_FORMAT)},
                ":last": {"S": last.strftime(BUCKET_FORMAT)},
            },
        )
        for page in pages:
            for item in page.get("Items", []):
                bucket = item["bucket"]["S"]
                found = bucket if found is None or bucket < found else found
        if found is None:
            return None
        return datetime.strptime(found, BUCKET_FORMAT).replace(tzinfo=UTC)


def _minutes(first: datetime, last: datetime) -> Iterator[datetime]:
    m = first
    while m <= last:
        yield m
        m += timedelta(minutes=1)


def sweep_input(schedule: GetScheduleOutputTypeDef, minute: datetime) -> Any:
    """The sweep's Input as Scheduler hands it to the target: the scheduled time filled in."""
    text = schedule["Target"].get("Input") or "{}"
    filled = minute.astimezone(UTC).strftime(SCHEDULED_TIME_FORMAT)
    return json.loads(text.replace(C.SCHEDULED_TIME_ATTRIBUTE, filled))


def _next_sweep(
    local: LocalMode, limit: datetime
) -> tuple[datetime, GetScheduleOutputTypeDef] | None:
    """The wake-up sweep's next minute with timers up to `limit`, with the sweep's
    definition (None: no such minute, or the sweep is gone or disabled)."""
    sweep = local.wake_up_sweep()
    schedule = sweep.schedule()
    if schedule is None:
        return None
    minute = sweep.next_due(limit)
    return (minute, schedule) if minute is not None else None


def _fire_sweep(local: LocalMode, minute: datetime, schedule: GetScheduleOutputTypeDef) -> None:
    """The sweep of `minute`, as Scheduler runs it: the clock at that minute, the check
    function invoked with the Input filled in (retried, then dead-lettered with it)."""
    sweep = local.wake_up_sweep()
    if minute > local.clock.now():
        local.clock.set(minute)
    fn = local.functions[C.FN_CHECK]
    payload = sweep_input(schedule, minute)
    _run_target(
        local, C.WAKE_UP_SWEEP_SCHEDULE, schedule, lambda: fn.invoke(payload), payload=payload
    )
    sweep.fired(minute)
    local.settle()


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
        limit = min(target, due[0][0]) if due else target
        sweep = _next_sweep(local, limit)
        if _fire_recurring(local, sweep[0] if sweep else limit):
            fired += 1
            continue
        if sweep is not None:
            _fire_sweep(local, *sweep)
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
    function (a wake-up bucket named in its Input, as schedules made before the sweep)."""
    target = schedule["Target"]
    if target["Arn"].startswith("arn:aws:sqs:"):
        _send_to_queue(local, target, name)
    else:
        local.functions[C.FN_CHECK].invoke(_input(schedule))


def _run_target(
    local: LocalMode,
    name: str,
    schedule: GetScheduleOutputTypeDef,
    call: Callable[[], object],
    *,
    payload: Any = None,
) -> None:
    """Delivers the schedule to its target as Scheduler would: a failure is retried
    LOCAL_RETRIES times, then the payload goes to the scheduler dead-letter queue
    (`payload`: the Input as handed over, context attributes filled in; None: as stored)."""
    for attempt in range(LOCAL_RETRIES + 1):
        try:
            call()
            return
        except Exception as err:
            log.exception("schedule %s: target failed (attempt %d)", name, attempt + 1)
            if attempt == LOCAL_RETRIES:
                _dead_letter(local, schedule, repr(err), payload)


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


def _dead_letter(
    local: LocalMode, schedule: GetScheduleOutputTypeDef, reason: str, payload: Any = None
) -> None:
    assert local.resources is not None, "local mode is started"
    sqs = boto3.client("sqs", endpoint_url=local.resources.endpoint_url, region_name=REGION)
    body = json.dumps(payload) if payload is not None else schedule["Target"].get("Input")
    sqs.send_message(
        QueueUrl=local.resources.queues["nudge-scheduler-dlq"],
        MessageBody=body or "{}",
        MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1000]}},
    )
