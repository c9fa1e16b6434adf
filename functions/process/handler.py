"""process: SQS FIFO "events" → fold into user state (DynamoDB) → trigger engine.

The queue carries the user's events (one message per user and request) and, from the
check function, the user's trigger timers that came due (nudge.domain.messages); both
are folded in the user's message group. Records are parsed
with Powertools' FIFO batch processor; a record that can never be parsed goes to the
dead-letter queue at once (it would otherwise block its user's message group); each
user's events and timers are then folded with at most one conditional write per user,
and a user whose fold fails reports all of its records as batch item failures. The
batch's events are archived (Firehose) in one call after the commits; a user whose
events could not be archived is reported failed too, and the retry archives them.
Each record that goes to the DLQ, moved at once or failing on its last allowed receive,
is noted as a dead-letter entry (nudge.batch.DeadLetterWatch, docs/decisions.md D40)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from nudge import constants as C
from nudge.adapters.archive import FirehoseArchive
from nudge.adapters.dead_letters import DynamoDeadLetterLog
from nudge.adapters.effects import TriggerEffects
from nudge.adapters.profiles import DynamoDedup, DynamoProfileStore
from nudge.adapters.queues import SqsActionQueue, SqsDeadLetters
from nudge.adapters.scheduler import WakeUps
from nudge.batch import DeadLetters, DeadLetterWatch, read_fifo_batch
from nudge.constants import DIM_TRIGGER, TRIGGER_FIRED
from nudge.domain.clock import Clock
from nudge.domain.dead_letters import DeadLetterLog
from nudge.domain.messages import parse_message
from nudge.domain.ports import ActionQueue, ArchiveWriter, ProfileStore, WakeUpIndex
from nudge.domain.processing import Decider, TimerDue, process_users
from nudge.domain.triggers.engine import Engine
from nudge.domain.triggers.loader import load_triggers
from nudge.observability import count_by, logger, metrics, tracer
from nudge.runtime import clock
from nudge.settings import ProcessSettings


@dataclass
class Deps:
    """What the process function talks to. `from_settings` wires the AWS adapters once
    per cold start; a test passes in-memory ones (tests/fakes.py) to `handler`."""

    store: ProfileStore
    dead_letters: DeadLetters
    engine: Decider
    actions: ActionQueue
    wakeups: WakeUpIndex
    archive: ArchiveWriter
    clock: Clock
    # where dead-letter entries are recorded (None: nowhere), and the queue's redrive
    # maxReceiveCount that makes a failure the last attempt (D40)
    dead_letter_log: DeadLetterLog | None = None
    max_receive_count: int = C.EVENTS_MAX_RECEIVE_COUNT

    @classmethod
    def from_settings(cls, s: ProcessSettings) -> Deps:
        c = clock()  # the process-wide clock: local mode installs a settable one
        return cls(
            store=DynamoProfileStore(
                table=s.profiles_table, clock=c, dedup=DynamoDedup(table=s.dedup_table)
            ),
            dead_letters=SqsDeadLetters(s.events_dlq_url),
            engine=Engine(load_triggers(s.triggers_path)),
            actions=SqsActionQueue(s.actions_queue_url),
            wakeups=WakeUps(table=s.timers_table, clock=c),
            archive=FirehoseArchive(s.archive_stream),
            clock=c,
            dead_letter_log=DynamoDeadLetterLog(table=s.timers_table),
            max_receive_count=s.max_receive_count,
        )


@cache
def deps() -> Deps:
    """The AWS adapters, built at cold start (local mode and tests clear the cache)."""
    return Deps.from_settings(ProcessSettings())


def _cold_start_deps() -> Deps:
    return deps()  # the module's deps(): handler's argument of that name hides it


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(
    event: dict[str, Any], context: LambdaContext, deps: Deps | None = None
) -> PartialItemFailureResponse:
    """`deps` (by keyword: Powertools' tracer passes keywords only) replaces the AWS
    adapters, as a unit test does."""
    d = deps if deps is not None else _cold_start_deps()
    watch = DeadLetterWatch(
        event,
        log=d.dead_letter_log,
        queue=C.EVENTS_QUEUE,
        max_receive_count=d.max_receive_count,
        now=d.clock.now(),
    )
    items, failures = read_fifo_batch(
        event,
        context,
        parse=parse_message,
        dead_letters=d.dead_letters,
        what="message",
        watch=watch,
    )
    events = {u: [ev for _, p in its for ev in p.events] for u, its in items.items()}
    timers = {
        u: [TimerDue(u, t.trigger_id, t.key) for _, p in its for t in p.timers]
        for u, its in items.items()
    }

    now = d.clock.now()
    effects = TriggerEffects(actions=d.actions, wakeups=d.wakeups, now=now)
    outcome = process_users(
        d.store,
        {u: evs for u, evs in events.items() if evs},
        now=now,
        engine=d.engine,
        effects=effects,
        timers_by_user={u: ts for u, ts in timers.items() if ts},
        archive=d.archive,
    )
    for user_id, err in outcome.failed_users.items():
        logger.error(
            "fold failed; the user's records will be retried",
            extra={"user_id": user_id, "error": repr(err)},
            exc_info=err,
        )
        failures.extend({"itemIdentifier": mid} for mid, _ in items.get(user_id, []))
        watch.failed((mid for mid, _ in items.get(user_id, [])), err)
    metrics.add_metric("EventsProcessed", MetricUnit.Count, outcome.fresh)
    metrics.add_metric("DuplicateEvents", MetricUnit.Count, outcome.duplicates)
    metrics.add_metric("EventsArchived", MetricUnit.Count, outcome.archived)
    metrics.add_metric("TimersChecked", MetricUnit.Count, sum(len(v) for v in timers.values()))
    metrics.add_metric("TriggersFired", MetricUnit.Count, effects.sent_actions)
    metrics.add_metric("TimersArmed", MetricUnit.Count, effects.armed)
    if effects.refiled:  # the batch took longer than the lead: see file_timers
        metrics.add_metric("TimersRefiled", MetricUnit.Count, effects.refiled)
        logger.warning(
            "timers filed too late for their bucket's sweep were filed again",
            extra={"refiled": effects.refiled},
        )
    count_by(TRIGGER_FIRED, (DIM_TRIGGER,), {(t,): n for t, n in effects.fired.items()})
    watch.record(failures)  # what went, or goes on its last attempt, to the DLQ
    return {"batchItemFailures": failures}
