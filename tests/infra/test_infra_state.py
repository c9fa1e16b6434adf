"""The DynamoDB tables are what the code's table_specs() say, and are safe to hold data."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match
from nudge import constants as C
from nudge.adapters.tables import table_specs

pytestmark = pytest.mark.infra


def _expected_keys(spec):  # type: ignore[no-untyped-def]
    schema = [{"AttributeName": spec.partition_key.name, "KeyType": "HASH"}]
    attrs = [{"AttributeName": spec.partition_key.name, "AttributeType": spec.partition_key.type}]
    if spec.sort_key:
        schema.append({"AttributeName": spec.sort_key.name, "KeyType": "RANGE"})
        attrs.append({"AttributeName": spec.sort_key.name, "AttributeType": spec.sort_key.type})
    return schema, attrs


def test_one_table_per_spec(synth):
    synth.template.resource_count_is("AWS::DynamoDB::Table", len(table_specs()))
    assert set(synth.stack.state.tables) == {s.logical for s in table_specs()}
    assert len(table_specs()) == 7


@pytest.mark.parametrize("spec", table_specs(), ids=lambda s: s.logical)
def test_table_key_schema_and_ttl_come_from_table_specs(synth, spec):
    # given the table the stack made for this spec
    table = synth.stack.state.tables[spec.logical]
    props = synth.template_json["Resources"][synth.logical_id(table)]["Properties"]
    schema, attrs = _expected_keys(spec)

    # then its keys and TTL are exactly the code's
    assert props["KeySchema"] == schema
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(attrs, key=str)
    if spec.ttl_attribute:
        assert props["TimeToLiveSpecification"] == {
            "AttributeName": spec.ttl_attribute,
            "Enabled": True,
        }
    else:
        assert "TimeToLiveSpecification" not in props


def test_every_table_is_on_demand_with_pitr_and_encryption(synth):
    synth.template.all_resources_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    )


def test_profiles_survive_stack_deletion(synth):
    profiles = synth.template_json["Resources"][synth.logical_id(synth.stack.state.profiles)]
    assert profiles["DeletionPolicy"] == "Retain"
    assert profiles["UpdateReplacePolicy"] == "Retain"


def test_the_delivery_tables_exist_with_the_keys_the_code_uses(synth):
    specs = {s.logical: s for s in table_specs()}
    keys = {
        C.DELIVERIES: ("user_id", "action_id"),
        C.INBOX: ("user_id", "message_id"),
        C.SUPPRESSIONS: ("address", None),
    }
    for logical, (pk, sk) in keys.items():
        spec = specs[logical]
        assert spec.partition_key.name == pk
        assert (spec.sort_key.name if spec.sort_key else None) == sk
        assert logical in synth.stack.state.tables
    # the delivery log and the inbox expire (bounded per user); suppressions never do
    assert specs[C.DELIVERIES].ttl_attribute == "expires_at"
    assert specs[C.INBOX].ttl_attribute == "expires_at"
    assert specs[C.SUPPRESSIONS].ttl_attribute is None


def test_the_timers_table_exists_with_the_keys_and_ttl_of_table_specs(synth):
    # given the wake-up index as the code defines it
    (spec,) = [s for s in table_specs() if s.logical == C.TIMERS]
    assert (spec.partition_key.name, spec.partition_key.type) == ("bucket", "S")
    assert spec.sort_key is not None
    assert (spec.sort_key.name, spec.sort_key.type) == ("ref", "S")
    assert spec.ttl_attribute == "expires_at"
    assert spec.env_var == C.ENV_TIMERS_TABLE

    # then the stack's timers table has exactly those keys and that TTL
    table = synth.stack.state.timers
    assert table is synth.stack.state.tables[C.TIMERS]
    props = synth.template_json["Resources"][synth.logical_id(table)]["Properties"]
    schema, attrs = _expected_keys(spec)
    assert props["KeySchema"] == schema
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(attrs, key=str)
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}


def test_the_timers_table_goes_with_the_stack(synth):
    # pending wake-ups (2 days at most), useless without the schedule group's schedules,
    # which are deleted with the stack too
    table = synth.template_json["Resources"][synth.logical_id(synth.stack.state.timers)]
    assert table["DeletionPolicy"] == "Delete"
    assert table["UpdateReplacePolicy"] == "Delete"
    group = synth.template_json["Resources"][synth.logical_id(synth.stack.scheduling.group)]
    assert group["DeletionPolicy"] == "Delete"


def test_the_dedup_table_holds_fingerprints_per_user_for_the_window_and_goes_with_the_stack(
    synth,
):
    # given the dedup store as the code defines it (D42): a user's fingerprints, TTL'd
    (spec,) = [s for s in table_specs() if s.logical == C.DEDUP]
    assert (spec.partition_key.name, spec.partition_key.type) == ("user_id", "S")
    assert spec.sort_key is not None
    assert (spec.sort_key.name, spec.sort_key.type) == ("fp", "S")
    assert spec.ttl_attribute == "expires_at"
    # then the stack's table has them, and, holding only the last 25 hours, is not kept
    table = synth.stack.state.dedup
    resource = synth.template_json["Resources"][synth.logical_id(table)]
    schema, _ = _expected_keys(spec)
    assert resource["Properties"]["KeySchema"] == schema
    assert resource["DeletionPolicy"] == "Delete"
    assert resource["UpdateReplacePolicy"] == "Delete"


@pytest.mark.parametrize(
    "logical", sorted({s.logical for s in table_specs()} - {C.TIMERS, C.DEDUP})
)
def test_every_other_table_survives_stack_deletion(synth, logical):
    table = synth.stack.state.tables[logical]
    props = synth.template_json["Resources"][synth.logical_id(table)]
    assert props["DeletionPolicy"] == "Retain"
    assert props["UpdateReplacePolicy"] == "Retain"


def test_outputs_name_the_timers_table(synth):
    outputs = synth.template_json["Outputs"]
    assert outputs["TimersTableName"]["Value"] == {
        "Ref": synth.logical_id(synth.stack.state.timers)
    }


@pytest.mark.parametrize("logical", [C.DELIVERIES, C.SUPPRESSIONS])
def test_delivery_state_survives_stack_deletion(synth, logical):
    # the log is the at-most-once claim, the suppressions keep bounced addresses unmailed
    table = synth.stack.state.tables[logical]
    props = synth.template_json["Resources"][synth.logical_id(table)]
    assert props["DeletionPolicy"] == "Retain"


def test_functions_get_table_names_from_the_spec_env_vars(synth):
    for spec in table_specs():
        table = synth.stack.state.tables[spec.logical]
        synth.template.has_resource_properties(
            "AWS::Lambda::Function",
            {
                "Environment": {
                    "Variables": Match.object_like({spec.env_var: {"Ref": synth.logical_id(table)}})
                }
            },
        )
