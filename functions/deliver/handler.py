"""deliver: SQS FIFO "actions" → fatigue guard → render → send (SES / SNS / in-app) → log.

Records are parsed with Powertools' FIFO batch processor into ActionMessages
(nudge.domain.messages.parse_action: a record of an unknown version, or no action at
all, goes to the actions DLQ at once with the reason); each user's actions are then
delivered in priority order by nudge.domain.delivery. A template error or a permanent
send failure moves that action to the actions DLQ with its reason; a transient failure
reports the user's remaining records so SQS redelivers them. Each record that goes to
the DLQ, moved at once or failing on its last allowed receive, is noted as a dead-letter
entry (nudge.batch.DeadLetterWatch, docs/decisions.md D40).

Then every outcome of the batch is archived (`Message Outcome`, nudge.domain.outcomes),
after the log writes: a failed archive write sends nothing again, it reports the batch's
records failed, and their redelivery finds each action decided (nothing sent twice) and
archives the same outcome events, whose deterministic ids the view keeps once (D33)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from nudge import constants as C
from nudge.adapters.archive import FirehoseArchive
from nudge.adapters.dead_letters import DynamoDeadLetterLog
from nudge.adapters.delivery import (
    DynamoDeliveryLog,
    DynamoInbox,
    DynamoSuppressions,
    SchedulerDeferrer,
    SecretsManagerKey,
    SesEmailSender,
    SnsPushSender,
    SnsSmsSender,
)
from nudge.adapters.devices import SnsDevices
from nudge.adapters.models import model_readers
from nudge.adapters.profiles import DynamoProfileStore
from nudge.adapters.queues import SqsDeadLetters
from nudge.batch import DeadLetters, DeadLetterWatch, read_fifo_batch
from nudge.constants import DELIVERIES, DIM_CHANNEL, DIM_STATUS
from nudge.domain import users
from nudge.domain.clock import Clock
from nudge.domain.dead_letters import DeadLetterLog
from nudge.domain.delivery import BatchResult, DeliveryPorts, deliver_batch, entry_of
from nudge.domain.errors import DependencyUnavailableError
from nudge.domain.fatigue import load_fatigue_config
from nudge.domain.messages import ActionMessage, parse_action
from nudge.domain.outcomes import outcome_event, outcome_lines
from nudge.domain.ports import ArchiveWriter
from nudge.domain.recommend import ItemModel
from nudge.domain.templates import TemplateStore
from nudge.domain.unsubscribe import unsubscribe_url
from nudge.observability import count_by, logger, metrics, tracer
from nudge.runtime import clock
from nudge.settings import DeliverSettings


@dataclass
class Deps:
    """What the deliver function talks to. `from_settings` wires the AWS adapters once
    per cold start; a test passes in-memory ones (tests/fakes.py) to `handler`."""

    ports: DeliveryPorts
    dead_letters: DeadLetters
    clock: Clock
    archive: ArchiveWriter | None = None  # where outcomes go (None: not archived)
    # where dead-letter entries are recorded (None: nowhere), and the queue's redrive
    # maxReceiveCount that makes a failure the last attempt (D40)
    dead_letter_log: DeadLetterLog | None = None
    max_receive_count: int = C.ACTIONS_MAX_RECEIVE_COUNT

    @classmethod
    def from_settings(cls, s: DeliverSettings) -> Deps:
        c = clock()  # the process-wide clock: local mode installs a settable one
        key = SecretsManagerKey(s.unsubscribe_secret_arn)
        profiles = DynamoProfileStore(table=s.profiles_table, clock=c)
        # the train function's catalog and item model (none before the first training)
        load_items: Callable[[], ItemModel | None] = no_items
        load_catalog: Callable[[], Mapping[str, Mapping[str, Any]] | None] = no_catalog
        if s.models_bucket:
            _, load_items, load_catalog = model_readers(
                s.models_bucket, cache_seconds=s.models_cache_seconds
            )

        def forget_device(user_id: str, endpoint_arn: str) -> None:
            SnsDevices(apns_arn="", fcm_arn="").delete(endpoint_arn)
            users.remove_device(profiles, user_id, endpoint_arn)

        ports = DeliveryPorts(
            profiles=profiles,
            log=DynamoDeliveryLog(table=s.deliveries_table),
            senders={
                "email": SesEmailSender(
                    sender=s.sender_email, configuration_set=s.ses_configuration_set
                ),
                "sms": SnsSmsSender(sms_type=s.sms_type),
                "push": SnsPushSender(),
                "inapp": DynamoInbox(table=s.inbox_table),
            },
            renderer=TemplateStore(Path(s.templates_path)),
            deferrer=SchedulerDeferrer(
                group=s.schedule_group,
                queue_arn=s.actions_queue_arn,
                role_arn=s.scheduler_role_arn,
                dlq_arn=s.scheduler_dlq_arn,
            ),
            suppressions=DynamoSuppressions(table=s.suppressions_table, secret=key.get),
            unsubscribe_url=lambda user, channel: unsubscribe_url(
                s.public_url, key.get(), user, channel
            ),
            fatigue=load_fatigue_config(Path(s.config_path) / "fatigue.yaml"),
            app_url=s.app_url,
            forget_device=forget_device,
            load_catalog=load_catalog,
            load_items=load_items,
        )
        return cls(
            ports=ports,
            dead_letters=SqsDeadLetters(s.actions_dlq_url),
            clock=c,
            archive=FirehoseArchive(s.archive_stream),
            dead_letter_log=DynamoDeadLetterLog(table=s.timers_table),
            max_receive_count=s.max_receive_count,
        )


def no_items() -> ItemModel | None:
    return None


def no_catalog() -> Mapping[str, Mapping[str, Any]] | None:
    return None  # no artifacts bucket configured: templates show what events carried


@cache
def deps() -> Deps:
    """The AWS adapters, built at cold start (local mode and tests clear the cache)."""
    return Deps.from_settings(DeliverSettings())


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
        queue=C.ACTIONS_QUEUE,
        max_receive_count=d.max_receive_count,
        now=d.clock.now(),
    )
    by_user, failures = read_fifo_batch(
        event, context, parse=parse_action, dead_letters=d.dead_letters, what="action", watch=watch
    )

    result = deliver_batch(
        {u: [a for _, a in items] for u, items in by_user.items()}, now=d.clock.now(), ports=d.ports
    )
    for action, reason in result.dead_lettered:
        logger.error(
            "action dead-lettered", extra={"action_id": action.action_id, "reason": reason}
        )
        d.dead_letters.send(action.to_json(), group_id=action.user_id, reason=reason)
        note_moved(watch, by_user, action, reason)
    done = {e.action_id for e in result.entries} | {a.action_id for a, _ in result.dead_lettered}
    done |= {a.action_id for a in result.dropped}
    if result.dropped:
        logger.info("actions of erased users dropped", extra={"actions": len(result.dropped)})
    for user_id, err in result.failed_users.items():
        logger.warning("delivery will be retried", extra={"user_id": user_id, "error": repr(err)})
        failures.extend(
            {"itemIdentifier": mid} for mid, a in by_user[user_id] if a.action_id not in done
        )
        watch.failed((mid for mid, _ in by_user[user_id]), err)
    for entry in result.entries:
        metrics.add_metric(f"Deliveries_{entry.status}", MetricUnit.Count, 1)
    if d.archive is not None and not archive_outcomes(d, result, by_user):
        # nothing is sent again: the redelivery finds each action decided and archives
        # its outcome once more (the same ids)
        failed = {f["itemIdentifier"] for f in failures}
        failures.extend(
            {"itemIdentifier": mid}
            for items in by_user.values()
            for mid, _ in items
            if mid not in failed
        )
        watch.failed(
            (mid for items in by_user.values() for mid, _ in items),
            DependencyUnavailableError("the batch's outcomes could not be archived"),
        )
    by: Counter[tuple[str, ...]] = Counter((e.channel, e.status) for e in result.entries)
    count_by(DELIVERIES, (DIM_CHANNEL, DIM_STATUS), by)
    watch.record(failures)  # what went, or goes on its last attempt, to the DLQ
    return {"batchItemFailures": failures}


def note_moved(
    watch: DeadLetterWatch,
    by_user: Mapping[str, list[tuple[str, ActionMessage]]],
    action: ActionMessage,
    reason: str,
) -> None:
    """The record of an action the function moved to the DLQ, for its dead-letter entry
    (the reason reads `<code>: <message>`, nudge.domain.delivery)."""
    for mid, a in by_user.get(action.user_id, []):
        if a.action_id == action.action_id:
            code, _, message = reason.partition(": ")
            watch.moved(mid, error_type=code, error=message or reason)
            return


def archive_outcomes(
    d: Deps, result: BatchResult, by_user: dict[str, list[tuple[str, ActionMessage]]]
) -> bool:
    """Archives the batch's outcomes (those decided now and those a redelivery found);
    False when the archive write failed."""
    assert d.archive is not None
    actions = {a.action_id: a for items in by_user.values() for _, a in items}
    entries = list(result.entries)
    for action, _ in result.dead_lettered:  # logged `failed` before they were parked
        found = entry_of(d.ports.log.entries(action.user_id), action.action_id)
        if found is not None:
            entries.append(found)
    now = d.clock.now()
    lines = outcome_lines(outcome_event(e, actions.get(e.action_id), now=now) for e in entries)
    if not lines:
        return True
    try:
        d.archive.write(lines)
    except Exception as err:  # the records come back; nothing is sent twice
        logger.warning(
            "outcomes not archived, the batch will be retried", extra={"error": repr(err)}
        )
        metrics.add_metric("OutcomesNotArchived", MetricUnit.Count, len(lines))
        return False
    metrics.add_metric("OutcomesArchived", MetricUnit.Count, len(lines))
    return True
