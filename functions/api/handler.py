"""api: read and manage (admin key) — profiles, inbox, deliveries, devices, experiments;
plus the public unsubscribe endpoint (the signed token is the credential), /health, the
OpenAPI document and the dashboard's page and assets (no data in them: their data routes
need the admin key, docs/decisions.md D34). Each route declares its operation in that document (nudge.openapi)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from nudge import constants as C
from nudge import dashboard
from nudge import openapi as doc
from nudge.adapters.archive import FirehoseArchive
from nudge.adapters.delivery import DynamoDeliveryLog, DynamoInbox, SecretsManagerKey
from nudge.adapters.devices import SnsDevices
from nudge.adapters.erased import S3ErasedIds
from nudge.adapters.keys import DynamoKeyAdmin, DynamoKeyStore
from nudge.adapters.profiles import DynamoDedup, DynamoProfileStore
from nudge.domain import users
from nudge.domain.assignments import AnonymousAssignments
from nudge.domain.clock import Clock
from nudge.domain.cohorts import (
    GROUPINGS,
    MAX_NAME_CHARS,
    MAX_STEPS,
    PERIODS,
    CohortQuery,
    FunnelQuery,
    cohort_report,
    funnel_report,
    profile_segments,
)
from nudge.domain.dead_letters import DeadLetterLog, QueueDepths, dead_letters_report
from nudge.domain.delivery import DeliveryLog, deliveries_view
from nudge.domain.erase import (
    Devices,
    ErasedIds,
    EraseStores,
    Suppressions,
    Timers,
    UserRows,
    erase_user,
    tombstone_until,
)
from nudge.domain.errors import DependencyUnavailableError, NotFoundError, ValidationFailedError
from nudge.domain.events import Event, unstorable
from nudge.domain.experiment_report import experiment_report
from nudge.domain.export import ExportStores, export_user
from nudge.domain.inbox import inbox_view
from nudge.domain.ingest import KeyStore, decode_body
from nudge.domain.keys import KeyAdmin, key_request
from nudge.domain.outcomes import outcome_lines, read_event, unsubscribed_event
from nudge.domain.ports import (
    ArchiveWriter,
    DeviceRegistry,
    Inbox,
    ModelStore,
    ProfileStore,
    QueryEngine,
    SigningKey,
)
from nudge.domain.recommend import ItemModel, recommender
from nudge.domain.segments_report import SEGMENTS_ARTIFACT, TRAIN_RUN_ARTIFACT, segments_report
from nudge.domain.tracking import MAX_REPORT_DAYS, tracking_report
from nudge.domain.trigger_report import DEFAULT_DAYS, MAX_DAYS, triggers_report
from nudge.domain.triggers.durations import MAX_SECONDS
from nudge.domain.triggers.loader import TriggerSet
from nudge.domain.unsubscribe import confirmation_page, unsubscribed_page, verify_token
from nudge.http import (
    header,
    install_error_handlers,
    json_response,
    passed_deps,
    raw_body,
    require_admin,
    resolve,
)
from nudge.observability import logger, metrics, tracer
from nudge.runtime import clock
from nudge.settings import ApiSettings

app = APIGatewayHttpResolver()
install_error_handlers(app)


@dataclass
class Deps:
    """What the api function talks to. `from_settings` wires the AWS adapters once per
    cold start; a test passes in-memory ones (tests/fakes.py) to `handler`."""

    keys: KeyStore
    profiles: ProfileStore
    inbox: Inbox
    log: DeliveryLog
    unsubscribe_key: SigningKey
    devices: DeviceRegistry
    openapi_path: str
    clock: Clock
    # The trigger definitions (their experiments) and the event archive's query engine:
    # absent where the function has none (reports then answer 503).
    triggers_path: str = ""
    query: QueryEngine | None = None
    key_admin: KeyAdmin | None = None  # `/v1/keys` (absent: those routes answer 503)
    # Where in-app reads and unsubscribes are archived (None: nowhere).
    archive: ArchiveWriter | None = None
    # What DELETE /v1/users/{id} clears besides the profile, inbox and log (None: nothing)
    erase: EraseExtras | None = None
    # The recommendation model (the train function's artifact) and the product catalog
    # (item id -> name, price, category, url, image_url), each read once per cache
    # period by the callable; None until there is one (recommendations then come from the
    # profile alone).
    load_items: Callable[[], ItemModel | None] = lambda: None
    load_catalog: Callable[[], Mapping[str, Mapping[str, Any]] | None] = lambda: None
    # The artifact store itself (`GET /v1/reports/segments`; None: that route is a 503)
    models: ModelStore | None = None
    # The dead-letter entries and the DLQs' sizes (`GET /v1/reports/dead-letters`; None:
    # that route is a 503)
    dead_letter_log: DeadLetterLog | None = None
    dlq_depths: QueueDepths | None = None

    @classmethod
    def from_settings(cls, s: ApiSettings) -> Deps:
        c = clock()  # the process-wide clock: local mode installs a settable one
        keys = DynamoKeyStore(table=s.keys_table)
        # one erased list for erase and the query engine, so that the engine's cached copy
        # of it is dropped by an erase (it is listed again at once)
        erased = S3ErasedIds(s.archive_bucket) if s.archive_bucket else None
        return cls(
            keys=keys,
            profiles=DynamoProfileStore(table=s.profiles_table, clock=c),
            inbox=DynamoInbox(table=s.inbox_table),
            log=DynamoDeliveryLog(table=s.deliveries_table),
            unsubscribe_key=SecretsManagerKey(s.unsubscribe_secret_arn),
            devices=SnsDevices(apns_arn=s.apns_application_arn, fcm_arn=s.fcm_application_arn),
            openapi_path=s.openapi_path,
            clock=c,
            triggers_path=s.triggers_path,
            query=_archive_engine(s, erased),
            key_admin=DynamoKeyAdmin(table=s.keys_table, clock=c, cache=keys),
            archive=FirehoseArchive(s.archive_stream) if s.archive_stream else None,
            erase=_erase_extras(s, erased),
            **_model_readers(s),
            **_dead_letters(s),
        )


def _dead_letters(s: ApiSettings) -> dict[str, Any]:
    """The dead-letter entries (timers table) and the DLQs' sizes, when the function has
    the table and both queues (D40)."""
    if not (s.timers_table and s.events_dlq_url and s.actions_dlq_url):
        return {}
    from nudge.adapters.dead_letters import DynamoDeadLetterLog, SqsQueueDepths

    urls = {C.EVENTS_QUEUE: s.events_dlq_url, C.ACTIONS_QUEUE: s.actions_dlq_url}
    return {
        "dead_letter_log": DynamoDeadLetterLog(table=s.timers_table),
        "dlq_depths": SqsQueueDepths(urls),
    }


def _model_readers(s: ApiSettings) -> dict[str, Any]:
    """The train function's item model and catalog, each read at most once per cache
    period (none before the first training: recommendations come from the profile)."""
    if not s.models_bucket:
        return {}
    from nudge.adapters.models import model_readers

    store, items, catalog = model_readers(s.models_bucket, cache_seconds=s.models_cache_seconds)
    return {"load_items": items, "load_catalog": catalog, "models": store}


@dataclass
class EraseExtras:
    """The stores erase reaches beyond the profile, inbox and log."""

    timers: Timers | None = None
    devices: Devices | None = None
    suppressions: Suppressions | None = None
    archive: ErasedIds | None = None
    dedup: UserRows | None = None


def _erase_extras(s: ApiSettings, erased: S3ErasedIds | None) -> EraseExtras:
    from nudge.adapters.delivery import DynamoSuppressions
    from nudge.adapters.scheduler import WakeUps

    signing = SecretsManagerKey(s.unsubscribe_secret_arn)
    return EraseExtras(
        timers=WakeUps(table=s.timers_table) if s.timers_table else None,
        devices=SnsDevices(apns_arn=s.apns_application_arn, fcm_arn=s.fcm_application_arn),
        suppressions=DynamoSuppressions(table=s.suppressions_table, secret=signing.get)
        if s.suppressions_table
        else None,
        archive=erased,
        dedup=DynamoDedup(table=s.dedup_table) if s.dedup_table else None,
    )


def _archive_engine(s: ApiSettings, erased: S3ErasedIds | None) -> QueryEngine | None:
    """DuckDB over the archive bucket (or Athena), when the function has one, leaving out
    the ids on `erased`."""
    from nudge.adapters.query import query_engine
    from nudge.settings import QuerySettings

    if s.query_engine == "duckdb" and not s.archive_bucket:
        return None
    cache = s.archive_cache_dir or str(Path(tempfile.gettempdir()) / "nudge-archive")
    return query_engine(
        QuerySettings.model_validate(
            {
                C.ENV_QUERY_ENGINE: s.query_engine,
                C.ENV_ARCHIVE_BUCKET: s.archive_bucket,
                C.ENV_ARCHIVE_CACHE_DIR: cache,
                C.ENV_ATHENA_WORKGROUP: s.athena_workgroup,
                C.ENV_GLUE_DATABASE: s.glue_database,
            }
        ),
        erased=erased.digests if erased is not None else None,
    )


@cache
def deps() -> Deps:
    """The AWS adapters, built at cold start (local mode and tests clear the cache)."""
    return Deps.from_settings(ApiSettings())


def current() -> Deps:
    """The deps of this invocation: those passed to `handler`, else the cold start's."""
    passed: Deps | None = passed_deps(app)
    return passed if passed is not None else deps()


