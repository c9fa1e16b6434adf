"""Configuration of each function, validated once at cold start (fail fast on a missing
variable instead of silently defaulting)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from nudge import constants as C


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)


class IngestSettings(_Base):
    events_queue_url: str = Field(alias=C.ENV_EVENTS_QUEUE_URL)
    keys_table: str = Field(alias=C.ENV_KEYS_TABLE)
    rate_limit_per_second: float = Field(C.DEFAULT_RATE_LIMIT_PER_SECOND, alias=C.ENV_RATE_LIMIT, gt=0)


class CheckSettings(_Base):
    """The check function (EventBridge Scheduler target)."""

    profiles_table: str = Field(alias=C.ENV_PROFILES_TABLE)
    actions_queue_url: str = Field(alias=C.ENV_ACTIONS_QUEUE_URL)
    schedule_group: str = Field(alias=C.ENV_SCHEDULE_GROUP)
    scheduler_role_arn: str = Field(alias=C.ENV_SCHEDULER_ROLE_ARN)
    check_function_arn: str = Field(alias=C.ENV_CHECK_FUNCTION_ARN)
    scheduler_dlq_arn: str = Field(alias=C.ENV_SCHEDULER_DLQ_ARN)
    triggers_path: str = Field(alias=C.ENV_TRIGGERS_PATH)


class ProcessSettings(CheckSettings):
    """The process function: what check needs, plus the events DLQ for poison messages."""

    events_dlq_url: str = Field(alias=C.ENV_EVENTS_DLQ_URL)


class ApiSettings(_Base):
    profiles_table: str = Field(alias=C.ENV_PROFILES_TABLE)
    keys_table: str = Field(alias=C.ENV_KEYS_TABLE)
    schedule_group: str = Field(alias=C.ENV_SCHEDULE_GROUP)
