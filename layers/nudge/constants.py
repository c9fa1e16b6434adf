"""Names shared by the code, local mode and the CDK app, so that they cannot drift.

Physical names are only used in local mode; on AWS CloudFormation names resources and
passes them to the functions through the environment variables named here.
"""

from __future__ import annotations

SERVICE = "nudge"
METRICS_NAMESPACE = "Nudge"
# Metrics with per-value dimensions (nudge.observability.count_by), read by the CloudWatch
# dashboard and alarms. Each dimension is bounded: trigger ids by the definitions,
# channels and delivery statuses by their enums (never a user, product or free text).
TRIGGER_FIRED = "TriggerFired"  # per trigger_id: episodes sent on to delivery
DELIVERIES = "Deliveries"  # per channel and status
DIM_TRIGGER = "trigger_id"
DIM_CHANNEL = "channel"
DIM_STATUS = "status"

# Environment variables read by the functions (validated by nudge.settings).
ENV_PROFILES_TABLE = "NUDGE_PROFILES_TABLE"
ENV_KEYS_TABLE = "NUDGE_KEYS_TABLE"
ENV_DELIVERIES_TABLE = "NUDGE_DELIVERIES_TABLE"
ENV_INBOX_TABLE = "NUDGE_INBOX_TABLE"
ENV_SUPPRESSIONS_TABLE = "NUDGE_SUPPRESSIONS_TABLE"
ENV_TIMERS_TABLE = "NUDGE_TIMERS_TABLE"
ENV_DEDUP_TABLE = "NUDGE_DEDUP_TABLE"
ENV_SENDER_EMAIL = "NUDGE_SENDER_EMAIL"
ENV_SES_CONFIGURATION_SET = "NUDGE_SES_CONFIGURATION_SET"
ENV_UNSUBSCRIBE_SECRET_ARN = "NUDGE_UNSUBSCRIBE_SECRET_ARN"
ENV_PUBLIC_URL = "NUDGE_PUBLIC_URL"
ENV_APP_URL = "NUDGE_APP_URL"
ENV_APNS_APPLICATION_ARN = "NUDGE_APNS_APPLICATION_ARN"
ENV_FCM_APPLICATION_ARN = "NUDGE_FCM_APPLICATION_ARN"
ENV_ACTIONS_QUEUE_ARN = "NUDGE_ACTIONS_QUEUE_ARN"
ENV_SMS_TYPE = "NUDGE_SMS_TYPE"
ENV_EVENTS_QUEUE_URL = "NUDGE_EVENTS_QUEUE_URL"
ENV_EVENTS_DLQ_URL = "NUDGE_EVENTS_DLQ_URL"
ENV_ACTIONS_QUEUE_URL = "NUDGE_ACTIONS_QUEUE_URL"
ENV_ACTIONS_DLQ_URL = "NUDGE_ACTIONS_DLQ_URL"
# the queues' redrive maxReceiveCount, told to their consumers: a record that fails on
# that receive is moved to the DLQ by SQS, so the consumer records it (D40)
ENV_EVENTS_MAX_RECEIVE_COUNT = "NUDGE_EVENTS_MAX_RECEIVE_COUNT"
ENV_ACTIONS_MAX_RECEIVE_COUNT = "NUDGE_ACTIONS_MAX_RECEIVE_COUNT"
ENV_SCHEDULE_GROUP = "NUDGE_SCHEDULE_GROUP"
ENV_SCHEDULER_ROLE_ARN = "NUDGE_SCHEDULER_ROLE_ARN"
ENV_SCHEDULER_DLQ_ARN = "NUDGE_SCHEDULER_DLQ_ARN"
ENV_RATE_LIMIT = "NUDGE_RATE_LIMIT_PER_SECOND"
ENV_TRIGGERS_PATH = "NUDGE_TRIGGERS_PATH"
ENV_TRACKING_PLAN_PATH = "NUDGE_TRACKING_PLAN_PATH"  # tracking-plan/ (none: nothing checked)
ENV_TEMPLATES_PATH = "NUDGE_TEMPLATES_PATH"
ENV_CONFIG_PATH = "NUDGE_CONFIG_PATH"
ENV_OPENAPI_PATH = "NUDGE_OPENAPI_PATH"  # the OpenAPI document the api function serves
ENV_ARCHIVE_STREAM = "NUDGE_ARCHIVE_STREAM"  # Firehose delivery stream (the writer)
ENV_ARCHIVE_BUCKET = "NUDGE_ARCHIVE_BUCKET"  # its S3 destination (the readers)
ENV_QUERY_ENGINE = "NUDGE_QUERY_ENGINE"  # duckdb (default) | athena
ENV_ATHENA_WORKGROUP = "NUDGE_ATHENA_WORKGROUP"
ENV_GLUE_DATABASE = "NUDGE_GLUE_DATABASE"
ENV_ARCHIVE_CACHE_DIR = "NUDGE_ARCHIVE_CACHE_DIR"  # where DuckDB's copies of objects live
ENV_MODELS_BUCKET = "NUDGE_MODELS_BUCKET"  # the train function's artifacts (under models/)
ENV_MODELS_CACHE_SECONDS = "NUDGE_MODELS_CACHE_SECONDS"  # how long a reader keeps a copy
ENV_TRAIN_WINDOW_DAYS = "NUDGE_TRAIN_WINDOW_DAYS"  # days of the archive a train run reads
ENV_SEGMENTS_K_MIN = "NUDGE_SEGMENTS_K_MIN"  # the range k-means' k is chosen in
ENV_SEGMENTS_K_MAX = "NUDGE_SEGMENTS_K_MAX"
ENV_TRAIN_SCHEDULE = "NUDGE_TRAIN_SCHEDULE"  # local mode: the recurring schedule's rate

