"""User state: the DynamoDB tables, generated from the same definitions the code uses
(``nudge.adapters.tables.table_specs``), so infrastructure and code cannot drift."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct
from nudge import constants as C
from nudge.adapters.tables import KeySpec, TableSpec, dead_letter_partition, table_specs

# What the process function does to a profile: read it (one or a batch of users), write
# it back once per batch with a version condition, delete it when a user is erased.
PROFILE_READ_WRITE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)
# The api function also queries and scans (reports over all users).
PROFILE_MANAGE_ACTIONS = (
    *PROFILE_READ_WRITE_ACTIONS,
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:ConditionCheckItem",
)
KEY_LOOKUP_ACTIONS = ("dynamodb:GetItem",)  # keys are looked up by digest, never listed
# the api function: /v1/keys creates (PutItem), lists (Scan: a handful of rows) and
# revokes (DeleteItem) keys, and reads the created one back
KEY_MANAGE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Scan",
    "dynamodb:DeleteItem",
)

# deliver reads a user's profile and writes it back when it forgets a disabled device.
PROFILE_DELIVER_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem")
# deliver reads the user's log (caps, cooldowns), claims an action with a conditional put
# and releases a claim whose send failed before it left.
DELIVERY_LOG_ACTIONS = (
    "dynamodb:Query",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
)
DELIVERY_LOG_READ_ACTIONS = ("dynamodb:Query",)  # GET /v1/users/{id}/deliveries
# feedback: SES's event about an email turns its `unconfirmed` entry `sent` (a conditional put)
DELIVERY_CONFIRM_ACTIONS = ("dynamodb:Query", "dynamodb:PutItem")
# the in-app channel: a conditional put, and a read of the message an attempt that died
# may have written (a stale claim's reconciliation)
INBOX_WRITE_ACTIONS = ("dynamodb:PutItem", "dynamodb:GetItem")
# GET /v1/users/{id}/messages and POST .../messages/{mid}/read
INBOX_READ_ACTIONS = ("dynamodb:Query", "dynamodb:GetItem", "dynamodb:UpdateItem")
# one address at a time, in its plain and its hashed form (an erased user's: one BatchGetItem)
SUPPRESSION_CHECK_ACTIONS = ("dynamodb:GetItem", "dynamodb:BatchGetItem")
SUPPRESSION_WRITE_ACTIONS = ("dynamodb:PutItem",)  # SES bounce and complaint feedback
# The wake-up index: process files each timer under its minute bucket (one BatchWriteItem
# per SQS batch); check Queries the bucket that came due. Neither deletes: TTL does.
TIMER_WRITE_ACTIONS = ("dynamodb:BatchWriteItem", "dynamodb:PutItem")
TIMER_QUERY_ACTIONS = ("dynamodb:Query",)
# The dedup store (docs/decisions.md D42): process writes the fingerprints a heavy user's
# profile moves out (BatchWriteItem) and looks a fold's up (BatchGetItem); TTL deletes.
DEDUP_ACTIONS = ("dynamodb:BatchGetItem", "dynamodb:BatchWriteItem")
# Dead-letter entries (D40): an item type of the timers table, one partition per queue.
# deliver writes its queue's partition only (process may write the whole table already,
# for the wake-up index); the api queries the two partitions, nothing else of the table.
DEAD_LETTER_WRITE_ACTIONS = ("dynamodb:BatchWriteItem",)
DEAD_LETTER_READ_ACTIONS = ("dynamodb:Query",)
# DELETE /v1/users/{id} (the api): the user's rows of the inbox and the delivery log
# (Query, then BatchWriteItem deletes), the wake-up index entries of their armed timers
# (BatchWriteItem deletes), their suppressed addresses rewritten as keyed hashes
# (and the dedup store's fingerprints of each id, the same way)
ERASE_USER_ROWS_ACTIONS = ("dynamodb:Query", "dynamodb:BatchWriteItem")
ERASE_TIMER_ACTIONS = ("dynamodb:BatchWriteItem",)
ERASE_SUPPRESSION_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem")

# Tables kept when the stack is deleted (or a table replaced): all but the wake-up index.
# Profiles are the product's data, keys are what clients hold, the delivery log and the
# suppression list are what keeps the product from mailing twice or mailing a bounced
# address: a `cdk destroy` must never take them along. The timers table only holds the
# wake-ups of the next WAKE_UP_INDEX_TTL_DAYS, each meaningful only with its bucket's
# schedule, which lives in the schedule group (itself RemovalPolicy.DESTROY): kept
# without them it would be an orphan nobody reads, so it goes with the stack.
# The dedup store likewise holds only the last 25 hours' fingerprints of heavy users.
_REMOVAL_POLICIES = {C.TIMERS: cdk.RemovalPolicy.DESTROY, C.DEDUP: cdk.RemovalPolicy.DESTROY}
_DEFAULT_REMOVAL_POLICY = cdk.RemovalPolicy.RETAIN

_ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def _attribute(key: KeySpec) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_ATTRIBUTE_TYPES[key.type])


class State(Construct):
    """One on-demand table per ``TableSpec``: point-in-time recovery, encryption at rest
    with the AWS managed key, TTL where the spec has one, kept when the stack is deleted
    (but for the timers table, see ``_REMOVAL_POLICIES``).

    ``tables`` maps the logical name (``C.PROFILES``, ``C.KEYS``, ...) to the table;
    ``environment`` maps each table's env var to its name; ``environment_for`` gives a
    function the names of the tables it is granted, and no others.
    """

    def __init__(
        self, scope: Construct, id: str, *, specs: Sequence[TableSpec] | None = None
    ) -> None:
        super().__init__(scope, id)
        self.specs = list(specs if specs is not None else table_specs())
        self.tables: dict[str, dynamodb.Table] = {}
        self.environment: dict[str, str] = {}
        for spec in self.specs:
            table = dynamodb.Table(
                self,
                spec.logical.capitalize(),
                partition_key=_attribute(spec.partition_key),
                sort_key=_attribute(spec.sort_key) if spec.sort_key else None,
                time_to_live_attribute=spec.ttl_attribute,
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                encryption=dynamodb.TableEncryption.AWS_MANAGED,
                removal_policy=_REMOVAL_POLICIES.get(spec.logical, _DEFAULT_REMOVAL_POLICY),
            )
            self.tables[spec.logical] = table
            self.environment[spec.env_var] = table.table_name

    @property
    def profiles(self) -> dynamodb.Table:
        return self.tables[C.PROFILES]

    @property
    def keys(self) -> dynamodb.Table:
        return self.tables[C.KEYS]

    @property
    def deliveries(self) -> dynamodb.Table:
        return self.tables[C.DELIVERIES]

    @property
    def inbox(self) -> dynamodb.Table:
        return self.tables[C.INBOX]

    @property
    def suppressions(self) -> dynamodb.Table:
        return self.tables[C.SUPPRESSIONS]

    @property
    def timers(self) -> dynamodb.Table:
        return self.tables[C.TIMERS]

    @property
    def dedup(self) -> dynamodb.Table:
        return self.tables[C.DEDUP]

    def environment_for(self, *logicals: str) -> dict[str, str]:
        """The env vars naming these tables (a function is told of what it may use)."""
        names = {spec.logical: spec.env_var for spec in self.specs}
        return {names[logical]: self.tables[logical].table_name for logical in logicals}

    # Grants (table.grant scopes each to the table's ARN, with exactly these actions).

    def grant_key_lookup(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.keys.grant(grantee, *KEY_LOOKUP_ACTIONS)

    def grant_key_manage(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.keys.grant(grantee, *KEY_MANAGE_ACTIONS)

    def grant_profile_read_write(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.profiles.grant(grantee, *PROFILE_READ_WRITE_ACTIONS)

    def grant_profile_manage(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read (one user, or all for reports), write, and erase profiles: the api."""
        return self.profiles.grant(grantee, *PROFILE_MANAGE_ACTIONS)

    def grant_profile_deliver(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.profiles.grant(grantee, *PROFILE_DELIVER_ACTIONS)

    def grant_delivery_log(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.deliveries.grant(grantee, *DELIVERY_LOG_ACTIONS)

    def grant_delivery_log_read(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.deliveries.grant(grantee, *DELIVERY_LOG_READ_ACTIONS)

    def grant_delivery_confirm(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.deliveries.grant(grantee, *DELIVERY_CONFIRM_ACTIONS)

    def grant_inbox_write(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.inbox.grant(grantee, *INBOX_WRITE_ACTIONS)

    def grant_inbox_read(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.inbox.grant(grantee, *INBOX_READ_ACTIONS)

    def grant_suppression_check(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.suppressions.grant(grantee, *SUPPRESSION_CHECK_ACTIONS)

    def grant_suppression_write(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.suppressions.grant(grantee, *SUPPRESSION_WRITE_ACTIONS)

    def grant_timer_write(self, grantee: iam.IGrantable) -> iam.Grant:
        """File timers in the wake-up index (process)."""
        return self.timers.grant(grantee, *TIMER_WRITE_ACTIONS)

    def grant_erase(self, grantee: iam.IGrantable) -> None:
        """What DELETE /v1/users/{id} needs beyond the api's reads (docs/erase.md)."""
        self.inbox.grant(grantee, *ERASE_USER_ROWS_ACTIONS)
        self.deliveries.grant(grantee, *ERASE_USER_ROWS_ACTIONS)
        self.timers.grant(grantee, *ERASE_TIMER_ACTIONS)
        self.suppressions.grant(grantee, *ERASE_SUPPRESSION_ACTIONS)
        self.dedup.grant(grantee, *ERASE_USER_ROWS_ACTIONS)

    def grant_dedup(self, grantee: iam.IGrantable) -> iam.Grant:
        """Move fingerprints out of heavy users' profiles and look them up (process)."""
        return self.dedup.grant(grantee, *DEDUP_ACTIONS)

    def _dead_letters(
        self, grantee: iam.IGrantable, actions: Sequence[str], queues: Sequence[str]
    ) -> iam.Grant:
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(actions),
            resource_arns=[self.timers.table_arn],
            conditions={
                "ForAllValues:StringEquals": {
                    "dynamodb:LeadingKeys": [dead_letter_partition(q) for q in queues]
                }
            },
        )

    def grant_dead_letter_write(self, grantee: iam.IGrantable, queue: str) -> iam.Grant:
        """Record dead-letter entries of that queue (and no other item of the table)."""
        return self._dead_letters(grantee, DEAD_LETTER_WRITE_ACTIONS, [queue])

    def grant_dead_letter_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """Query both queues' dead-letter entries (the api's report)."""
        return self._dead_letters(
            grantee, DEAD_LETTER_READ_ACTIONS, [C.EVENTS_QUEUE, C.ACTIONS_QUEUE]
        )

    def grant_timer_query(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read the timers of a bucket that came due (check)."""
        return self.timers.grant(grantee, *TIMER_QUERY_ACTIONS)
