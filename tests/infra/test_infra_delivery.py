"""Delivery: the deliver function on the actions queue, the SES identity and
configuration set with its email events flowing back to the feedback function, the
unsubscribe signing key, and the deployment settings read from CDK context."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nudge import constants as C

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
APNS_APP = "arn:aws:sns:us-east-1:123456789012:app/APNS/nudge-ios"
FCM_APP = "arn:aws:sns:us-east-1:123456789012:app/GCM/nudge-android"


def _props(synth, construct):  # type: ignore[no-untyped-def]
    return synth.template_json["Resources"][synth.logical_id(construct)]["Properties"]


def _as_list(value):  # type: ignore[no-untyped-def]
    return value if isinstance(value, list) else [value]


# --- the deliver function -------------------------------------------------------------


def test_actions_queue_feeds_deliver_in_batches_with_partial_failures(synth):
    s = synth.stack
    synth.template.resource_count_is("AWS::Lambda::EventSourceMapping", 2)  # one per queue
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [synth.logical_id(s.delivery.actions_queue), "Arn"]},
            "FunctionName": {"Ref": synth.logical_id(s.sending.function)},
            "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )
    assert _props(synth, s.delivery.actions_queue)["FifoQueue"] is True


def test_deliver_runs_with_512_mb_within_a_sixth_of_the_visibility_timeout(synth):
    s = synth.stack
    fn = _props(synth, s.sending.function)
    queue = _props(synth, s.delivery.actions_queue)
    assert fn["MemorySize"] == 512
    assert fn["Timeout"] <= queue["VisibilityTimeout"] / 6
    assert fn["Handler"] == "handler.handler"


# --- SES ------------------------------------------------------------------------------


def test_ses_identity_is_the_sender_domain(synth):
    synth.template.resource_count_is("AWS::SES::EmailIdentity", 1)
    assert _props(synth, synth.stack.email.identity)["EmailIdentity"] == "example.com"


def test_configuration_set_publishes_every_email_event_to_the_feedback_topic(synth):
    s = synth.stack
    synth.template.resource_count_is("AWS::SES::ConfigurationSet", 1)
    assert _props(synth, s.email.configuration_set)["Name"] == C.SES_CONFIGURATION_SET
    (destination,) = synth.resources("AWS::SES::ConfigurationSetEventDestination").values()
    props = destination["Properties"]
    assert props["ConfigurationSetName"] == {"Ref": synth.logical_id(s.email.configuration_set)}
    event = props["EventDestination"]
    assert event["Enabled"] is True
    # deliveries, opens and clicks for the response rates; bounces and complaints also
    # suppress
    assert sorted(event["MatchingEventTypes"]) == [
        "bounce",
        "click",
        "complaint",
        "delivery",
        "open",
    ]
    assert event["SnsDestination"] == {
        "TopicARN": {"Ref": synth.logical_id(s.email.feedback_topic)}
    }


def test_feedback_topic_is_kms_encrypted_with_a_rotated_key_and_tls_only(synth):
    s = synth.stack
    topic = _props(synth, s.email.feedback_topic)
    key_id = synth.logical_id(s.email.feedback_key)
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert synth.template_json["Resources"][key_id]["Properties"]["EnableKeyRotation"] is True
    topic_ref = {"Ref": synth.logical_id(s.email.feedback_topic)}
    (policy,) = [  # the feedback topic's (the alarm topic has its own)
        p
        for p in synth.resources("AWS::SNS::TopicPolicy").values()
        if topic_ref in p["Properties"]["Topics"]
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for st in statements
    )
    (ses_publish,) = [
        st for st in statements if st.get("Principal") == {"Service": "ses.amazonaws.com"}
    ]
    assert ses_publish["Action"] == "sns:Publish"
    assert "AWS:SourceArn" in ses_publish["Condition"]["StringEquals"]


def test_ses_may_use_the_feedback_key_for_this_configuration_set_only(synth):
    key = _props(synth, synth.stack.email.feedback_key)
    (st,) = [
        st
        for st in key["KeyPolicy"]["Statement"]
        if st.get("Principal") == {"Service": "ses.amazonaws.com"}
    ]
    assert sorted(_as_list(st["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert st["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    source_arn = st["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Join"][1]
    assert source_arn[-1] == f":configuration-set/{C.SES_CONFIGURATION_SET}"


def test_feedback_function_is_subscribed_to_the_feedback_topic(synth):
    s = synth.stack
    topic = {"Ref": synth.logical_id(s.email.feedback_topic)}
    fn_arn = {"Fn::GetAtt": [synth.logical_id(s.email.function), "Arn"]}
    (subscription,) = synth.resources("AWS::SNS::Subscription").values()
    assert subscription["Properties"] == {
        "Protocol": "lambda",
        "TopicArn": topic,
        "Endpoint": fn_arn,
    }
    synth.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": fn_arn,
            "Principal": "sns.amazonaws.com",
            "SourceArn": topic,
        },
    )


# --- the unsubscribe key --------------------------------------------------------------


def test_unsubscribe_secret_is_generated_under_the_shared_name_without_rotation(synth):
    s = synth.stack
    synth.template.resource_count_is("AWS::SecretsManager::Secret", 1)
    props = _props(synth, s.delivery.unsubscribe_secret)
    assert props["Name"] == C.UNSUBSCRIBE_SECRET_NAME
    assert props["GenerateSecretString"]["PasswordLength"] >= 32
    # rotating would invalidate every unsubscribe link already sent
    synth.template.resource_count_is("AWS::SecretsManager::RotationSchedule", 0)


def test_outputs_name_the_delivery_resources(synth):
    outputs = synth.template_json["Outputs"]
    s = synth.stack
    for name, table in (
        ("DeliveriesTableName", s.state.deliveries),
        ("InboxTableName", s.state.inbox),
        ("SuppressionsTableName", s.state.suppressions),
    ):
        assert outputs[name]["Value"] == {"Ref": synth.logical_id(table)}
    assert outputs["UnsubscribeSecretName"]["Value"] == C.UNSUBSCRIBE_SECRET_NAME
    assert outputs["SesConfigurationSetName"]["Value"] == {
        "Ref": synth.logical_id(s.email.configuration_set)
    }
    assert {f"SesDkimRecord{i}" for i in (1, 2, 3)} <= set(outputs)


# --- CDK context ----------------------------------------------------------------------


def _context(**values):  # type: ignore[no-untyped-def]
    import aws_cdk as cdk

    from infra.context import DeliveryContext

    return DeliveryContext.from_node(cdk.App(context=values).node)


def test_context_defaults():
    ctx = _context()
    assert (ctx.sender_email, ctx.sender_domain, ctx.app_url, ctx.sms_type) == (
        "nudge@example.com",
        "example.com",
        "",
        "Transactional",
    )
    assert ctx.platform_application_arns == [] == ctx.platform_endpoint_arns


def test_context_sender_domain_comes_from_the_address_unless_given():
    assert _context(senderEmail="Shop <hi@Shop.IO>").sender_domain == "shop.io"
    assert (
        _context(senderEmail="hi@mail.shop.io", senderDomain="shop.io").sender_domain == "shop.io"
    )


@pytest.mark.parametrize(
    "values",
    [
        {"senderEmail": "not-an-address"},
        {"senderEmail": "hi@shop.io", "senderDomain": "other.io"},
        {"senderDomain": "no_domain"},
        {"apnsApplicationArn": "arn:aws:sns:us-east-1:123456789012:my-topic"},
        {"smsType": "Marketing"},
    ],
)
def test_context_that_cannot_work_fails_the_synth(values):
    from infra.context import ContextError

    with pytest.raises(ContextError):
        _context(**values)


def test_push_endpoints_are_those_of_the_configured_applications():
    ctx = _context(apnsApplicationArn=APNS_APP, fcmApplicationArn=FCM_APP)
    assert ctx.platform_endpoint_arns == [
        "arn:aws:sns:us-east-1:123456789012:endpoint/APNS/nudge-ios/*",
        "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/nudge-android/*",
    ]


@pytest.fixture(scope="module")
def push_stack(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The app again, with both platform applications configured (not synthesized to
    disk: the template and cdk-nag's report are enough)."""
    from aws_cdk.assertions import Template

    from infra.app import build_app

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    context |= {
        "apnsApplicationArn": APNS_APP,
        "fcmApplicationArn": FCM_APP,
        "appUrl": "https://shop.io",
    }
    _, stack = build_app(outdir=str(tmp_path_factory.mktemp("push")), context=context)
    return stack, Template.from_stack(stack).to_json()