# Logical names: local physical names and CDK construct ids derive from these.
PROFILES = "profiles"
KEYS = "keys"
DELIVERIES = "deliveries"
INBOX = "inbox"
SUPPRESSIONS = "suppressions"
TIMERS = "timers"
DEDUP = "dedup"  # the fingerprints heavy users' profiles moved out (docs/decisions.md D42)
EVENTS_QUEUE = "events"
ACTIONS_QUEUE = "actions"
SCHEDULE_GROUP = "nudge-triggers"

# Functions (the folder under functions/ and the CDK id).
FN_INGEST = "ingest"
FN_PROCESS = "process"
FN_API = "api"
FN_CHECK = "check"
FN_DELIVER = "deliver"
FN_FEEDBACK = "feedback"
FN_TRAIN = "train"

# Queue behaviour shared by the stack and local mode.
EVENTS_MAX_RECEIVE_COUNT = 5
ACTIONS_MAX_RECEIVE_COUNT = 5
EVENTS_VISIBILITY_TIMEOUT_S = 60
PROCESS_BATCH_SIZE = 10
# How long a dead-letter queue keeps a message (the SQS maximum), and so how long its
# dead-letter entry is kept (an item type of the timers table, expiring by TTL: D40).
DEAD_LETTER_RETENTION_DAYS = 14

# Ingest limits (Segment's HTTP Tracking API).
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
DEFAULT_RATE_LIMIT_PER_SECOND = 1000
DEDUP_WINDOW_SECONDS = 25 * 3600  # docs/api.md: "at least 24 hours"

# CORS of the HTTP API, answered by API Gateway on AWS and by `nudge dev` locally: browsers
# post from customers' pages. analytics.js sends no cookies (any origin may post), an
# Authorization header (so every post is preflighted), X-Retry-Count on retries, and
# reads Retry-After on a 429.
CORS_ALLOW_ORIGINS = ("*",)
CORS_ALLOW_METHODS = ("GET", "POST", "DELETE")
CORS_ALLOW_HEADERS = ("Authorization", "Content-Type", "Content-Encoding", "X-Retry-Count")
CORS_EXPOSE_HEADERS = ("Retry-After",)
CORS_MAX_AGE_SECONDS = 3600
# analytics.js may keep its settings this long (a page load fetches them once)
BROWSER_SETTINGS_MAX_AGE_SECONDS = 300

