"""The event archive: the process function puts every accepted event, one JSON line each
(``nudge.domain.archive``), into a Kinesis Data Firehose delivery stream, which delivers
them GZIP compressed to an S3 bucket under ``events/YYYY/MM/DD/HH/`` (arrival time, UTC).
The api function reads the objects itself (DuckDB, embedded) or asks Athena, through a
Glue table over the same objects whose partitions are projected (no crawler).

Settings read from CDK context (``cdk deploy -c archive_retention_days=730``), validated
at synth time:

- ``archive_retention_days``: days after which archived objects (events and delivery
  errors) expire; default 400 (a year of reports plus a month of slack). ``0`` keeps them
  forever (no expiration rule at all); absent means the default.
- ``archive_buffer_seconds``: how long Firehose buffers before it writes an object,
  0 to 900; default 300. Shorter makes events queryable sooner, at more (smaller) objects.
- ``query_engine``: ``duckdb`` (default) or ``athena``: what the api function's reports use.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct, Node
from nudge import constants as C
from nudge.adapters.erased import ERASED_PREFIX
from nudge.domain.archive import ARCHIVE_COLUMNS

from infra.constructs.function import LOG_RETENTION, NudgeFunction
from infra.context import ContextError

DEFAULT_RETENTION_DAYS = 400
DEFAULT_BUFFER_SECONDS = 300
MAX_BUFFER_SECONDS = 900  # Firehose's limit
BUFFER_SIZE_MB = 64  # of uncompressed lines; whichever of size and interval comes first
QUERY_ENGINES = ("duckdb", "athena")

RESULTS_PREFIX = "athena-results/"
RESULTS_RETENTION_DAYS = 7  # query results are read once, right after the query
ACCESS_LOG_RETENTION_DAYS = 90
INCOMPLETE_UPLOAD_DAYS = 1

# Firehose's own arrival-time layout (the default when no prefix is given), spelled out
# because a custom error prefix requires a custom prefix; the readers (hour_prefixes in
# nudge.domain.archive) and the Glue table's projection depend on exactly this layout.
HOUR = "!{timestamp:yyyy/MM/dd/HH}"
DATA_PREFIX = f"{C.ARCHIVE_PREFIX}{HOUR}/"
ERROR_PREFIX = f"{C.ARCHIVE_ERROR_PREFIX}!{{firehose:error-output-type}}/{HOUR}/"
# Partition projection over that layout: the hour is the partition `dt`.
PROJECTION_START = "2024/01/01/00"

JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
TEXT_INPUT_FORMAT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

# Firehose writes objects and aborts the multipart uploads it gave up on; it never reads
# or deletes one (AWS's sample policy adds GetObject, which delivery does not need).
FIREHOSE_BUCKET_ACTIONS = ("s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads")
FIREHOSE_OBJECT_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")
# The api function: DuckDB lists the hour prefixes and gets their objects; Athena reads
# them with the caller's credentials too, and calls GetBucketLocation on both buckets.
READ_BUCKET_ACTIONS = ("s3:GetBucketLocation", "s3:ListBucket")
READ_OBJECT_ACTIONS = ("s3:GetObject",)
RESULTS_BUCKET_ACTIONS = (
    "s3:GetBucketLocation",
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
)
RESULTS_OBJECT_ACTIONS = (
    "s3:GetObject",  # GetQueryResults reads the result object as the caller
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)
ATHENA_QUERY_ACTIONS = (
    "athena:StartQueryExecution",
    "athena:GetQueryExecution",
    "athena:GetQueryResults",
    "athena:StopQueryExecution",
)
GLUE_READ_ACTIONS = ("glue:GetDatabase", "glue:GetTable", "glue:GetPartitions")

# S3 server access logs go to a bucket policy that admits logging.s3.amazonaws.com for
# this account's buckets only, rather than to the legacy LogDeliveryWrite ACL (which
# needs ACLs enabled on the log bucket). The flag is on for this construct's resources.
_ACCESS_LOGS_BY_POLICY_FLAG = "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"


def _integer(node: Node, key: str, default: int, *, low: int, high: int | None = None) -> int:
    value = node.try_get_context(key)
    if value is None:
        return default
    # `-c key=400` arrives as a string, cdk.json's "key": 400 as a number
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContextError(f"context {key!r} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ContextError(f"context {key!r} must be {bounds}, got {value}")
    return value


@dataclass(frozen=True)
class ArchiveContext:
    retention_days: int  # 0: kept forever
    buffer_seconds: int
    query_engine: str

    @classmethod
    def from_node(cls, node: Node) -> ArchiveContext:
        engine = node.try_get_context("query_engine")
        engine = QUERY_ENGINES[0] if engine is None else str(engine).strip().lower()
        if engine not in QUERY_ENGINES:
            raise ContextError(
                f"context 'query_engine' must be one of {QUERY_ENGINES}, got {engine!r}"
            )
        return cls(
            retention_days=_integer(node, "archive_retention_days", DEFAULT_RETENTION_DAYS, low=0),
            buffer_seconds=_integer(
                node,
                "archive_buffer_seconds",
                DEFAULT_BUFFER_SECONDS,
                low=0,
                high=MAX_BUFFER_SECONDS,
            ),
            query_engine=engine,
        )


def _private_bucket(
    scope: Construct,
    id: str,
    *,
    lifecycle_rules: list[s3.LifecycleRule],
    access_logs: s3.IBucket | None,
    access_logs_prefix: str | None = None,
) -> s3.Bucket:
    """A bucket nobody outside the account reaches: every public access blocked, ACLs
    off, TLS required, encrypted with S3-managed keys (see ``Archive``), kept when the
    stack is deleted (a bucket with objects cannot be deleted anyway)."""
    return s3.Bucket(
        scope,
        id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned=False,  # objects are written once and never replaced
        lifecycle_rules=lifecycle_rules,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=access_logs_prefix,
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )


def _abort_incomplete_uploads() -> s3.LifecycleRule:
    return s3.LifecycleRule(
        id="AbortIncompleteUploads",
        abort_incomplete_multipart_upload_after=cdk.Duration.days(INCOMPLETE_UPLOAD_DAYS),
    )


def _expire(id: str, days: int) -> s3.LifecycleRule:
    return s3.LifecycleRule(id=id, expiration=cdk.Duration.days(days))


class Archive(Construct):
    """``bucket`` (the archive), ``stream`` (the Firehose delivery stream, L1) with
    ``stream_name`` and ``stream_arn``, ``database_name``, ``table_name`` (Glue),
    ``workgroup_name`` (Athena), ``results_bucket`` (Athena's results), ``access_logs``
    (S3 server access logs of both), ``log_group`` (Firehose's delivery errors),
    ``role`` (assumed by Firehose), ``context`` (the settings above).

    ``grant_write`` lets a function put records into the stream, ``grant_query`` lets it
    read the archive and run Athena queries; each also tells the function the names it
    needs, and no others.

    Encryption: S3-managed keys (SSE-S3) on every bucket and an AWS owned key on the
    stream, as for the queues and tables (decisions D11): no key policy to get wrong, no
    KMS request per object that DuckDB or Athena reads, no kms:Decrypt to grant to every
    reader; and S3 server access logs can only be delivered to an SSE-S3 bucket.

    Names: the Glue database, its table and the Athena workgroup take their names from
    ``nudge.constants``, like the schedule group: one nudge stack per account and region
    (decisions D14). The CLI finds them through the stack's outputs.
    """

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.node.set_context(_ACCESS_LOGS_BY_POLICY_FLAG, True)  # before any child
        stack = cdk.Stack.of(self)
        self.context = ArchiveContext.from_node(self.node)

        # --- buckets ------------------------------------------------------------------
        self.access_logs = _private_bucket(
            self,
            "AccessLogs",
            lifecycle_rules=[
                _abort_incomplete_uploads(),
                _expire("ExpireAccessLogs", ACCESS_LOG_RETENTION_DAYS),
            ],
            access_logs=None,  # the log target itself (cdk-nag S1 accepts it as such)
        )
        archive_rules = [_abort_incomplete_uploads()]
        if self.context.retention_days:
            archive_rules.append(_expire("ExpireArchive", self.context.retention_days))
        self.bucket = _private_bucket(
            self,
            "Bucket",
            lifecycle_rules=archive_rules,
            access_logs=self.access_logs,
            access_logs_prefix=f"{C.ARCHIVE}/",
        )
        self.results_bucket = _private_bucket(
            self,
            "ResultsBucket",
            lifecycle_rules=[
                _abort_incomplete_uploads(),
                _expire("ExpireResults", RESULTS_RETENTION_DAYS),
            ],
            access_logs=self.access_logs,
            access_logs_prefix="results/",
        )

        # --- the delivery stream -------------------------------------------------------
        self.log_group = logs.LogGroup(
            self,
            "DeliveryLogs",
            retention=LOG_RETENTION,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        log_stream = logs.LogStream(
            self,
            "DeliveryLogStream",
            log_group=self.log_group,
            log_stream_name="S3Delivery",
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "DeliveryRole",
            description="Assumed by Kinesis Data Firehose to deliver the nudge event archive",
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com",
                # Confused-deputy guard: Firehose passes the account id as external id.
                conditions={"StringEquals": {"sts:ExternalId": stack.account}},
            ),
        )
        iam.Grant.add_to_principal(
            grantee=self.role,
            actions=list(FIREHOSE_BUCKET_ACTIONS),
            resource_arns=[self.bucket.bucket_arn],
        )
        for prefix in (C.ARCHIVE_PREFIX, C.ARCHIVE_ERROR_PREFIX):
            self.bucket.grants.actions_on_object_keys(
                self.role, f"{prefix}*", *FIREHOSE_OBJECT_ACTIONS
            )
        self.log_group.grant(self.role, "logs:PutLogEvents")
        self._acknowledge_objects(
            self.role,
            self.bucket,
            (C.ARCHIVE_PREFIX, C.ARCHIVE_ERROR_PREFIX),
            reason=(
                "Firehose names every object it delivers at run time (hour prefix, stream "
                "name, timestamp, random suffix), so its PutObject and AbortMultipartUpload "
                "can only name key patterns: confined to the events/ and errors/ prefixes of "
                "the archive bucket, with no read or delete."
            ),
        )

        self.stream = firehose.CfnDeliveryStream(
            self,
            "Stream",
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="AWS_OWNED_CMK"
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.bucket.bucket_arn,
                role_arn=self.role.role_arn,
                prefix=DATA_PREFIX,
                error_output_prefix=ERROR_PREFIX,
                compression_format="GZIP",
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=self.context.buffer_seconds,
                    size_in_m_bs=BUFFER_SIZE_MB,
                ),
                # No encryption_configuration: objects take the bucket's default (SSE-S3).
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True,
                    log_group_name=self.log_group.log_group_name,
                    log_stream_name=log_stream.log_stream_name,
                ),
            ),
        )
        # Firehose checks its role's permissions when the stream is created: the stream
        # waits for the role's policy (the role itself it references already).
        policy = self.role.node.find_child("DefaultPolicy")
        self.stream.node.add_dependency(policy)
        self.stream_name: str = self.stream.ref
        self.stream_arn: str = self.stream.attr_arn

        # --- Glue table over the objects ------------------------------------------------
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=stack.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=C.GLUE_DATABASE,
                description="nudge: the event archive (Firehose to S3), for Athena",
            ),
        )
        location = f"s3://{self.bucket.bucket_name}/{C.ARCHIVE_PREFIX}"
        self.table = glue.CfnTable(
            self,
            "EventsTable",
            catalog_id=stack.account,
            database_name=self.database.ref,  # its name, and a dependency on it
            table_input=glue.CfnTable.TableInputProperty(
                name=C.GLUE_EVENTS_TABLE,
                description="One row per archived event line (nudge.domain.archive)",
                table_type="EXTERNAL_TABLE",
                partition_keys=[glue.CfnTable.ColumnProperty(name="dt", type="string")],
                parameters={
                    "EXTERNAL": "TRUE",
                    "classification": "json",
                    "compressionType": "gzip",
                    # Partitions are projected from the hour prefixes: no crawler, no
                    # MSCK REPAIR, and a query names the hours it reads.
                    "projection.enabled": "true",
                    "projection.dt.type": "date",
                    "projection.dt.format": "yyyy/MM/dd/HH",
                    "projection.dt.range": f"{PROJECTION_START},NOW",
                    "projection.dt.interval": "1",
                    "projection.dt.interval.unit": "HOURS",
                    # ${dt} is Athena's, not CloudFormation's: escaped as ${!dt} in Fn::Sub.
                    "storage.location.template": cdk.Fn.sub(
                        "s3://${Bucket}/" + C.ARCHIVE_PREFIX + "${!dt}/",
                        {"Bucket": self.bucket.bucket_name},
                    ),
                },
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=location,
                    input_format=TEXT_INPUT_FORMAT,
                    output_format=TEXT_OUTPUT_FORMAT,
                    compressed=True,
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library=JSON_SERDE,
                        parameters={"ignore.malformed.json": "true"},
                    ),
                    # The same list the writer and the DuckDB reader are built from.
                    columns=[
                        glue.CfnTable.ColumnProperty(name=name, type=glue_type)
                        for name, _duckdb_type, glue_type in ARCHIVE_COLUMNS
                    ],
                ),
            ),
        )

        # --- Athena ---------------------------------------------------------------------
        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=C.ATHENA_WORKGROUP,
            description="nudge: SQL over the event archive",
            state="ENABLED",
            recursive_delete_option=True,  # its query history goes with the stack
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,  # no client-side results location
                publish_cloud_watch_metrics_enabled=True,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self.results_bucket.bucket_name}/{RESULTS_PREFIX}",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                ),
            ),
        )

        # Refs (the same names as the constants): whoever uses them depends on them.
        self.database_name: str = self.database.ref
        self.table_name: str = self.table.ref
        self.workgroup_name: str = self.workgroup.ref

        self.writer_environment = {C.ENV_ARCHIVE_STREAM: self.stream_name}
        self.reader_environment = {
            C.ENV_ARCHIVE_BUCKET: self.bucket.bucket_name,
            C.ENV_QUERY_ENGINE: self.context.query_engine,
            C.ENV_ATHENA_WORKGROUP: self.workgroup_name,
            C.ENV_GLUE_DATABASE: self.database_name,
        }

    # --- ARNs ---------------------------------------------------------------------------

    def workgroup_arn(self) -> str:
        return cdk.Stack.of(self).format_arn(
            service="athena", resource="workgroup", resource_name=self.workgroup_name
        )

    def glue_arns(self) -> list[str]:
        """The catalog, the database and the events table (Athena checks all three)."""
        stack = cdk.Stack.of(self)
        return [
            stack.format_arn(service="glue", resource="catalog"),
            stack.format_arn(service="glue", resource="database", resource_name=self.database_name),
            stack.format_arn(
                service="glue",
                resource="table",
                resource_name=f"{self.database_name}/{self.table_name}",
            ),
        ]

    # --- grants -------------------------------------------------------------------------

    def grant_write(self, fn: NudgeFunction) -> iam.Grant:
        """Put records into the stream (PutRecord, PutRecordBatch on it only), and tell
        the function its name."""
        for key, value in self.writer_environment.items():
            fn.function.add_environment(key, value)
        return firehose.DeliveryStreamGrants.from_delivery_stream(self.stream).put_records(
            fn.function
        )

    def grant_erase(self, fn: NudgeFunction) -> None:
        """List an erased user's id (DELETE /v1/users/{id}): one object each under
        `erased/`, which every query then leaves out (nudge.adapters.erased)."""
        self.bucket.grants.actions_on_object_keys(fn.function, f"{ERASED_PREFIX}*", "s3:PutObject")
        self._acknowledge_objects(
            fn.role,
            self.bucket,
            (ERASED_PREFIX,),
            reason=(
                "Each erased id is one object named by the id's SHA-256 under erased/, "
                "known only when a user is erased: PutObject is confined to that prefix, "
                "never the archived events (events/) nor a delete."
            ),
        )

    def grant_query(self, fn: NudgeFunction) -> None:
        """Read the archived events (DuckDB in the function, or Athena as the function),
        run queries in the workgroup and keep their results, and tell the function the
        bucket, workgroup, database and engine."""
        for key, value in self.reader_environment.items():
            fn.function.add_environment(key, value)
        grantee = fn.function
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(READ_BUCKET_ACTIONS),
            resource_arns=[self.bucket.bucket_arn],
        )
        self.bucket.grants.actions_on_object_keys(
            grantee, f"{C.ARCHIVE_PREFIX}*", *READ_OBJECT_ACTIONS
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(RESULTS_BUCKET_ACTIONS),
            resource_arns=[self.results_bucket.bucket_arn],
        )
        self.results_bucket.grants.actions_on_object_keys(
            grantee, f"{RESULTS_PREFIX}*", *RESULTS_OBJECT_ACTIONS
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(ATHENA_QUERY_ACTIONS),
            resource_arns=[self.workgroup_arn()],
        )
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(GLUE_READ_ACTIONS), resource_arns=self.glue_arns()
        )
        self._acknowledge_objects(
            fn.role,
            self.bucket,
            (C.ARCHIVE_PREFIX,),
            reason=(
                "Archived objects are named by Firehose at delivery time, one or more per "
                "hour, so reading them can only name a key pattern: GetObject is confined "
                "to the events/ prefix of the archive bucket (not its errors/), with no "
                "write or delete."
            ),
        )
        self._acknowledge_objects(
            fn.role,
            self.results_bucket,
            (RESULTS_PREFIX,),
            reason=(
                "Athena names each query's result objects by query execution id at run "
                "time, and reads them back as the caller; the wildcard is confined to the "
                "athena-results/ prefix of the results bucket, whose objects expire after "
                "a week."
            ),
        )

    @staticmethod
    def _acknowledge_objects(
        principal: iam.IRole, bucket: s3.Bucket, prefixes: tuple[str, ...], *, reason: str
    ) -> None:
        """cdk-nag names a wildcard on a bucket's objects by the bucket's logical id
        (``<LogicalId.Arn>/events/*``): acknowledged for exactly those key patterns."""
        stack = cdk.Stack.of(bucket)
        cfn_bucket = bucket.node.default_child
        assert isinstance(cfn_bucket, s3.CfnBucket)
        logical_id = stack.resolve(stack.get_logical_id(cfn_bucket))
        for prefix in prefixes:
            cdk.Validations.of(principal).acknowledge(
                cdk.Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{prefix}*]",
                    reason=reason,
                )
            )
