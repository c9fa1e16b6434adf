"""Trigger timers as wake-ups: the wake-up index, swept every minute by one recurring
schedule (docs/decisions.md D49); and the one-time schedules of deferred deliveries.

Every timer is written to the wake-up index (`timers` table, one item per user, trigger
and key, in the bucket of the minute it falls due — rounded up, so never early). The
stack's one recurring schedule (C.WAKE_UP_SWEEP_SCHEDULE, `cron(* * * * ? *)`) invokes
the check function at second 0 of every minute with the minute it was meant for; the
check function fans that bucket's timers out to their users' FIFO groups on the events
queue, where the process function re-checks each against current state.

So arming a timer makes no Scheduler call at all: the index writes ride one
BatchWriteItem per SQS batch, and Scheduler's cost is a fixed 1,440 invocations a day
whatever the traffic. A bucket about to be swept (within WAKE_UP_MIN_LEAD_SECONDS) takes
no new timers: they go to the next one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from nudge import constants as C
from nudge.adapters.aws import client
from nudge.adapters.tables import TimerRow, bind_table
from nudge.domain.clock import Clock, from_ms, to_ms
from nudge.domain.messages import TimerItem
from nudge.domain.triggers.contract import Timer
from nudge.domain.wakeups import BUCKET_FORMAT, Filing, bucket_of, file_timers

if TYPE_CHECKING:
    from mypy_boto3_scheduler.type_defs import RetryPolicyTypeDef, TargetTypeDef

RETRY_POLICY: RetryPolicyTypeDef = {
    "MaximumRetryAttempts": C.SCHEDULE_RETRY_ATTEMPTS,
    "MaximumEventAgeInSeconds": C.SCHEDULE_MAX_EVENT_AGE_S,
}


def at_expression(due: datetime) -> str:
    due = due.astimezone(UTC)
    if due.microsecond:
        due = due.replace(microsecond=0) + timedelta(seconds=1)
    return f"at({due:%Y-%m-%dT%H:%M:%S})"


def parse_at(expression: str) -> datetime:
    inner = expression.strip()[3:-1]
    return datetime.strptime(inner, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


def create_one_time_schedule(
    *,
    name: str,
    group: str,
    at: datetime,
    target_arn: str,
    role_arn: str,
    payload: str,
    dlq_arn: str,
    message_group: str | None = None,
) -> bool:
    """The one-time schedules nudge makes (a deferred action): `at()`
    in UTC, no flexible window, deleted once it has run, the target retried by
    RETRY_POLICY and then dead-lettered to `dlq_arn`; `message_group` for a FIFO queue
    target. False when a schedule of that name exists already (made by an earlier or a
    concurrent call: the names are deterministic, so it is the same one)."""
    target: TargetTypeDef = {
        "Arn": target_arn,
        "RoleArn": role_arn,
        "Input": payload,
        "RetryPolicy": RETRY_POLICY,
        "DeadLetterConfig": {"Arn": dlq_arn},
    }
    if message_group is not None:
        target["SqsParameters"] = {"MessageGroupId": message_group}
    try:
        client("scheduler").create_schedule(
            Name=name,
            GroupName=group,
            ScheduleExpression=at_expression(at),
            ScheduleExpressionTimezone="UTC",
            FlexibleTimeWindow={"Mode": "OFF"},
            ActionAfterCompletion="DELETE",
            State="ENABLED",
            Target=target,
        )
    except ClientError as err:
        if err.response["Error"]["Code"] != "ConflictException":
            raise
        return False
    return True


MAX_REF_BYTES = 1024  # DynamoDB's limit for a sort key


def ref_of(user_id: str, trigger_id: str, key: str | None) -> str:
    """The wake-up's sort key: one per (user, trigger, key) in a bucket. Readable JSON
    while it fits the sort key's 1,024 bytes (JSON's ASCII escapes make a non-ASCII id or
    key up to 3 times its UTF-8 size), else a digest of it: the item's own attributes
    carry the user, trigger and key either way."""
    ref = json.dumps([user_id, trigger_id, key], separators=(",", ":"))
    if len(ref) <= MAX_REF_BYTES:  # ASCII: characters are bytes
        return ref
    return "#" + hashlib.blake2b(ref.encode(), digest_size=16).hexdigest()


# buckets tried per timer when erasing: the deadline's minute and those the arming lead
# (C.WAKE_UP_MIN_LEAD_SECONDS) can push it to
DISARM_BUCKETS = 3


class WakeUps:
    """Arms the engine's timers in the wake-up index. Disarming is free: a stale timer is
    re-checked against the user's state when it comes due and changes nothing."""

    def __init__(self, *, table: str | None = None, clock: Clock | None = None) -> None:
        """`table`: the timers table of the function's settings (None: the environment's);
        `clock`: read when a write returns, to file again the timers it filed too late
        for their bucket's sweep (nudge.domain.wakeups.file_timers; the process function
        passes its clock; None: not checked, for callers whose `now` is no clock's)."""
        bind_table(C.TIMERS, table)
        self._clock = clock

    def arm(self, user_id: str, timers: Iterable[Timer], *, now: datetime) -> None:
        self.arm_many([(user_id, t) for t in timers], now=now)

    def arm_many(self, timers: Iterable[tuple[str, Timer]], *, now: datetime) -> int:
        """Files (user, timer) pairs of any users: BatchWriteItem in chunks of 25. No
        schedule to make: the sweep reads every minute's bucket. Returns how many were
        filed again, their first write having returned too late for their bucket."""
        return file_timers(timers, now=now, write=self._write, clock=self._clock)

    @staticmethod
    def _write(filings: Sequence[Filing]) -> None:
        if not filings:
            return
        with TimerRow.batch_write() as batch:
            for user_id, timer, bucket in filings:
                batch.save(
                    TimerRow(
                        bucket.strftime(BUCKET_FORMAT),
                        ref_of(user_id, timer.trigger_id, timer.key),
                        user_id=user_id,
                        trigger_id=timer.trigger_id,
                        key=timer.key,
                        due=to_ms(timer.due),
                        expires_at=bucket + timedelta(days=C.WAKE_UP_INDEX_TTL_DAYS),
                    )
                )

    def disarm(self, user_id: str, timers: Iterable[tuple[str, str | None, int]]) -> int:
        """Deletes a user's wake-up index entries (erase): for each (trigger, key, due ms),
        the minute buckets a timer of that deadline can have been filed in (its minute
        and the few after it, where the arming lead pushes it). An entry missed here
        finds a tombstone when it fires and changes nothing. Returns the deletes made
        (existing or not)."""
        keys: set[tuple[str, str]] = set()
        for trigger_id, key, due in timers:
            start = bucket_of(from_ms(due), from_ms(due) - timedelta(days=1))
            for minute in range(DISARM_BUCKETS):
                bucket = (start + timedelta(minutes=minute)).strftime(BUCKET_FORMAT)
                keys.add((bucket, ref_of(user_id, trigger_id, key)))
        rows = [TimerRow(bucket, ref) for bucket, ref in sorted(keys)]
        with TimerRow.batch_write() as batch:
            for row in rows:
                batch.delete(row)
        return len(rows)


class DynamoDueTimers:
    """Reads the wake-up index for the check function: a bucket's timers, with their
    users. `table`: the timers table of the function's settings (None: the environment's)."""

    def __init__(self, *, table: str | None = None) -> None:
        bind_table(C.TIMERS, table)

    def due(self, bucket: str) -> list[tuple[str, TimerItem]]:
        return [
            (r.user_id, TimerItem(trigger_id=r.trigger_id, key=r.key, due=int(r.due)))
            for r in TimerRow.query(bucket, consistent_read=True)
        ]