# Wake-ups: timers are filed in minute buckets of the wake-up index, which one recurring
# schedule sweeps every minute (docs/decisions.md D49)
WAKE_UP_BUCKET_SECONDS = 60
WAKE_UP_SWEEP_SCHEDULE = "nudge-wake-up-sweep"  # in SCHEDULE_GROUP
WAKE_UP_SWEEP_EXPRESSION = "cron(* * * * ? *)"  # at second 0 of every minute, UTC
# what Scheduler hands the check function: the minute it was meant to run (a context
# attribute Scheduler fills in, e.g. 2026-12-02T05:21:00Z); a retry carries the same one
SCHEDULED_TIME_ATTRIBUTE = "<aws.scheduler.scheduled-time>"
WAKE_UP_SWEEP_INPUT = '{"scheduled_time": "' + SCHEDULED_TIME_ATTRIBUTE + '"}'
WAKE_UP_SWEEP_DESCRIPTION = "Every minute: the check function sweeps that minute's trigger timers"
# Scheduler's own retries of handing a target its event (the sweep, a deferred delivery),
# then the target's dead-letter queue
SCHEDULE_RETRY_ATTEMPTS = 10
SCHEDULE_MAX_EVENT_AGE_S = 86_400
WAKE_UP_MIN_LEAD_SECONDS = 5  # never add a timer to a bucket that is about to fire
WAKE_UP_INDEX_TTL_DAYS = 2

# Event archive (Firehose -> S3, SQL with DuckDB or Athena)
ARCHIVE = "archive"  # local stream name nudge-archive, bucket nudge-archive-<account>
ARCHIVE_PREFIX = "events/"  # Firehose appends YYYY/MM/DD/HH/ (arrival time, UTC)
ARCHIVE_ERROR_PREFIX = "errors/"

# Training (the train function's artifacts and its recurring schedule)
MODELS_PREFIX = "models/"  # of the archive bucket: models/<name>.json.gz
TRAIN_SCHEDULE_GROUP = "nudge-training"  # apart from the triggers' sweep and deferrals
TRAIN_SCHEDULE_NAME = "nudge-train"
DEFAULT_TRAIN_SCHEDULE = "rate(1 hour)"
ARCHIVE_RECORD_MAX_BYTES = 1000 * 1024  # Firehose's limit per record (before base64)
ARCHIVE_BATCH_MAX_RECORDS = 500  # PutRecordBatch limits
ARCHIVE_BATCH_MAX_BYTES = 4 * 1024 * 1024
GLUE_DATABASE = "nudge"
GLUE_EVENTS_TABLE = "events"
ATHENA_WORKGROUP = "nudge"

# Delivery
DELIVERY_LOG_TTL_DAYS = 90
INBOX_TTL_DAYS = 30
SES_CONFIGURATION_SET = "nudge"
UNSUBSCRIBE_SECRET_NAME = "nudge/unsubscribe-signing-key"

# Sessions (Segment / Amplitude convention).
SESSION_TIMEOUT_SECONDS = 30 * 60


def local_table_name(logical: str) -> str:
    return f"nudge-{logical}"


def local_queue_name(logical: str, *, dlq: bool = False) -> str:
    return f"nudge-{logical}{'-dlq' if dlq else ''}.fifo"


# The train run's validation of the recommender (nudge.learn.train.items_step): HR@10 of
# the candidate on the most recent day, and 1 when it scored below the model in service
# (kept: the monitoring construct alarms on it)
RECS_HIT_RATE = "RecsHitRate"
RECS_REJECTED = "RecsModelRejected"