def _statements(stack, template, role):  # type: ignore[no-untyped-def]
    ref = {"Ref": stack.resolve(stack.get_logical_id(role.node.default_child))}
    return [
        st
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy" and ref in r["Properties"]["Roles"]
        for st in r["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_with_push_apps_api_registers_devices_on_those_apps_only(push_stack):
    stack, template = push_stack
    api = stack.functions[C.FN_API]
    sns = [st for st in _statements(stack, template, api.role) if "sns:" in str(st["Action"])]
    endpoints = [a.replace(":app/", ":endpoint/") + "/*" for a in (APNS_APP, FCM_APP)]
    assert sns == [
        {
            "Action": "sns:CreatePlatformEndpoint",
            "Effect": "Allow",
            "Resource": [APNS_APP, FCM_APP],
        },
        # erase deletes the user's endpoints: those of these apps only
        {"Action": "sns:DeleteEndpoint", "Effect": "Allow", "Resource": endpoints},
    ]
    fn_id = stack.resolve(stack.get_logical_id(api.node.default_child))
    env = template["Resources"][fn_id]["Properties"]["Environment"]["Variables"]
    assert env[C.ENV_APNS_APPLICATION_ARN] == APNS_APP
    assert env[C.ENV_FCM_APPLICATION_ARN] == FCM_APP


def test_with_push_apps_deliver_deletes_their_endpoints_only(push_stack):
    stack, template = push_stack
    deliver = stack.functions[C.FN_DELIVER]
    (st,) = [
        st
        for st in _statements(stack, template, deliver.role)
        if st["Action"] == "sns:DeleteEndpoint"
    ]
    assert st["Resource"] == [
        "arn:aws:sns:us-east-1:123456789012:endpoint/APNS/nudge-ios/*",
        "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/nudge-android/*",
    ]
    fn_id = stack.resolve(stack.get_logical_id(deliver.node.default_child))
    env = template["Resources"][fn_id]["Properties"]["Environment"]["Variables"]
    assert env[C.ENV_APP_URL] == "https://shop.io"


def test_with_push_apps_cdk_nag_finds_nothing_unacknowledged(push_stack):
    from cdk_nag import AwsSolutionsChecks

    stack, _ = push_stack
    report = AwsSolutionsChecks().validate_scope(stack)
    assert [v.rule_name for v in report.violations] == []