def admin() -> Deps:
    d = current()
    require_admin(d.keys, header(app.current_event.raw_event, "authorization"))
    return d


def archive(d: Deps, event: Event) -> None:
    """Archives what the user did (a read, an unsubscribe) without failing the request:
    the action is done, and a 5xx would only make a client repeat it (D33)."""
    if d.archive is None:
        return
    try:
        d.archive.write(outcome_lines([event]))
    except Exception as err:
        logger.warning("not archived", extra={"event": event.event, "error": repr(err)})


def known_user(d: Deps, user_id: str) -> str:
    users.profile_view(d.profiles, user_id, now=d.clock.now())  # 404 for an unknown user
    return user_id


ADMIN_ERRORS = (401, 403, 404)  # no key, the write key, an unknown user
DEVICE_BODY = 8 * 1024  # a device registration's body
MAX_DEVICE_TOKEN_BYTES = 1024  # kept in the profile (up to MAX_DEVICES of them)


@app.get(
    "/health",
    **doc.operation("health", "Liveness", tag=doc.SERVICE, returns="Health"),
)
def health() -> Any:
    return json_response({"status": "ok"})


@cache
def _openapi_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


@app.get(
    "/openapi.json",
    **doc.operation(
        "openapi",
        "This OpenAPI 3.1 document",
        tag=doc.SERVICE,
        returns={"type": "object", "description": "an OpenAPI 3.1 document"},
    ),
)
def openapi_document() -> Any:
    body = _openapi_text(current().openapi_path)
    return Response(status_code=200, content_type="application/json", body=body)


