"""cdk-nag AwsSolutions: no finding left unacknowledged, every acknowledgment with a
reason; cfn-lint: the synthesized template is clean."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import Validations
from aws_cdk.assertions import Annotations, Match

pytestmark = pytest.mark.infra


def test_cdk_nag_finds_nothing_unacknowledged(synth):
    from cdk_nag import AwsSolutionsChecks

    report = AwsSolutionsChecks().validate_scope(synth.stack)
    findings = [
        f"{v.rule_name} ({v.severity}) at "
        + ", ".join(r.construct_path for r in v.violating_resources)
        for v in report.violations
    ]
    assert findings == []
    assert report.success


def test_no_cdk_nag_annotation_errors_or_warnings(synth):
    annotations = Annotations.from_stack(synth.stack)
    pattern = Match.string_like_regexp("AwsSolutions-.*")
    assert annotations.find_error("*", pattern) == []
    assert annotations.find_warning("*", pattern) == []


def test_every_acknowledgment_gives_a_real_reason(synth):
    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    acknowledged = {}
    for construct in synth.stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == key:
                for rule, reason in entry.data.items():
                    acknowledged[(construct.node.path, rule)] = reason
    assert acknowledged, "the stack acknowledges at least the X-Ray wildcard"
    for (path, rule), reason in acknowledged.items():
        assert "AwsSolutions-" in rule, (path, rule)
        assert len(reason.split()) >= 12, f"{path} {rule}: reason too thin: {reason!r}"


def test_cfn_lint_reports_nothing(synth):
    from cfnlint.api import lint_file

    matches = lint_file(Path(synth.template_path))
    assert [f"{m.rule.id} {m.message} ({m.linenumber})" for m in matches] == []


def test_the_resource_star_acknowledgment_covers_only_policies_of_unscoped_actions(synth):
    """IAM5[Resource::*] is acknowledged on a policy of its own per need (X-Ray, SNS's
    publish to phone numbers), never on a role, whose default policy would hide any '*'
    added to it later; each such policy holds only '*' statements."""
    from aws_cdk import aws_iam as iam

    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    wildcard = "AwsSolutions-IAM5[Resource::*]"
    holders = [
        c
        for c in synth.stack.node.find_all()
        for entry in c.node.metadata
        if entry.type == key and any(rule.endswith(wildcard) for rule in entry.data)
    ]
    assert holders, "X-Ray at least needs it"
    for construct in holders:
        assert isinstance(construct, iam.Policy), construct.node.path
        statements = construct.document.to_json()["Statement"]
        assert statements and all(s["Resource"] == "*" for s in statements), statements
    names = {c.node.id for c in holders}
    assert names == {"XRay", "SnsPublish"}, names
