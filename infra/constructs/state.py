"""User state: the DynamoDB tables, generated from the same definitions the code uses
(``nudge.adapters.tables.table_specs``), so infrastructure and code cannot drift."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct
from nudge import constants as C
from nudge.adapters.tables import KeySpec, TableSpec, table_specs

# What the process and check functions do to a profile: read it (one or a batch of users),
# write it back once per batch with a version condition, delete it when a user is erased.
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

_ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def _attribute(key: KeySpec) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_ATTRIBUTE_TYPES[key.type])


class State(Construct):
    """One on-demand table per ``TableSpec``: point-in-time recovery, encryption at rest
    with the AWS managed key, TTL where the spec has one, kept when the stack is deleted.

    ``tables`` maps the logical name (``C.PROFILES``, ``C.KEYS``) to the table;
    ``environment`` maps each table's env var to its name.
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
                # Profiles are the product's data and keys are what clients hold: a
                # `cdk destroy` must never take them along.
                removal_policy=cdk.RemovalPolicy.RETAIN,
            )
            self.tables[spec.logical] = table
            self.environment[spec.env_var] = table.table_name

    @property
    def profiles(self) -> dynamodb.Table:
        return self.tables[C.PROFILES]

    @property
    def keys(self) -> dynamodb.Table:
        return self.tables[C.KEYS]

    # Grants (table.grant scopes each to the table's ARN, with exactly these actions).

    def grant_key_lookup(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.keys.grant(grantee, *KEY_LOOKUP_ACTIONS)

    def grant_profile_read_write(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.profiles.grant(grantee, *PROFILE_READ_WRITE_ACTIONS)

    def grant_profile_manage(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read (one user, or all for reports), write, and erase profiles: the api."""
        return self.profiles.grant(grantee, *PROFILE_MANAGE_ACTIONS)