# Path parameters keep their public names (userId, messageId): the document shows them.
def user_operation(
    operation_id: str, summary: str, *, errors: Any = ADMIN_ERRORS, **kw: Any
) -> dict[str, Any]:
    """The OpenAPI description of a user route: the users tag, the admin key."""
    return doc.operation(
        operation_id, summary, tag=doc.USERS, errors=errors, auth=doc.ADMIN_KEY, **kw
    )


@app.get(
    "/v1/users/<userId>",
    **user_operation(
        "getUser",
        "A user's profile: traits, counts, RFM, trigger states",
        returns="UserProfile",
        description="An id merged by an alias answers with the profile it was merged into.",
    ),
)
def get_user(userId: str) -> Any:
    d = admin()
    return json_response(users.profile_view(d.profiles, unquote(userId), now=d.clock.now()))


@app.delete(
    "/v1/users/<userId>",
    **user_operation(
        "eraseUser",
        "Erase a user: profile, merged profiles, inbox, delivery log, timers, devices, "
        "suppressed addresses (kept as keyed hashes) and archived events",
        returns="Erased",
        status=202,
        description="Answers when every store is cleared; the profile stays a tombstone "
        "for 14 days so that events still in flight do not bring the user back (their "
        "id may then be used again). Archived events are left out of every query at once "
        "(docs/erase.md). Then `GET /v1/users/{userId}` is a 404.",
    ),
)
def delete_user(userId: str) -> Any:
    d = admin()
    extras = d.erase or EraseExtras()
    stores = EraseStores(
        profiles=d.profiles,
        inbox=cast("UserRows", d.inbox),
        log=cast("UserRows", d.log),
        timers=extras.timers,
        devices=extras.devices,
        suppressions=extras.suppressions,
        archive=extras.archive,
        dedup=extras.dedup,
        dead_letters=d.dead_letter_log,
    )
    stores.assignments = _assignments(d)
    now = d.clock.now()
    report = erase_user(stores, unquote(userId), now=now)
    logger.info("user erased", extra={"ids": len(report.ids), "profiles": report.profiles})
    return json_response(report.view(tombstone_until(now)), status=202)


def _assignments(d: Deps) -> AnonymousAssignments | None:
    """Where erase keeps a user's share of each experiment, anonymous: the archive (read
    and written), for the experiments defined; None without them."""
    if d.query is None or d.archive is None or not d.triggers_path:
        return None
    experiments = [t.experiment for t in _triggers(d.triggers_path) if t.experiment is not None]
    if not experiments:
        return None
    return AnonymousAssignments(experiments, d.query, d.archive)


