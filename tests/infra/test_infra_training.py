"""The train function: its own layers under Lambda's 250 MiB, a recurring schedule (hourly
by default) whose role invokes only it, least privilege on profiles and the bucket."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from nudge import constants as C

from infra.constructs.training import TrainingContext
from infra.context import ContextError
from tests.infra.conftest import as_list

pytestmark = pytest.mark.infra

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function code plus all its layers


def _size(root) -> int:  # type: ignore[no-untyped-def]
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_the_train_function_with_its_layers_stays_under_lambdas_unzipped_limit(synth):
    from infra import bundling

    training = synth.stack.training
    total = (
        _size(training.layer_dir)
        + _size(synth.stack.layers.core_dir)
        + _size(bundling.ROOT / "functions" / C.FN_TRAIN)
    )
    assert total < LAMBDA_UNZIPPED_LIMIT, total / 2**20
    # and with room to grow: a dependency's next release must not break the deploy
    assert total < LAMBDA_UNZIPPED_LIMIT * 0.9, total / 2**20


def test_the_train_layer_has_scikit_learn_for_arm64_without_duckdb_or_test_suites(synth):
    site = synth.stack.training.layer_dir / "python"
    for package in ("sklearn", "scipy", "numpy", "pydantic", "aws_lambda_powertools", "pynamodb"):
        assert (site / package).is_dir(), package
    assert not list(site.glob("_duckdb*")) and not (site / "duckdb").exists()
    for package in ("sklearn", "scipy", "numpy"):
        assert not [p for p in (site / package).rglob("tests") if p.is_dir()], package
    so = next((site / "sklearn" / "cluster").glob("_k_means_lloyd*.so"))
    assert "cpython-312-aarch64-linux-gnu" in so.name


def _role(synth):  # type: ignore[no-untyped-def]
    return synth.stack.training.handler.role


def test_train_scans_profiles_sets_scores_reads_the_archive_and_writes_models(synth):
    perms = synth.allowed(_role(synth))
    profiles = {"Fn::GetAtt": [synth.logical_id(synth.stack.state.profiles), "Arn"]}
    assert perms["dynamodb:Scan"] == [profiles]
    assert perms["dynamodb:UpdateItem"] == [profiles]
    for never in ("dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:GetItem"):
        assert never not in perms, never
    bucket = synth.logical_id(synth.stack.archive.bucket)
    objects = [str(r) for r in perms["s3:GetObject"]]
    assert any(f"{C.ARCHIVE_PREFIX}*" in r and bucket in r for r in objects), objects
    assert any(f"{C.MODELS_PREFIX}*" in r for r in objects), objects
    # writes: its artifacts, and (the purge step) archived objects rewritten without an
    # erased user's events and the erased list's entries; deletes: only those entries
    writes = [str(r) for r in perms["s3:PutObject"]]
    assert len(writes) == 3
    assert all(any(p in r for p in (C.MODELS_PREFIX, C.ARCHIVE_PREFIX, "erased/")) for r in writes)
    deletes = [str(r) for r in perms["s3:DeleteObject"]]
    assert len(deletes) == 1 and "erased/*" in deletes[0], deletes
    assert perms["s3:ListBucket"] == [{"Fn::GetAtt": [bucket, "Arn"]}]
    assert not any("errors/" in r for r in objects + writes)


def test_the_schedule_is_hourly_and_its_role_invokes_only_the_train_function(synth):
    (schedule,) = [
        r
        for r in synth.resources("AWS::Scheduler::Schedule").values()
        if r["Properties"]["Name"] == C.TRAIN_SCHEDULE_NAME
    ]
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "rate(1 hour)"
    assert props["Name"] == C.TRAIN_SCHEDULE_NAME
    assert props["Target"]["Arn"] == {
        "Fn::GetAtt": [synth.logical_id(synth.stack.training.function), "Arn"]
    }
    assert "DeadLetterConfig" in props["Target"] and "RetryPolicy" in props["Target"]
    role = synth.stack.training.role
    assert props["Target"]["RoleArn"] == {"Fn::GetAtt": [synth.logical_id(role), "Arn"]}
    perms = synth.allowed(role)
    assert perms["lambda:InvokeFunction"] == [props["Target"]["Arn"]]
    assert set(perms) == {"lambda:InvokeFunction", "sqs:SendMessage"} | {
        a for a in perms if a.startswith("sqs:Get")
    }
    groups = {
        g["Properties"]["Name"] for g in synth.resources("AWS::Scheduler::ScheduleGroup").values()
    }
    assert C.TRAIN_SCHEDULE_GROUP in groups


def test_a_failed_scheduled_run_is_retried_once_then_kept_on_a_queue(synth):
    configs = [
        c["Properties"]
        for c in synth.resources("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"]
        == {"Ref": synth.logical_id(synth.stack.training.function)}
    ]
    (config,) = configs
    assert config["MaximumRetryAttempts"] == 1
    failures = synth.logical_id(synth.stack.training.failures)
    assert failures in str(config["DestinationConfig"]["OnFailure"]["Destination"])


def test_the_schedule_and_window_come_from_context_and_are_validated():
    def context(**values: object) -> TrainingContext:
        app = App(context=values)
        return TrainingContext.from_node(Stack(app, "S").node)

    assert context() == TrainingContext("rate(1 hour)", 90)
    assert context(train_schedule="rate(6 hours)", train_window_days="30") == TrainingContext(
        "rate(6 hours)", 30
    )
    assert context(train_schedule="cron(0 3 * * ? *)").schedule == "cron(0 3 * * ? *)"
    for bad in ({"train_schedule": "hourly"}, {"train_window_days": 0}, {"train_window_days": "x"}):
        with pytest.raises(ContextError):
            context(**bad)


def test_statements_name_no_bucket_wide_object_wildcard(synth):
    for st in synth.statements_of_role(_role(synth)):
        for resource in as_list(st["Resource"]):
            text = str(resource)
            assert (
                not text.endswith("/*']}")
                or C.MODELS_PREFIX in text
                or C.ARCHIVE_PREFIX in text
                or "erased/" in text
            )


def test_deliver_may_read_the_artifacts_and_nothing_else_of_the_bucket(synth):
    perms = synth.allowed(synth.stack.sending.handler.role)
    reads = [str(r) for r in perms["s3:GetObject"]]
    assert reads and all(f"/{C.MODELS_PREFIX}*" in r for r in reads), reads
    assert not any(a.startswith("s3:") and a != "s3:GetObject" for a in perms)
