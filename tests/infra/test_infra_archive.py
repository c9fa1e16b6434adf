"""The event archive: a private, encrypted, TLS-only bucket with a lifecycle from context,
filled by a Firehose delivery stream (DirectPut, GZIP, encrypted, Firehose's arrival-hour
layout) under a role that may only write there; a Glue table built from the code's
ARCHIVE_COLUMNS with partition projection; an Athena workgroup with encrypted results;
process may only put records into the stream, api may read the archive and query it."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Capture, Match
from nudge import constants as C
from nudge.domain.archive import ARCHIVE_COLUMNS

pytestmark = pytest.mark.infra


def _as_list(value):  # type: ignore[no-untyped-def]
    return value if isinstance(value, list) else [value]


def _resource(synth, construct):  # type: ignore[no-untyped-def]
    return synth.template_json["Resources"][synth.logical_id(construct)]


def _props(synth, construct):  # type: ignore[no-untyped-def]
    return _resource(synth, construct)["Properties"]


def _arn(synth, construct):  # type: ignore[no-untyped-def]
    return {"Fn::GetAtt": [synth.logical_id(construct), "Arn"]}


def _ref(synth, construct):  # type: ignore[no-untyped-def]
    return {"Ref": synth.logical_id(construct)}


def _objects(synth, bucket, pattern):  # type: ignore[no-untyped-def]
    return {"Fn::Join": ["", [_arn(synth, bucket), f"/{pattern}"]]}


def _env(synth, name):  # type: ignore[no-untyped-def]
    fn = synth.stack.functions[name]
    return _props(synth, fn)["Environment"]["Variables"]


# --- the buckets ------------------------------------------------------------------------


def test_every_bucket_is_encrypted_private_and_without_acls(synth):
    synth.template.all_resources_properties(
        "AWS::S3::Bucket",
        Match.object_like(
            {
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                    ]
                },
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            }
        ),
    )


def test_every_bucket_denies_requests_without_tls(synth):
    buckets = synth.resources("AWS::S3::Bucket")
    assert len(buckets) == 3  # the archive, Athena's results, their access logs
    denied = set()
    for policy in synth.resources("AWS::S3::BucketPolicy").values():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            if st["Effect"] == "Deny" and st.get("Condition") == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                assert st["Action"] == "s3:*"
                bucket_id = policy["Properties"]["Bucket"]["Ref"]
                bucket_arn = {"Fn::GetAtt": [bucket_id, "Arn"]}
                assert st["Resource"] == [
                    bucket_arn,
                    {"Fn::Join": ["", [bucket_arn, "/*"]]},
                ]
                denied.add(bucket_id)
    assert denied == set(buckets)


def test_every_bucket_survives_stack_deletion(synth):
    for bucket in synth.resources("AWS::S3::Bucket").values():
        assert bucket["DeletionPolicy"] == "Retain"
        assert bucket["UpdateReplacePolicy"] == "Retain"


def test_every_bucket_aborts_incomplete_uploads_and_expires_its_objects(synth):
    from infra.constructs.archive import DEFAULT_RETENTION_DAYS, RESULTS_RETENTION_DAYS

    a = synth.stack.archive
    expected = {
        a.bucket: DEFAULT_RETENTION_DAYS,  # cdk.json sets no archive_retention_days
        a.results_bucket: RESULTS_RETENTION_DAYS,
        a.access_logs: 90,
    }
    for bucket, days in expected.items():
        rules = _props(synth, bucket)["LifecycleConfiguration"]["Rules"]
        aborts = [
            r["AbortIncompleteMultipartUpload"]
            for r in rules
            if "AbortIncompleteMultipartUpload" in r
        ]
        assert aborts == [{"DaysAfterInitiation": 1}]
        expirations = [r["ExpirationInDays"] for r in rules if "ExpirationInDays" in r]
        assert expirations == [days]
        assert all(r["Status"] == "Enabled" and "Prefix" not in r for r in rules)
    assert DEFAULT_RETENTION_DAYS == 400


def test_archive_and_results_buckets_log_access_to_the_access_log_bucket(synth):
    a = synth.stack.archive
    for bucket, prefix in ((a.bucket, "archive/"), (a.results_bucket, "results/")):
        assert _props(synth, bucket)["LoggingConfiguration"] == {
            "DestinationBucketName": _ref(synth, a.access_logs),
            "LogFilePrefix": prefix,
        }
    # delivered by the S3 logging service under a bucket policy (no ACL), for our buckets
    source = Capture()
    synth.template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": _ref(synth, a.access_logs),
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "logging.s3.amazonaws.com"},
                                "Action": "s3:PutObject",
                                "Condition": {
                                    "ArnLike": {"aws:SourceArn": source},
                                    "StringEquals": {
                                        "aws:SourceAccount": {"Ref": "AWS::AccountId"}
                                    },
                                },
                            }
                        )
                    ]
                )
            },
        },
    )
    assert source.as_object() in (_arn(synth, a.bucket), _arn(synth, a.results_bucket))


# --- the delivery stream ----------------------------------------------------------------


def test_stream_is_direct_put_gzip_encrypted_in_the_arrival_hour_layout(synth):
    a = synth.stack.archive
    synth.template.resource_count_is("AWS::KinesisFirehose::DeliveryStream", 1)
    props = _props(synth, a.stream)
    assert props["DeliveryStreamType"] == "DirectPut"
    assert props["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
    s3 = props["ExtendedS3DestinationConfiguration"]
    assert s3["BucketARN"] == _arn(synth, a.bucket)
    assert s3["RoleARN"] == _arn(synth, a.role)
    assert s3["CompressionFormat"] == "GZIP"
    # Firehose's default layout, spelled out: events/YYYY/MM/DD/HH/ (what readers list)
    assert s3["Prefix"] == f"{C.ARCHIVE_PREFIX}!{{timestamp:yyyy/MM/dd/HH}}/"
    assert s3["Prefix"] == "events/!{timestamp:yyyy/MM/dd/HH}/"
    assert s3["ErrorOutputPrefix"] == (
        f"{C.ARCHIVE_ERROR_PREFIX}!{{firehose:error-output-type}}/!{{timestamp:yyyy/MM/dd/HH}}/"
    )
    assert s3["BufferingHints"] == {"IntervalInSeconds": 300, "SizeInMBs": 64}


def test_stream_logs_delivery_errors_to_a_log_group_kept_one_month(synth):
    a = synth.stack.archive
    logging = _props(synth, a.stream)["ExtendedS3DestinationConfiguration"][
        "CloudWatchLoggingOptions"
    ]
    assert logging["Enabled"] is True
    assert logging["LogGroupName"] == _ref(synth, a.log_group)
    stream_id = logging["LogStreamName"]["Ref"]
    log_stream = synth.template_json["Resources"][stream_id]
    assert log_stream["Type"] == "AWS::Logs::LogStream"
    assert log_stream["Properties"]["LogGroupName"] == _ref(synth, a.log_group)
    assert _props(synth, a.log_group)["RetentionInDays"] == 30


def test_stream_waits_for_its_role_policy(synth):
    a = synth.stack.archive
    policy = a.role.node.find_child("DefaultPolicy")
    assert synth.logical_id(policy) in _resource(synth, a.stream)["DependsOn"]


def test_delivery_role_is_assumed_by_firehose_of_this_account_only(synth):
    role = _props(synth, synth.stack.archive.role)
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "firehose.amazonaws.com"},
            "Condition": {"StringEquals": {"sts:ExternalId": {"Ref": "AWS::AccountId"}}},
        }
    ]


def test_delivery_role_may_only_write_under_events_and_errors_and_log(synth):
    a = synth.stack.archive
    perms = synth.allowed(a.role)
    objects = sorted(
        map(str, [_objects(synth, a.bucket, "events/*"), _objects(synth, a.bucket, "errors/*")])
    )
    for action in ("s3:PutObject", "s3:AbortMultipartUpload"):
        assert sorted(map(str, perms[action])) == objects
    for action in ("s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"):
        assert perms[action] == [_arn(synth, a.bucket)]
    assert perms["logs:PutLogEvents"] == [_arn(synth, a.log_group)]
    assert set(perms) == {
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:GetBucketLocation",
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
        "logs:PutLogEvents",
    }  # no read, no delete, no other bucket


# --- Glue and Athena --------------------------------------------------------------------


def test_glue_database_and_table_have_the_shared_names(synth):
    a = synth.stack.archive
    synth.template.resource_count_is("AWS::Glue::Database", 1)
    synth.template.resource_count_is("AWS::Glue::Table", 1)
    assert _props(synth, a.database)["DatabaseInput"]["Name"] == C.GLUE_DATABASE
    table = _props(synth, a.table)
    assert table["CatalogId"] == {"Ref": "AWS::AccountId"}
    assert table["DatabaseName"] == _ref(synth, a.database)
    assert table["TableInput"]["Name"] == C.GLUE_EVENTS_TABLE
    assert table["TableInput"]["TableType"] == "EXTERNAL_TABLE"


def test_glue_table_columns_are_the_archive_columns_of_the_code(synth):
    table = _props(synth, synth.stack.archive.table)["TableInput"]
    columns = table["StorageDescriptor"]["Columns"]
    assert columns == [{"Name": name, "Type": glue} for name, _, glue in ARCHIVE_COLUMNS]
    assert [c["Name"] for c in columns][:3] == ["v", "message_id", "type"]
    assert table["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]


def test_glue_table_reads_gzip_json_lines_under_events(synth):
    a = synth.stack.archive
    storage = _props(synth, a.table)["TableInput"]["StorageDescriptor"]
    assert storage["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
    assert storage["SerdeInfo"] == {
        "SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe",
        "Parameters": {"ignore.malformed.json": "true"},
    }
    assert storage["Location"] == {
        "Fn::Join": ["", ["s3://", _ref(synth, a.bucket), f"/{C.ARCHIVE_PREFIX}"]]
    }


def test_glue_table_projects_hourly_partitions_over_the_firehose_layout(synth):
    a = synth.stack.archive
    params = _props(synth, a.table)["TableInput"]["Parameters"]
    assert {k: v for k, v in params.items() if k.startswith("projection.")} == {
        "projection.enabled": "true",
        "projection.dt.type": "date",
        "projection.dt.format": "yyyy/MM/dd/HH",
        "projection.dt.range": "2024/01/01/00,NOW",
        "projection.dt.interval": "1",
        "projection.dt.interval.unit": "HOURS",
    }
    # ${dt} reaches Athena literally: escaped in Fn::Sub, not a CloudFormation parameter
    assert params["storage.location.template"] == {
        "Fn::Sub": [
            f"s3://${{Bucket}}/{C.ARCHIVE_PREFIX}${{!dt}}/",
            {"Bucket": _ref(synth, a.bucket)},
        ]
    }


def test_athena_workgroup_enforces_encrypted_results_in_the_results_bucket(synth):
    a = synth.stack.archive
    synth.template.resource_count_is("AWS::Athena::WorkGroup", 1)
    props = _props(synth, a.workgroup)
    assert props["Name"] == C.ATHENA_WORKGROUP
    config = props["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["PublishCloudWatchMetricsEnabled"] is True
    assert config["ResultConfiguration"] == {
        "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
        "OutputLocation": {
            "Fn::Join": ["", ["s3://", _ref(synth, a.results_bucket), "/athena-results/"]]
        },
    }
    assert a.results_bucket is not a.bucket


# --- the functions ----------------------------------------------------------------------


def test_process_may_only_put_records_into_the_stream(synth):
    a = synth.stack.archive
    perms = synth.allowed(synth.stack.functions[C.FN_PROCESS].role)
    archive = {x for x in perms if x.startswith(("firehose:", "s3:", "athena:", "glue:"))}
    assert archive == {"firehose:PutRecord", "firehose:PutRecordBatch"}
    assert perms["firehose:PutRecordBatch"] == [_arn(synth, a.stream)]
    assert perms["firehose:PutRecord"] == [_arn(synth, a.stream)]


# process archives events and exposures; deliver, feedback and api message outcomes;
# ingest the tracking plan's violations
WRITERS = (C.FN_PROCESS, C.FN_DELIVER, C.FN_FEEDBACK, C.FN_API, C.FN_INGEST)


@pytest.mark.parametrize("name", WRITERS)
def test_the_writers_may_only_put_records_into_the_stream(synth, name):
    a = synth.stack.archive
    perms = synth.allowed(synth.stack.functions[name].role)
    firehose = {x for x in perms if x.startswith("firehose:")}
    assert firehose == {"firehose:PutRecord", "firehose:PutRecordBatch"}
    assert perms["firehose:PutRecordBatch"] == [_arn(synth, a.stream)]


def test_only_the_writers_may_put_records_into_the_stream(synth):
    roles = [_ref(synth, synth.stack.functions[n].role) for n in WRITERS]
    seen = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            if any(x.startswith("firehose:") for x in _as_list(st["Action"])):
                assert len(policy["Properties"]["Roles"]) == 1
                assert policy["Properties"]["Roles"][0] in roles
                seen.append(policy["Properties"]["Roles"][0])
    assert sorted(map(str, seen)) == sorted(map(str, roles))


def test_api_may_read_the_archive_and_query_it_with_athena(synth):
    a = synth.stack.archive
    perms = synth.allowed(synth.stack.functions[C.FN_API].role)
    # DuckDB in the function (and Athena as the caller): list and get the events
    assert perms["s3:GetObject"] == [
        _objects(synth, a.bucket, "events/*"),
        _objects(synth, a.bucket, "models/*"),  # the recommendation model, the catalog
        _objects(synth, a.results_bucket, "athena-results/*"),
    ]
    assert _arn(synth, a.bucket) in perms["s3:ListBucket"]
    # Athena: queries in the nudge workgroup only, results under athena-results/
    for action in (
        "athena:StartQueryExecution",
        "athena:GetQueryExecution",
        "athena:GetQueryResults",
        "athena:StopQueryExecution",
    ):
        (arn,) = perms[action]
        assert arn["Fn::Join"][1][-2:] == [":workgroup/", _ref(synth, a.workgroup)]
    assert perms["s3:PutObject"] == [
        _objects(synth, a.results_bucket, "athena-results/*"),
        _objects(synth, a.bucket, "erased/*"),  # DELETE /v1/users/{id} lists the ids there
    ]
    for action in ("glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"):
        ends = [r["Fn::Join"][1][-1] for r in perms[action]]
        assert ends[0] == ":catalog"
        assert ends[1:] == [_ref(synth, a.database), _ref(synth, a.table)]
    # writes only query results; never writes or deletes an archived object
    for action in ("s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"):
        assert perms[action] == [_objects(synth, a.results_bucket, "athena-results/*")]
    assert {x for x in perms if x.startswith("s3:")} == {
        "s3:GetObject",
        "s3:GetBucketLocation",
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    }
    assert perms["s3:ListBucketMultipartUploads"] == [_arn(synth, a.results_bucket)]


def test_no_other_function_may_touch_the_archive(synth):
    perms = synth.allowed(synth.stack.functions[C.FN_CHECK].role)
    assert not any(x.startswith(("firehose:", "s3:", "athena:", "glue:")) for x in perms)
    for name in (C.FN_FEEDBACK, C.FN_INGEST):  # writers only: they read nothing back
        perms = synth.allowed(synth.stack.functions[name].role)
        assert not any(x.startswith(("s3:", "athena:", "glue:")) for x in perms), name
    # deliver reads only the train function's artifacts (catalog, item model)
    perms = synth.allowed(synth.stack.functions[C.FN_DELIVER].role)
    assert {x for x in perms if x.startswith(("s3:", "athena:", "glue:"))} == {"s3:GetObject"}
    assert perms["s3:GetObject"] == [_objects(synth, synth.stack.archive.bucket, "models/*")]


def test_the_writers_are_told_the_stream_and_api_where_the_archive_is(synth):
    a = synth.stack.archive
    for name in WRITERS:
        assert _env(synth, name)[C.ENV_ARCHIVE_STREAM] == _ref(synth, a.stream), name
    env = _env(synth, C.FN_API)
    assert env[C.ENV_ARCHIVE_BUCKET] == _ref(synth, a.bucket)
    assert env[C.ENV_QUERY_ENGINE] == "duckdb"  # context query_engine, absent from cdk.json
    assert env[C.ENV_ATHENA_WORKGROUP] == _ref(synth, a.workgroup)
    assert env[C.ENV_GLUE_DATABASE] == _ref(synth, a.database)
    for name in (C.FN_PROCESS, C.FN_DELIVER, C.FN_FEEDBACK, C.FN_INGEST):
        assert C.ENV_ARCHIVE_BUCKET not in _env(synth, name), name


def test_outputs_name_the_archive_for_the_cli(synth):
    a = synth.stack.archive
    outputs = synth.template_json["Outputs"]
    assert outputs["ArchiveBucketName"]["Value"] == _ref(synth, a.bucket)
    assert outputs["ArchiveStreamName"]["Value"] == _ref(synth, a.stream)
    assert outputs["GlueDatabaseName"]["Value"] == _ref(synth, a.database)
    assert outputs["GlueTableName"]["Value"] == _ref(synth, a.table)
    assert outputs["AthenaWorkGroupName"]["Value"] == _ref(synth, a.workgroup)


def test_failed_deliveries_to_s3_raise_an_alarm(synth):
    s = synth.stack
    synth.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/Firehose",
            "MetricName": "DeliveryToS3.Success",
            "Dimensions": [{"Name": "DeliveryStreamName", "Value": _ref(synth, s.archive.stream)}],
            "Statistic": "Minimum",
            "Threshold": 1,
            "ComparisonOperator": "LessThanThreshold",
            "TreatMissingData": "notBreaching",
        },
    )
    assert set(s.monitoring.delivery_alarms) == {C.ARCHIVE}


# --- settings from CDK context ----------------------------------------------------------


def _archive_stack(context):  # type: ignore[no-untyped-def]
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from infra.constructs.archive import Archive

    app = cdk.App(context=context)
    stack = cdk.Stack(app, "ArchiveOnly")
    archive = Archive(stack, "Archive")
    return archive, Template.from_stack(stack)


def test_context_sets_retention_buffer_and_engine_and_zero_keeps_objects_forever():
    # given a deployment that keeps its archive forever, buffers a minute, uses Athena
    archive, template = _archive_stack(
        {"archive_retention_days": "0", "archive_buffer_seconds": 60, "query_engine": "athena"}
    )
    (bucket,) = template.find_resources(
        "AWS::S3::Bucket",
        {"Properties": {"LoggingConfiguration": Match.object_like({"LogFilePrefix": "archive/"})}},
    ).values()
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    # then no object of the archive expires, but dangling uploads still go
    assert [r["Id"] for r in rules] == ["AbortIncompleteUploads"]
    template.has_resource_properties(
        "AWS::KinesisFirehose::DeliveryStream",
        {
            "ExtendedS3DestinationConfiguration": Match.object_like(
                {"BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 64}}
            )
        },
    )
    assert archive.reader_environment[C.ENV_QUERY_ENGINE] == "athena"


def test_context_retention_days_sets_the_expiration():
    _, template = _archive_stack({"archive_retention_days": 30})
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LoggingConfiguration": Match.object_like({"LogFilePrefix": "archive/"}),
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [{"Id": "ExpireArchive", "ExpirationInDays": 30, "Status": "Enabled"}]
                )
            },
        },
    )


@pytest.mark.parametrize(
    "context",
    [
        {"archive_retention_days": -1},
        {"archive_retention_days": "a year"},
        {"archive_retention_days": True},
        {"archive_buffer_seconds": 901},
        {"archive_buffer_seconds": 2.5},
        {"query_engine": "presto"},
    ],
    ids=str,
)
def test_context_rejects_values_that_cannot_work(context):
    from infra.context import ContextError

    with pytest.raises(ContextError):
        _archive_stack(context)
