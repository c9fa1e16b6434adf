"""Every function: arm64, Python 3.12+, active tracing, both layers, its own log group
with a retention, its own role, and the environment its settings model needs."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Capture, Match
from nudge import constants as C

pytestmark = pytest.mark.infra

FUNCTIONS = (C.FN_INGEST, C.FN_PROCESS, C.FN_CHECK, C.FN_API)

COMMON_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "LOG_LEVEL",
    C.ENV_TRIGGERS_PATH,
    "NUDGE_TEMPLATES_PATH",
    "NUDGE_CONFIG_PATH",
    C.ENV_PROFILES_TABLE,
    C.ENV_KEYS_TABLE,
}
SCHEDULER_ENV = {
    C.ENV_SCHEDULE_GROUP,
    C.ENV_SCHEDULER_ROLE_ARN,
    C.ENV_CHECK_FUNCTION_ARN,
    C.ENV_SCHEDULER_DLQ_ARN,
}
EXPECTED_ENV = {
    C.FN_INGEST: COMMON_ENV | {C.ENV_EVENTS_QUEUE_URL, C.ENV_RATE_LIMIT},
    C.FN_PROCESS: COMMON_ENV
    | SCHEDULER_ENV
    | {C.ENV_EVENTS_DLQ_URL, C.ENV_ACTIONS_QUEUE_URL, C.ENV_ACTIONS_DLQ_URL},
    C.FN_CHECK: COMMON_ENV | SCHEDULER_ENV | {C.ENV_ACTIONS_QUEUE_URL, C.ENV_ACTIONS_DLQ_URL},
    C.FN_API: COMMON_ENV | {C.ENV_SCHEDULE_GROUP},
}


def _settings_models():  # type: ignore[no-untyped-def]
    from nudge import settings

    # check re-arms schedules like process does and validates the same model
    return {
        C.FN_INGEST: settings.IngestSettings,
        C.FN_PROCESS: settings.ProcessSettings,
        C.FN_CHECK: settings.CheckSettings,
        C.FN_API: settings.ApiSettings,
    }


SETTINGS = _settings_models()


def _function(synth, name):  # type: ignore[no-untyped-def]
    fn = synth.stack.functions[name]
    return synth.template_json["Resources"][synth.logical_id(fn)]


def test_the_stack_has_exactly_the_four_functions(synth):
    synth.template.resource_count_is("AWS::Lambda::Function", len(FUNCTIONS))
    assert set(synth.stack.functions) == set(FUNCTIONS)


def test_every_function_is_arm64_python312_plus_traced_with_both_layers(synth):
    runtime = Capture()
    synth.template.all_resources_properties(
        "AWS::Lambda::Function",
        Match.object_like(
            {
                "Architectures": ["arm64"],
                "Runtime": runtime,
                "Handler": "handler.handler",
                "TracingConfig": {"Mode": "Active"},
                "Layers": Match.any_value(),
                "LoggingConfig": {"LogGroup": Match.any_value()},
            }
        ),
    )
    seen = [runtime.as_string()]
    while runtime.next():
        seen.append(runtime.as_string())
    for value in seen:
        major, minor = value.removeprefix("python").split(".")
        assert (int(major), int(minor)) >= (3, 12), value
    layers = sorted(
        [
            {"Ref": synth.logical_id(synth.stack.layers.deps)},
            {"Ref": synth.logical_id(synth.stack.layers.core)},
        ],
        key=str,
    )
    for name in FUNCTIONS:
        assert sorted(_function(synth, name)["Properties"]["Layers"], key=str) == layers


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_logs_to_its_own_group_kept_one_month(synth, name):
    fn = _function(synth, name)
    group_id = fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    group = synth.template_json["Resources"][group_id]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == 30


def test_every_function_has_a_role_of_its_own(synth):
    roles = [_function(synth, n)["Properties"]["Role"]["Fn::GetAtt"][0] for n in FUNCTIONS]
    assert len(set(roles)) == len(FUNCTIONS)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_gets_the_environment_its_settings_need(synth, name):
    # given the settings model the handler validates at cold start
    model = SETTINGS[name]
    env = _function(synth, name)["Properties"]["Environment"]["Variables"]
    required = {f.alias for f in model.model_fields.values() if f.is_required()}
    assert required <= set(env), required - set(env)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_gets_exactly_the_environment_we_decided(synth, name):
    env = _function(synth, name)["Properties"]["Environment"]["Variables"]
    assert set(env) == EXPECTED_ENV[name]
    assert env["POWERTOOLS_SERVICE_NAME"] == C.SERVICE
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == C.METRICS_NAMESPACE
    assert env[C.ENV_TRIGGERS_PATH] == "/opt/nudge-config/triggers"
    assert env["NUDGE_TEMPLATES_PATH"] == "/opt/nudge-config/templates"
    assert env["NUDGE_CONFIG_PATH"] == "/opt/nudge-config/config"


def test_check_function_arn_given_to_functions_names_the_check_function(synth):
    check = _function(synth, C.FN_CHECK)
    name = check["Properties"]["FunctionName"]
    for fn_name in (C.FN_PROCESS, C.FN_CHECK):
        arn = _function(synth, fn_name)["Properties"]["Environment"]["Variables"][
            C.ENV_CHECK_FUNCTION_ARN
        ]
        parts = arn["Fn::Join"][1]
        assert parts[-1] == f":function:{name}"
        assert {"Ref": "AWS::Region"} in parts and {"Ref": "AWS::AccountId"} in parts


def test_ingest_rate_limit_defaults_to_the_constant(synth):
    env = _function(synth, C.FN_INGEST)["Properties"]["Environment"]["Variables"]
    assert env[C.ENV_RATE_LIMIT] == str(C.DEFAULT_RATE_LIMIT_PER_SECOND)
