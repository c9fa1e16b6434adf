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


def test_functions_get_table_names_from_the_spec_env_vars(synth):
    for spec in table_specs():
        table = synth.stack.state.tables[spec.logical]
        assert spec.env_var in (C.ENV_PROFILES_TABLE, C.ENV_KEYS_TABLE)
        synth.template.has_resource_properties(
            "AWS::Lambda::Function",
            {
                "Environment": {
                    "Variables": Match.object_like({spec.env_var: {"Ref": synth.logical_id(table)}})
                }
            },
        )