@app.get(
    "/v1/users/<userId>/export",
    **user_operation(
        "exportUser",
        "Everything nudge holds of a user, as one JSON document (GDPR access)",
        returns="UserExport",
        errors=(400, *ADMIN_ERRORS),
        query=[
            {
                "name": "after",
                "in": "query",
                "required": False,
                "description": "the `events_next` of the previous answer: the next page "
                "of the archived events",
                "schema": {"type": "string", "maxLength": 2048},
            }
        ],
        description="The profile (as shown and as stored), the ids merged into it, the "
        "in-app inbox, the delivery log with what it kept of each message, push devices, "
        "suppressed addresses, and the archived events of every id, a page at a time "
        "(docs/erase.md). `nudge users export USER_ID` follows the pages.",
    ),
)
def export_user_route(userId: str) -> Any:
    d = admin()
    extras = d.erase or EraseExtras()
    stores = ExportStores(
        profiles=d.profiles,
        inbox=d.inbox,
        log=d.log,
        query=d.query,
        suppressions=extras.suppressions,
    )
    after = _query_params().get("after") or None
    return json_response(export_user(stores, unquote(userId), now=d.clock.now(), after=after))


@app.get(
    "/v1/users/<userId>/messages",
    **user_operation(
        "getInbox",
        "The user's in-app inbox, newest first",
        returns="Inbox",
    ),
)
def get_messages(userId: str) -> Any:
    d = admin()
    uid = known_user(d, unquote(userId))
    return json_response(inbox_view(d.inbox.messages(uid)))


@app.post(
    "/v1/users/<userId>/messages/<messageId>/read",
    **user_operation(
        "markMessageRead",
        "Mark an in-app message read",
        returns="MessageRead",
        errors={**dict.fromkeys(ADMIN_ERRORS), 404: "No such message for this user"},
    ),
)
def read_message(userId: str, messageId: str) -> Any:
    d = admin()
    user_id, message_id = unquote(userId), unquote(messageId)
    message = d.inbox.mark_read(user_id, message_id)
    if message is None:
        raise NotFoundError(f"no message {message_id!r} for user {user_id!r}")
    archive(
        d,
        read_event(
            user_id,
            message_id,
            trigger_id=message.trigger,
            action_id=message.action_id,
            now=d.clock.now(),
        ),
    )
    return json_response({"id": message_id, "read": True})


@app.get(
    "/v1/users/<userId>/deliveries",
    **user_operation(
        "getDeliveries",
        "What happened to each action for this user, newest first",
        returns="Deliveries",
    ),
)
def get_deliveries(userId: str) -> Any:
    d = admin()
    uid = known_user(d, unquote(userId))
    return json_response(deliveries_view(d.log.entries(uid)))


@app.post(
    "/v1/users/<userId>/devices",
    **user_operation(
        "registerDevice",
        "Register a push token (APNs or FCM) for the user",
        status=201,
        returns="Device",
        returns_description="Registered",
        errors=(400, *ADMIN_ERRORS),
        body="DeviceRegistration",
    ),
)
def post_device(userId: str) -> Any:
    d = admin()
    uid = known_user(d, unquote(userId))
    event = app.current_event.raw_event
    # nudge's own JSON decoding: a body that is not JSON, not UTF-8 or holds a number
    # past Python's digit limit is a 400, as at ingest
    body = decode_body(
        raw_body(event), content_encoding=header(event, "content-encoding"), limit=DEVICE_BODY
    )
    if not isinstance(body, dict):
        raise ValidationFailedError('send {"platform": "apns"|"fcm", "token": "..."}')
    platform, token = body.get("platform"), body.get("token")
    if platform not in ("apns", "fcm") or not isinstance(token, str) or not token.strip():
        raise ValidationFailedError('platform must be "apns" or "fcm" and token a non-empty string')
    problem = unstorable(token, ("token",))
    if problem or len(token.strip().encode()) > MAX_DEVICE_TOKEN_BYTES:
        raise ValidationFailedError(
            problem
            or f"token: over {MAX_DEVICE_TOKEN_BYTES} bytes (APNs and FCM tokens are far shorter)"
        )
    endpoint_arn = d.devices.register(uid, platform, token.strip())
    device = {"platform": platform, "token": token.strip(), "endpoint_arn": endpoint_arn}
    users.add_device(d.profiles, uid, device)
    return json_response({"user_id": uid, **device}, status=201)


MAX_RECOMMENDATIONS = 100


