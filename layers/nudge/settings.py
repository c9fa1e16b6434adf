"""Configuration of each function, validated once at cold start (fail fast on a missing
variable instead of silently defaulting)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from nudge import constants as C


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)


class AwsSettings(_Base):
    """boto3's own variables, read by every client and table binding
    (nudge.adapters.aws, nudge.adapters.tables): the region (AWS_REGION as Lambda sets
    it, else AWS_DEFAULT_REGION, else us-east-1) and the endpoint (AWS_ENDPOINT_URL:
    local mode's moto server; unset on AWS)."""

    aws_region: str = Field("", alias="AWS_REGION")
    aws_default_region: str = Field("", alias="AWS_DEFAULT_REGION")
    endpoint_url: str | None = Field(None, alias="AWS_ENDPOINT_URL")

    @property
    def region(self) -> str:
        return self.aws_region or self.aws_default_region or "us-east-1"


class TableSettings(_Base):
    """The table names the environment sets, each optional: what a caller without a
    function's settings binds the tables to (local mode's tools, the moto tests). A
    function passes its own validated names to its adapters instead."""

    profiles: str = Field("", alias=C.ENV_PROFILES_TABLE)
    keys: str = Field("", alias=C.ENV_KEYS_TABLE)
    deliveries: str = Field("", alias=C.ENV_DELIVERIES_TABLE)
    inbox: str = Field("", alias=C.ENV_INBOX_TABLE)
    suppressions: str = Field("", alias=C.ENV_SUPPRESSIONS_TABLE)
    timers: str = Field("", alias=C.ENV_TIMERS_TABLE)
    dedup: str = Field("", alias=C.ENV_DEDUP_TABLE)

    def names(self) -> dict[str, str]:
        """Logical table name (nudge.constants) → table name, for those set."""
        named = {
            C.PROFILES: self.profiles,
            C.KEYS: self.keys,
            C.DELIVERIES: self.deliveries,
            C.INBOX: self.inbox,
            C.SUPPRESSIONS: self.suppressions,
            C.TIMERS: self.timers,
            C.DEDUP: self.dedup,
        }
        return {logical: name for logical, name in named.items() if name}


class IngestSettings(_Base):
    events_queue_url: str = Field(alias=C.ENV_EVENTS_QUEUE_URL)
    keys_table: str = Field(alias=C.ENV_KEYS_TABLE)
    rate_limit_per_second: float = Field(
        C.DEFAULT_RATE_LIMIT_PER_SECOND, alias=C.ENV_RATE_LIMIT, gt=0
    )
    # the tracking plan (a folder of YAML; missing: no plan) and where its violations go
    tracking_plan_path: str = Field("", alias=C.ENV_TRACKING_PLAN_PATH)
    archive_stream: str = Field("", alias=C.ENV_ARCHIVE_STREAM)


class CheckSettings(_Base):
    """The check function (EventBridge Scheduler target): a minute bucket came due; its
    timers go to their users' FIFO groups on the events queue."""

    timers_table: str = Field(alias=C.ENV_TIMERS_TABLE)
    events_queue_url: str = Field(alias=C.ENV_EVENTS_QUEUE_URL)


class ProcessSettings(_Base):
    """The process function: fold events and timers, run the engine, arm wake-ups."""

    profiles_table: str = Field(alias=C.ENV_PROFILES_TABLE)
    dedup_table: str = Field(alias=C.ENV_DEDUP_TABLE)  # heavy users' fingerprints (D42)
    timers_table: str = Field(alias=C.ENV_TIMERS_TABLE)
    events_dlq_url: str = Field(alias=C.ENV_EVENTS_DLQ_URL)
    # the events queue's maxReceiveCount: a record failing on that receive is dead-lettered
    max_receive_count: int = Field(alias=C.ENV_EVENTS_MAX_RECEIVE_COUNT, ge=1, le=1000)
    actions_queue_url: str = Field(alias=C.ENV_ACTIONS_QUEUE_URL)
    triggers_path: str = Field(alias=C.ENV_TRIGGERS_PATH)
    archive_stream: str = Field(alias=C.ENV_ARCHIVE_STREAM)


class ApiSettings(_Base):
    profiles_table: str = Field(alias=C.ENV_PROFILES_TABLE)
    keys_table: str = Field(alias=C.ENV_KEYS_TABLE)
    deliveries_table: str = Field(alias=C.ENV_DELIVERIES_TABLE)
    inbox_table: str = Field(alias=C.ENV_INBOX_TABLE)
    unsubscribe_secret_arn: str = Field(alias=C.ENV_UNSUBSCRIBE_SECRET_ARN)
    openapi_path: str = Field(alias=C.ENV_OPENAPI_PATH)  # docs/openapi.json, as shipped
    apns_application_arn: str = Field("", alias=C.ENV_APNS_APPLICATION_ARN)
    fcm_application_arn: str = Field("", alias=C.ENV_FCM_APPLICATION_ARN)
    # The event archive (reports): "" where there is none (local mode without one).
    archive_bucket: str = Field("", alias=C.ENV_ARCHIVE_BUCKET)
    query_engine: str = Field("duckdb", alias=C.ENV_QUERY_ENGINE, pattern="^(duckdb|athena)$")
    athena_workgroup: str = Field("", alias=C.ENV_ATHENA_WORKGROUP)
    glue_database: str = Field("", alias=C.ENV_GLUE_DATABASE)
    # The definitions (experiments are on triggers): "" where none are bundled.
    triggers_path: str = Field("", alias=C.ENV_TRIGGERS_PATH)
    archive_cache_dir: str = Field("", alias=C.ENV_ARCHIVE_CACHE_DIR)
    # Where in-app reads and unsubscribes are archived: "" where there is no archive.
    archive_stream: str = Field("", alias=C.ENV_ARCHIVE_STREAM)
    # the train function's artifacts (recommendations, catalog); "" before there are any
    models_bucket: str = Field("", alias=C.ENV_MODELS_BUCKET)
    models_cache_seconds: float = Field(300.0, alias=C.ENV_MODELS_CACHE_SECONDS, ge=0)
    # What DELETE /v1/users/{id} also clears: "" where the function has no such table.
    # The timers table also keeps the dead-letter entries (GET /v1/reports/dead-letters).
    timers_table: str = Field("", alias=C.ENV_TIMERS_TABLE)
    # the dead-letter queues whose sizes that route gives ("": the route answers 503)
    events_dlq_url: str = Field("", alias=C.ENV_EVENTS_DLQ_URL)
    actions_dlq_url: str = Field("", alias=C.ENV_ACTIONS_DLQ_URL)
    suppressions_table: str = Field("", alias=C.ENV_SUPPRESSIONS_TABLE)
    dedup_table: str = Field("", alias=C.ENV_DEDUP_TABLE)


class DeliverSettings(_Base):
    """The deliver function (actions queue)."""

    profiles_table: str = Field(alias=C.ENV_PROFILES_TABLE)
    deliveries_table: str = Field(alias=C.ENV_DELIVERIES_TABLE)
    inbox_table: str = Field(alias=C.ENV_INBOX_TABLE)
    suppressions_table: str = Field(alias=C.ENV_SUPPRESSIONS_TABLE)
    actions_queue_arn: str = Field(alias=C.ENV_ACTIONS_QUEUE_ARN)
    actions_dlq_url: str = Field(alias=C.ENV_ACTIONS_DLQ_URL)
    # the actions queue's maxReceiveCount, and where dead-letter entries go (D40)
    max_receive_count: int = Field(alias=C.ENV_ACTIONS_MAX_RECEIVE_COUNT, ge=1, le=1000)
    timers_table: str = Field(alias=C.ENV_TIMERS_TABLE)
    schedule_group: str = Field(alias=C.ENV_SCHEDULE_GROUP)
    scheduler_role_arn: str = Field(alias=C.ENV_SCHEDULER_ROLE_ARN)
    scheduler_dlq_arn: str = Field(alias=C.ENV_SCHEDULER_DLQ_ARN)
    sender_email: str = Field(alias=C.ENV_SENDER_EMAIL)
    ses_configuration_set: str = Field(alias=C.ENV_SES_CONFIGURATION_SET)
    unsubscribe_secret_arn: str = Field(alias=C.ENV_UNSUBSCRIBE_SECRET_ARN)
    public_url: str = Field(alias=C.ENV_PUBLIC_URL)
    app_url: str = Field("", alias=C.ENV_APP_URL)
    templates_path: str = Field(alias=C.ENV_TEMPLATES_PATH)
    config_path: str = Field(alias=C.ENV_CONFIG_PATH)
    sms_type: str = Field(
        "Transactional", alias=C.ENV_SMS_TYPE, pattern="^(Transactional|Promotional)$"
    )
    archive_stream: str = Field(alias=C.ENV_ARCHIVE_STREAM)  # each outcome is archived
    # the train function's artifacts (the catalog for templates); "" before there are any
    models_bucket: str = Field("", alias=C.ENV_MODELS_BUCKET)
    models_cache_seconds: float = Field(300.0, alias=C.ENV_MODELS_CACHE_SECONDS, ge=0)


class FeedbackSettings(_Base):
    """The feedback function (SES event notifications through SNS: bounces and
    complaints suppress; every event is archived and confirms its email's send)."""

    suppressions_table: str = Field(alias=C.ENV_SUPPRESSIONS_TABLE)
    deliveries_table: str = Field(alias=C.ENV_DELIVERIES_TABLE)  # `unconfirmed` → `sent`
    archive_stream: str = Field(alias=C.ENV_ARCHIVE_STREAM)  # opens, clicks... archived


class QuerySettings(_Base):
    """SQL over the event archive (the `nudge sql` command and whatever serves queries):
    DuckDB over the bucket's objects with a local cache (the default), or Athena over
    the Glue table. Each engine's own settings are required when it is chosen."""

    engine: Literal["duckdb", "athena"] = Field("duckdb", alias=C.ENV_QUERY_ENGINE)
    archive_bucket: str = Field("", alias=C.ENV_ARCHIVE_BUCKET)
    archive_cache_dir: str = Field("", alias=C.ENV_ARCHIVE_CACHE_DIR)
    athena_workgroup: str = Field("", alias=C.ENV_ATHENA_WORKGROUP)
    glue_database: str = Field("", alias=C.ENV_GLUE_DATABASE)

    @model_validator(mode="after")
    def _engine_settings(self) -> QuerySettings:
        needed = (
            {
                C.ENV_ARCHIVE_BUCKET: self.archive_bucket,
                C.ENV_ARCHIVE_CACHE_DIR: self.archive_cache_dir,
            }
            if self.engine == "duckdb"
            else {
                C.ENV_ATHENA_WORKGROUP: self.athena_workgroup,
                C.ENV_GLUE_DATABASE: self.glue_database,
            }
        )
        missing = [name for name, value in needed.items() if not value]
        if missing:
            raise ValueError(f"the {self.engine} query engine needs {', '.join(missing)}")
        return self


class TrainSettings(_Base):
    """The train function (a recurring EventBridge Scheduler schedule): reads the profiles
    and the archive, writes its artifacts under models/ and the users' scores."""

    profiles_table: str = Field(alias=C.ENV_PROFILES_TABLE)
    archive_bucket: str = Field(alias=C.ENV_ARCHIVE_BUCKET)
    models_bucket: str = Field(alias=C.ENV_MODELS_BUCKET)
    window_days: int = Field(90, alias=C.ENV_TRAIN_WINDOW_DAYS, ge=1, le=3660)
    k_min: int = Field(2, alias=C.ENV_SEGMENTS_K_MIN, ge=1, le=50)
    k_max: int = Field(8, alias=C.ENV_SEGMENTS_K_MAX, ge=1, le=50)

    @model_validator(mode="after")
    def _k_range(self) -> TrainSettings:
        if self.k_max < self.k_min:
            raise ValueError(
                f"{C.ENV_SEGMENTS_K_MAX} ({self.k_max}) is below {C.ENV_SEGMENTS_K_MIN} ({self.k_min})"
            )
        return self
