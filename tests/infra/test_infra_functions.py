"""Every function: arm64, Python 3.12+, active tracing, its layers, its own log group
with a retention, its own role, and the environment its settings model needs."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Capture, Match
from nudge import constants as C

pytestmark = pytest.mark.infra

FUNCTIONS = (
    C.FN_INGEST,
    C.FN_PROCESS,
    C.FN_CHECK,
    C.FN_API,
    C.FN_DELIVER,
    C.FN_FEEDBACK,
    C.FN_TRAIN,
)

# Every function: observability settings and where the definitions are. Table names,
# queues and the rest go only to the functions that use them.
COMMON_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "LOG_LEVEL",
    C.ENV_TRIGGERS_PATH,
    C.ENV_TEMPLATES_PATH,
    C.ENV_CONFIG_PATH,
}
ARCHIVE_READER_ENV = {
    C.ENV_ARCHIVE_BUCKET,
    C.ENV_QUERY_ENGINE,
    C.ENV_ATHENA_WORKGROUP,
    C.ENV_GLUE_DATABASE,
}
EXPECTED_ENV = {
    C.FN_INGEST: COMMON_ENV
    | {
        C.ENV_KEYS_TABLE,
        C.ENV_EVENTS_QUEUE_URL,
        C.ENV_RATE_LIMIT,
        C.ENV_TRACKING_PLAN_PATH,  # the tracking plan it checks events against
        C.ENV_ARCHIVE_STREAM,  # where it archives the plan's violations
    },
    C.FN_PROCESS: COMMON_ENV
    | {
        C.ENV_PROFILES_TABLE,
        C.ENV_DEDUP_TABLE,  # heavy users' fingerprints past the profile's bound (D42)
        C.ENV_TIMERS_TABLE,
        C.ENV_EVENTS_DLQ_URL,
        C.ENV_EVENTS_MAX_RECEIVE_COUNT,  # a failure on that receive is a dead letter
        C.ENV_ACTIONS_QUEUE_URL,
        C.ENV_ARCHIVE_STREAM,  # it archives every event it accepts
    },
    # a minute bucket came due: its timers (timers table) go onto the events queue
    C.FN_CHECK: COMMON_ENV | {C.ENV_TIMERS_TABLE, C.ENV_EVENTS_QUEUE_URL},
    C.FN_API: COMMON_ENV
    | {
        C.ENV_PROFILES_TABLE,
        C.ENV_KEYS_TABLE,
        C.ENV_DELIVERIES_TABLE,
        C.ENV_INBOX_TABLE,
        C.ENV_UNSUBSCRIBE_SECRET_ARN,
        C.ENV_OPENAPI_PATH,  # GET /openapi.json serves the file shipped in the core layer
        C.ENV_APNS_APPLICATION_ARN,
        C.ENV_FCM_APPLICATION_ARN,
        *ARCHIVE_READER_ENV,  # reports are SQL over the event archive
        C.ENV_ARCHIVE_STREAM,  # in-app reads and unsubscribes are archived
        C.ENV_TIMERS_TABLE,  # erase deletes the user's wake-up entries
        C.ENV_SUPPRESSIONS_TABLE,  # erase keeps their suppressed addresses as hashes
        C.ENV_DEDUP_TABLE,  # erase deletes their fingerprints
        C.ENV_MODELS_BUCKET,  # the recommendation model and the catalog
        C.ENV_EVENTS_DLQ_URL,  # the dead-letter queues' sizes (their entries: timers)
        C.ENV_ACTIONS_DLQ_URL,
    },
    C.FN_DELIVER: COMMON_ENV
    | {
        C.ENV_PROFILES_TABLE,
        C.ENV_DELIVERIES_TABLE,
        C.ENV_INBOX_TABLE,
        C.ENV_SUPPRESSIONS_TABLE,
        C.ENV_ACTIONS_QUEUE_ARN,
        C.ENV_ACTIONS_DLQ_URL,
        C.ENV_ACTIONS_MAX_RECEIVE_COUNT,  # a failure on that receive is a dead letter
        C.ENV_TIMERS_TABLE,  # where its dead-letter entries go
        C.ENV_SCHEDULE_GROUP,
        C.ENV_SCHEDULER_ROLE_ARN,
        C.ENV_SCHEDULER_DLQ_ARN,
        C.ENV_SENDER_EMAIL,
        C.ENV_SES_CONFIGURATION_SET,
        C.ENV_UNSUBSCRIBE_SECRET_ARN,
        C.ENV_PUBLIC_URL,
        C.ENV_APP_URL,
        C.ENV_SMS_TYPE,
        C.ENV_ARCHIVE_STREAM,  # each outcome is archived
        C.ENV_MODELS_BUCKET,  # the catalog the train function builds, for templates
    },
    C.FN_FEEDBACK: COMMON_ENV
    | {C.ENV_SUPPRESSIONS_TABLE, C.ENV_DELIVERIES_TABLE, C.ENV_ARCHIVE_STREAM},
    # reads profiles and the archive, writes artifacts under models/ of the same bucket
    C.FN_TRAIN: COMMON_ENV
    | {C.ENV_PROFILES_TABLE, C.ENV_ARCHIVE_BUCKET, C.ENV_MODELS_BUCKET, C.ENV_TRAIN_WINDOW_DAYS},
}


def _settings_models():  # type: ignore[no-untyped-def]
    from nudge import settings

    return {
        C.FN_INGEST: settings.IngestSettings,
        C.FN_PROCESS: settings.ProcessSettings,
        C.FN_CHECK: settings.CheckSettings,
        C.FN_API: settings.ApiSettings,
        C.FN_DELIVER: settings.DeliverSettings,
        C.FN_FEEDBACK: settings.FeedbackSettings,
        C.FN_TRAIN: settings.TrainSettings,
    }


SETTINGS = _settings_models()
# Variables a handler reads with a default: set by the stack all the same, so that the
# value deployed is the one decided here, not one buried in the code.
OPTIONAL_SET = {
    C.FN_INGEST: {C.ENV_RATE_LIMIT, C.ENV_TRACKING_PLAN_PATH, C.ENV_ARCHIVE_STREAM},
    C.FN_API: {
        C.ENV_APNS_APPLICATION_ARN,
        C.ENV_FCM_APPLICATION_ARN,
        C.ENV_TRIGGERS_PATH,  # experiments' definitions, for their reports
        *ARCHIVE_READER_ENV,
        C.ENV_ARCHIVE_STREAM,
        C.ENV_TIMERS_TABLE,
        C.ENV_SUPPRESSIONS_TABLE,
        C.ENV_DEDUP_TABLE,
        C.ENV_MODELS_BUCKET,
        C.ENV_EVENTS_DLQ_URL,
        C.ENV_ACTIONS_DLQ_URL,
    },
    C.FN_DELIVER: {C.ENV_APP_URL, C.ENV_SMS_TYPE, C.ENV_MODELS_BUCKET},
    C.FN_TRAIN: {C.ENV_TRAIN_WINDOW_DAYS},  # the train_window_days context key
}


def _function(synth, name):  # type: ignore[no-untyped-def]
    fn = synth.stack.functions[name]
    return synth.template_json["Resources"][synth.logical_id(fn)]


def test_the_stack_has_exactly_these_functions(synth):
    synth.template.resource_count_is("AWS::Lambda::Function", len(FUNCTIONS))
    assert set(synth.stack.functions) == set(FUNCTIONS)


def test_every_function_is_arm64_python312_plus_traced_with_its_two_layers(synth):
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
        if name == C.FN_TRAIN:
            continue
        assert sorted(_function(synth, name)["Properties"]["Layers"], key=str) == layers
    # the train function: its own dependencies layer instead of deps (D36), and the core
    train = sorted(
        [
            {"Ref": synth.logical_id(synth.stack.training.layer)},
            {"Ref": synth.logical_id(synth.stack.layers.core)},
        ],
        key=str,
    )
    assert sorted(_function(synth, C.FN_TRAIN)["Properties"]["Layers"], key=str) == train


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
    optional = {f.alias for f in model.model_fields.values() if not f.is_required()}
    assert optional & set(env) == OPTIONAL_SET.get(name, set())


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_gets_no_variable_beyond_its_settings_and_the_common_ones(synth, name):
    model = SETTINGS[name]
    env = set(_function(synth, name)["Properties"]["Environment"]["Variables"])
    fields = {f.alias for f in model.model_fields.values()}
    assert env - COMMON_ENV - fields == set()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_gets_exactly_the_environment_we_decided(synth, name):
    env = _function(synth, name)["Properties"]["Environment"]["Variables"]
    assert set(env) == EXPECTED_ENV[name]
    assert env["POWERTOOLS_SERVICE_NAME"] == C.SERVICE
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == C.METRICS_NAMESPACE
    assert env[C.ENV_TRIGGERS_PATH] == "/opt/nudge-config/triggers"
    assert env[C.ENV_TEMPLATES_PATH] == "/opt/nudge-config/templates"
    assert env[C.ENV_CONFIG_PATH] == "/opt/nudge-config/config"


@pytest.mark.parametrize("name", [C.FN_CHECK, C.FN_PROCESS])
def test_function_environment_is_exactly_its_settings_and_the_common_ones(synth, name):
    # check and process are told of every field of their settings model, and of nothing
    # else: derived from the model, so a field added there must reach the stack
    model = SETTINGS[name]
    env = set(_function(synth, name)["Properties"]["Environment"]["Variables"])
    assert env == COMMON_ENV | {f.alias for f in model.model_fields.values()}


def test_check_is_told_of_the_timers_table_and_the_events_queue(synth):
    s = synth.stack
    env = _function(synth, C.FN_CHECK)["Properties"]["Environment"]["Variables"]
    assert env[C.ENV_TIMERS_TABLE] == {"Ref": synth.logical_id(s.state.timers)}
    assert env[C.ENV_EVENTS_QUEUE_URL] == {"Ref": synth.logical_id(s.ingest.events_queue)}


def test_check_function_has_a_physical_name(synth):
    # a stable target for the one-time bucket schedules of releases before the sweep
    # (D49), which keep firing for up to WAKE_UP_INDEX_TTL_DAYS after the upgrade
    s = synth.stack
    name = _function(synth, C.FN_CHECK)["Properties"]["FunctionName"]
    assert name == f"{s.stack_name}-{C.FN_CHECK}"
    assert s.resolve(s.scheduling.check_function_arn)["Fn::Join"][1][-1] == f":function:{name}"


def test_deliver_is_told_where_links_point_and_who_sends(synth):
    s = synth.stack
    env = _function(synth, C.FN_DELIVER)["Properties"]["Environment"]["Variables"]
    # unsubscribe links go to the HTTP API's own URL, the same as the ApiUrl output
    assert env[C.ENV_PUBLIC_URL] == synth.template_json["Outputs"]["ApiUrl"]["Value"]
    assert env[C.ENV_APP_URL] == ""  # context appUrl, absent from cdk.json
    assert env[C.ENV_SENDER_EMAIL] == "nudge@example.com"  # context senderEmail default
    assert env[C.ENV_SES_CONFIGURATION_SET] == {"Ref": synth.logical_id(s.email.configuration_set)}
    assert env[C.ENV_SMS_TYPE] == "Transactional"
    assert env[C.ENV_ACTIONS_QUEUE_ARN] == {
        "Fn::GetAtt": [synth.logical_id(s.delivery.actions_queue), "Arn"]
    }
    assert env[C.ENV_ACTIONS_DLQ_URL] == {"Ref": synth.logical_id(s.delivery.actions_dlq)}


@pytest.mark.parametrize("name", [C.FN_DELIVER, C.FN_API])
def test_unsubscribe_secret_arn_is_given_to_signer_and_verifier(synth, name):
    env = _function(synth, name)["Properties"]["Environment"]["Variables"]
    secret = synth.stack.delivery.unsubscribe_secret
    assert env[C.ENV_UNSUBSCRIBE_SECRET_ARN] == {"Ref": synth.logical_id(secret)}


def test_consumers_are_told_their_queue_s_max_receive_count_and_the_api_both_dlqs(synth):
    # given the redrive policies the stack gives the queues
    s = synth.stack
    queues = synth.resources("AWS::SQS::Queue")
    redrive = {
        name: queues[synth.logical_id(q)]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
        for name, q in (
            (C.FN_PROCESS, s.ingest.events_queue),
            (C.FN_DELIVER, s.delivery.actions_queue),
        )
    }
    # then each consumer's last attempt is the one its queue's policy counts
    env = {n: _function(synth, n)["Properties"]["Environment"]["Variables"] for n in redrive}
    assert int(env[C.FN_PROCESS][C.ENV_EVENTS_MAX_RECEIVE_COUNT]) == redrive[C.FN_PROCESS]
    assert int(env[C.FN_DELIVER][C.ENV_ACTIONS_MAX_RECEIVE_COUNT]) == redrive[C.FN_DELIVER]
    assert env[C.FN_DELIVER][C.ENV_TIMERS_TABLE] == {"Ref": synth.logical_id(s.state.timers)}
    api = _function(synth, C.FN_API)["Properties"]["Environment"]["Variables"]
    assert api[C.ENV_EVENTS_DLQ_URL] == {"Ref": synth.logical_id(s.ingest.events_dlq)}
    assert api[C.ENV_ACTIONS_DLQ_URL] == {"Ref": synth.logical_id(s.delivery.actions_dlq)}


def test_api_push_applications_are_empty_without_context(synth):
    env = _function(synth, C.FN_API)["Properties"]["Environment"]["Variables"]
    assert env[C.ENV_APNS_APPLICATION_ARN] == ""
    assert env[C.ENV_FCM_APPLICATION_ARN] == ""


def test_ingest_rate_limit_defaults_to_the_constant(synth):
    env = _function(synth, C.FN_INGEST)["Properties"]["Environment"]["Variables"]
    assert env[C.ENV_RATE_LIMIT] == str(C.DEFAULT_RATE_LIMIT_PER_SECOND)