def int_query(name: str, description: str, *, default: int, maximum: int) -> dict[str, Any]:
    """The OpenAPI description of an optional whole-number query parameter, 1..maximum."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
    }


def _int_param(name: str, *, default: int, maximum: int) -> int:
    """A query parameter described by `int_query`: absent, its default; otherwise ASCII
    digits from 1 to `maximum`, or a 400 naming it."""
    raw = (app.current_event.query_string_parameters or {}).get(name)
    if raw is None:
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= maximum):
        raise ValidationFailedError(
            f"{name} must be a whole number from 1 to {maximum}",
            details=[{"field": name, "message": f"got {raw!r}"}],
        )
    return int(text)


LIMIT_QUERY = int_query(
    "limit",
    f"how many items, 1 to {MAX_RECOMMENDATIONS} (default 10)",
    default=10,
    maximum=MAX_RECOMMENDATIONS,
)


@app.get(
    "/v1/users/<userId>/recommendations",
    **user_operation(
        "getRecommendations",
        "Items to recommend to the user, following their latest events",
        returns="Recommendations",
        errors=(400, *ADMIN_ERRORS),
        query=[LIMIT_QUERY],
        description="The trained item model applied to the user's recent items as they "
        "are now (no training run needed to follow a session), bought items excluded, "
        "with an exploration share and at most half the list in one category; popular "
        "items for a user with no history; the user's own recent items until a model has "
        "been trained (docs/personalization.md).",
    ),
)
def get_recommendations(userId: str) -> Any:
    d = admin()
    limit = _int_param("limit", default=10, maximum=MAX_RECOMMENDATIONS)
    profile = users.profile_of(d.profiles, unquote(userId))
    strategy = recommender("personal", d.load_items(), catalog=d.load_catalog())
    return json_response({"items": strategy.recommend(profile, limit)})


@cache
def _triggers(triggers_path: str) -> TriggerSet:
    from nudge.domain.triggers.loader import load_triggers

    return load_triggers(triggers_path)


@app.get(
    "/v1/experiments/<experimentId>",
    **doc.operation(
        "getExperiment",
        "An experiment's report: users, conversions, rates, lift and tests per variant",
        tag=doc.REPORTS,
        returns="ExperimentReport",
        errors={401: None, 403: None, 404: "No such experiment", 503: "No event archive"},
        auth=doc.ADMIN_KEY,
        description="Each user counts in the variant of their first `Experiment Viewed` "
        "and converts with the goal event within the window after it; the control is the "
        "holdout variant, else the first (docs/measurement.md).",
    ),
)
def get_experiment(experimentId: str) -> Any:
    d = admin()
    experiment_id = unquote(experimentId)
    experiment = _triggers(d.triggers_path).experiment(experiment_id) if d.triggers_path else None
    if experiment is None:
        raise NotFoundError(f"no experiment {experiment_id!r}")
    return json_response(experiment_report(experiment, _archive(d)))


TRACKING_DAYS = int_query(
    "days",
    "how many days back (event time), 1 to 365; default 7",
    default=7,
    maximum=MAX_REPORT_DAYS,
)
DAYS_QUERY = int_query(
    "days",
    f"the UTC days reported, ending today (1 to {MAX_DAYS})",
    default=DEFAULT_DAYS,
    maximum=MAX_DAYS,
)


@app.get(
    "/v1/reports/tracking",
    **doc.operation(
        "getTrackingReport",
        "Tracking-plan violations per event and rule, with the latest one as a sample",
        tag=doc.REPORTS,
        returns="TrackingReport",
        errors={400: "Bad days", 401: None, 403: None, 503: "No event archive"},
        auth=doc.ADMIN_KEY,
        query=[TRACKING_DAYS],
        description="Counted from the `Violation Generated` events ingest archives for "
        "every event that breaks the tracking plan, blocked or reported "
        "(docs/tracking-plan.md).",
    ),
)
def get_tracking_report() -> Any:
    d = admin()
    days = _int_param("days", default=7, maximum=MAX_REPORT_DAYS)
    return json_response(tracking_report(_archive(d), days=days, now=d.clock.now()))


@app.get(
    "/v1/reports/segments",
    **doc.operation(
        "getSegmentsReport",
        "The behavioral segments of the last training: sizes, centroids, the last run",
        tag=doc.REPORTS,
        returns="SegmentsReport",
        errors={401: None, 403: None, 503: "No artifact store"},
        auth=doc.ADMIN_KEY,
        description="From the train function's `segments` artifact and its run summary "
        "(docs/personalization.md). Before the first training `segments` is empty and "
        "`trained_at` null (200, not 404); `last_run` then says whether a run failed.",
    ),
)
def get_segments_report() -> Any:
    d = admin()
    if d.models is None:
        raise DependencyUnavailableError("this deployment has no artifact store to report on")
    return json_response(
        segments_report(d.models.load(SEGMENTS_ARTIFACT), d.models.load(TRAIN_RUN_ARTIFACT))
    )


DEAD_LETTERS_DEFAULT_LIMIT = 50
DEAD_LETTERS_MAX_LIMIT = 200
DEAD_LETTERS_LIMIT = int_query(
    "limit",
    f"how many entries, newest first, 1 to {DEAD_LETTERS_MAX_LIMIT} "
    f"(default {DEAD_LETTERS_DEFAULT_LIMIT})",
    default=DEAD_LETTERS_DEFAULT_LIMIT,
    maximum=DEAD_LETTERS_MAX_LIMIT,
)


@app.get(
    "/v1/reports/dead-letters",
    **doc.operation(
        "getDeadLettersReport",
        "Recent dead-lettered events and actions with their reasons, and each DLQ's size",
        tag=doc.REPORTS,
        returns="DeadLettersReport",
        errors={400: "Bad limit", 401: None, 403: None, 503: "No dead-letter log"},
        auth=doc.ADMIN_KEY,
        query=[DEAD_LETTERS_LIMIT],
        description="The entries the process and deliver functions record when they move "
        "a message to its dead-letter queue (a body they cannot read, an action that "
        "failed for good) or a record fails on its last allowed receive (SQS then moves "
        "it), kept as long as the queue keeps messages (14 days). The sizes are each "
        "queue's ApproximateNumberOfMessages: nothing is received from the queues "
        "(docs/decisions.md D40).",
    ),
)
def get_dead_letters_report() -> Any:
    d = admin()
    limit = _int_param("limit", default=DEAD_LETTERS_DEFAULT_LIMIT, maximum=DEAD_LETTERS_MAX_LIMIT)
    if d.dead_letter_log is None or d.dlq_depths is None:
        raise DependencyUnavailableError("this deployment has no dead-letter log to report on")
    return json_response(
        dead_letters_report(d.dead_letter_log, d.dlq_depths, limit=limit, now=d.clock.now())
    )


KEY_BODY = 4 * 1024


def key_admin() -> KeyAdmin:
    d = admin()
    if d.key_admin is None:
        raise DependencyUnavailableError("this deployment cannot manage keys")
    return d.key_admin


@app.post(
    "/v1/keys",
    **doc.operation(
        "createKey",
        "Create a write or admin key; the key is in this answer only",
        tag=doc.KEYS,
        returns="CreatedKey",
        status=201,
        errors={400: "Bad kind or label", 401: None, 403: None},
        auth=doc.ADMIN_KEY,
        body="KeyRequest",
        description="Only the key's SHA-256 digest is stored: keep the key from this "
        "answer, nudge cannot show it again.",
    ),
)
def post_key() -> Any:
    keys = key_admin()
    event = app.current_event.raw_event
    body = decode_body(
        raw_body(event), content_encoding=header(event, "content-encoding"), limit=KEY_BODY
    )
    problem = unstorable(body)
    if problem:
        raise ValidationFailedError(problem)
    kind, label = key_request(body)
    key, info = keys.create(kind, label)
    return json_response({**info.view(), "key": key}, status=201)


@app.get(
    "/v1/keys",
    **doc.operation(
        "listKeys",
        "The keys: id, kind, label and creation time (never the key)",
        tag=doc.KEYS,
        returns="KeyList",
        errors={401: None, 403: None},
        auth=doc.ADMIN_KEY,
    ),
)
def get_keys() -> Any:
    return json_response({"keys": [k.view() for k in key_admin().list()]})


@app.delete(
    "/v1/keys/<keyId>",
    **doc.operation(
        "revokeKey",
        "Revoke a key: it stops working within a minute everywhere",
        tag=doc.KEYS,
        returns="KeyInfo",
        errors={401: None, 403: None, 404: "No such key", 409: "The last admin key"},
        auth=doc.ADMIN_KEY,
        description="Functions cache a key for up to 60 s, so a revoked key may still be "
        "accepted for that long. The last admin key cannot be revoked.",
    ),
)
def delete_key(keyId: str) -> Any:
    return json_response(key_admin().revoke(unquote(keyId)).view())


def _query_params() -> dict[str, str]:
    return dict(app.current_event.query_string_parameters or {})


def _archive(d: Deps) -> QueryEngine:
    if d.query is None:
        raise DependencyUnavailableError("this deployment has no event archive to report on")
    return d.query


EVENT_NAME_PATTERN = doc.name_pattern(MAX_NAME_CHARS)
STEPS_PATTERN = doc.list_pattern(MAX_NAME_CHARS, 2, MAX_STEPS)
DURATION_PATTERN = doc.duration_pattern(MAX_SECONDS)  # longer than 0s, at most 366d


def _param(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string", **schema},
    }


REPORT_ERRORS = {
    400: "A bad parameter (`details` names it)",
    401: None,
    403: None,
    503: "No event archive",
}


@app.get(
    "/v1/reports/cohorts",
    **doc.operation(
        "getCohorts",
        "Retention of each cohort of users (by the week or month of their first event)",
        tag=doc.REPORTS,
        returns="CohortReport",
        errors=REPORT_ERRORS,
        auth=doc.ADMIN_KEY,
        query=[
            _param(
                "period",
                "ISO weeks (UTC, `2026-W03`) or months (`2026-01`)",
                enum=list(PERIODS),
                default="week",
            ),
            _param(
                "event",
                "count retention with this event only (default: any activity)",
                pattern=EVENT_NAME_PATTERN,
            ),
        ],
        description="A user's cohort is the period of their first event (event time, "
        "`/v1/import` history included; nudge's own sending events excluded); `retention[k]` "
        "is the share of the cohort active in period cohort + k, up to the current period "
        "(docs/measurement.md).",
    ),
)
def get_cohorts() -> Any:
    d = admin()
    query = CohortQuery.from_params(_query_params())
    return json_response(cohort_report(query, _archive(d), now=d.clock.now()))


@app.get(
    "/v1/reports/funnel",
    **doc.operation(
        "getFunnel",
        "Users who did the steps in order within a window, with drop-off per step",
        tag=doc.REPORTS,
        returns="FunnelReport",
        errors=REPORT_ERRORS,
        auth=doc.ADMIN_KEY,
        query=[
            {
                **_param(
                    "steps",
                    f"2 to {MAX_STEPS} event names, comma-separated (repeats allowed)",
                    pattern=STEPS_PATTERN,
                ),
                "required": True,
            },
            _param(
                "within",
                "each step within this long of the first: 30m, 48h, 7d (at most 366d)",
                default="7d",
                pattern=DURATION_PATTERN,
            ),
            _param(
                "by",
                "also split by the profile's segment or the experiment variant",
                enum=list(GROUPINGS),
            ),
            _param(
                "experiment",
                "with by=variant: the experiment (needed when the archive "
                "holds exposures of several)",
                pattern=EVENT_NAME_PATTERN,
            ),
        ],
        description="From each occurrence of the first step the earliest next steps are "
        "taken; a user counts up to the furthest step any occurrence reaches, every step "
        "within `within` of the first step's time; events at the same instant count in step "
        "order (docs/measurement.md).",
    ),
)
def get_funnel() -> Any:
    d = admin()
    query = FunnelQuery.from_params(_query_params())
    return json_response(funnel_report(query, _archive(d), segments=profile_segments(d.profiles)))


@app.get(
    "/v1/reports/triggers",
    **doc.operation(
        "getTriggersReport",
        "Per trigger: fired, sent, response, conversion, engagement, retention versus "
        "holdout, and a daily series with anomaly flags",
        tag=doc.REPORTS,
        returns="TriggersReport",
        errors={
            400: "days is not an integer from 1 to 365",
            401: None,
            403: None,
            503: "No event archive",
        },
        auth=doc.ADMIN_KEY,
        query=[DAYS_QUERY],
        description="Every loaded trigger is listed, with zeros when it was quiet. The "
        "counts come from the archived message outcomes (docs/archive.md) over the `days` "
        "UTC days ending today; each KPI is defined in docs/measurement.md.",
    ),
)
def get_triggers_report() -> Any:
    d = admin()
    days = _int_param("days", default=DEFAULT_DAYS, maximum=MAX_DAYS)
    triggers = _triggers(d.triggers_path) if d.triggers_path else TriggerSet([])
    return json_response(triggers_report(triggers, _archive(d), days=days, now=d.clock.now()))


@app.get(
    "/v1/experiments",
    **doc.operation(
        "listExperiments",
        "The experiments of the loaded trigger definitions",
        tag=doc.REPORTS,
        returns="ExperimentList",
        errors=(401, 403),
        auth=doc.ADMIN_KEY,
        description="Each experiment's id (for `GET /v1/experiments/{id}`), name and trigger.",
    ),
)
def list_experiments() -> Any:
    d = admin()
    found = []
    if d.triggers_path:
        for trigger in _triggers(d.triggers_path):
            if trigger.experiment is not None:
                exp = trigger.experiment
                found.append({"id": exp.id, "name": exp.name or exp.id, "trigger": trigger.id})
    return json_response({"experiments": found})


@app.get(
    "/dashboard",
    **doc.operation(
        "dashboard",
        "The dashboard page: triggers, experiments, cohorts, funnels",
        tag=doc.DASHBOARD,
        returns={"type": "string"},
        media_type="text/html",
        description="A page with no data in it: its script asks for the admin key, keeps it "
        "in the tab's sessionStorage and reads the report routes with it "
        "(docs/dashboard.md).",
    ),
)
def dashboard_page() -> Response[str]:
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=dashboard.page(),
        headers={**dashboard.SECURITY_HEADERS, "Cache-Control": dashboard.PAGE_CACHE},
        compress=True,
    )


@app.get(
    "/dashboard/assets/<name>",
    **doc.operation(
        "dashboardAsset",
        "A script, style sheet or licence of the dashboard page (served by nudge: no CDN)",
        tag=doc.DASHBOARD,
        returns={"type": "string"},
        media_type="text/javascript",
        errors={404: "No such asset"},
        description="Cached for a year when asked for with the `v` the page names.",
    ),
)
def dashboard_asset(name: str) -> Response[str]:
    found = dashboard.asset(unquote(name))
    if found is None:
        raise NotFoundError(f"no dashboard asset {unquote(name)!r}")
    version = (app.current_event.query_string_parameters or {}).get("v")
    return Response(
        status_code=200,
        content_type=found.content_type,
        body=found.body,
        headers={
            **dashboard.SECURITY_HEADERS,
            "Cache-Control": dashboard.cache_control(found, version),
        },
        compress=True,
    )


def _verified() -> tuple[str, str, str]:
    """The token of the request and the (user, channel) it signs: 400 without, 403 forged."""
    token = (app.current_event.query_string_parameters or {}).get("token")
    user_id, channel = verify_token(current().unsubscribe_key.get(), token)
    assert token is not None  # verify_token refused a missing one
    return token, user_id, channel


def unsubscribe_page() -> Response[str]:
    """GET: the confirmation page. It unsubscribes nothing: link scanners and mail
    previews follow links (RFC 8058 keeps the action for a POST)."""
    token, _, channel = _verified()
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=confirmation_page(channel, token),
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def unsubscribe() -> Response[str]:
    """POST: unsubscribes, whether the page's button or a mail client's one-click
    (RFC 8058: body `List-Unsubscribe=One-Click`) posted it. A browser gets a page, any
    other client JSON."""
    _, user_id, channel = _verified()
    d = current()
    try:
        users.opt_out(d.profiles, user_id, channel)
    except NotFoundError:  # an erased user: nothing left to send to, nothing to archive
        pass
    else:
        archive(d, unsubscribed_event(user_id, channel, now=d.clock.now()))
    logger.info("unsubscribed", extra={"channel": channel})
    if "text/html" in (header(app.current_event.raw_event, "accept") or ""):
        return Response(
            status_code=200,
            content_type="text/html; charset=utf-8",
            body=unsubscribed_page(channel),
            headers={"Cache-Control": "no-store"},
        )
    return json_response({"unsubscribed": True, "channel": channel})


UNSUBSCRIBE_TOKEN = {
    "name": "token",
    "in": "query",
    "required": True,
    "description": "the signed token of the email's unsubscribe link (per user and channel)",
    "schema": {"type": "string", "minLength": 1},
}
UNSUBSCRIBE_ERRORS = {400: "Missing token", 403: "A forged token"}
app.get(
    "/v1/unsubscribe",
    **doc.operation(
        "unsubscribePage",
        "The unsubscribe link's confirmation page, with a button that posts it",
        tag=doc.UNSUBSCRIBE,
        returns={"type": "string"},
        media_type="text/html",
        errors=UNSUBSCRIBE_ERRORS,
        query=[UNSUBSCRIBE_TOKEN],
        description="Opening the link unsubscribes nothing (mail scanners and previews "
        "follow links): the page's button POSTs to the same URL.",
    ),
)(unsubscribe_page)
app.post(
    "/v1/unsubscribe",
    **doc.operation(
        "unsubscribeOneClick",
        "Unsubscribe from the token's channel: the page's button, and RFC 8058 one-click",
        tag=doc.UNSUBSCRIBE,
        returns="Unsubscribed",
        errors=UNSUBSCRIBE_ERRORS,
        query=[UNSUBSCRIBE_TOKEN],
        description="What mail clients post to every email's List-Unsubscribe URL (body "
        "`List-Unsubscribe=One-Click`). A request that accepts text/html (the page's "
        "form) is answered with a page instead of JSON.",
    ),
)(unsubscribe)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(
    event: dict[str, Any], context: LambdaContext, deps: Deps | None = None
) -> dict[str, Any]:
    """`deps` (by keyword: Powertools' tracer passes keywords only) replaces the AWS
    adapters, as a unit test does; the routes read it through `current()`."""
    return resolve(app, event, context, deps=deps)
