"""The embedded AWS emulation: a moto server in this process, and the tables, queues and
schedule group the CDK stack defines, created from the same definitions."""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import boto3

from nudge import constants as C
from nudge.adapters.scheduler import RETRY_POLICY
from nudge.adapters.tables import table_specs

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import KeySchemaElementTypeDef

REGION = "us-east-1"
ACCOUNT = "123456789012"


class PortInUseError(RuntimeError):
    pass


def is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def ensure_free(host: str, port: int, what: str) -> None:
    if not is_free(host, port):
        raise PortInUseError(
            f"port {port} ({what}) is already in use on {host}: stop what holds it or pick another port"
        )


def aws_port_for(host: str, http_port: int, requested: int | None) -> int:
    """The AWS emulation's port: the one asked for (taken: PortInUseError), else the HTTP
    port + 1, else, when that one is taken, any free port."""
    if requested is not None:
        if not is_free(host, requested):
            raise PortInUseError(
                f"--aws-port {requested} is already in use on {host}: free it, or leave "
                "--aws-port out to let nudge pick a free port"
            )
        return requested
    if http_port < 65535 and is_free(host, http_port + 1):
        return http_port + 1
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Resources:
    endpoint_url: str
    region: str = REGION
    tables: dict[str, str] = field(default_factory=dict)  # logical -> name
    queues: dict[str, str] = field(default_factory=dict)  # name -> url
    queue_urls: dict[str, str] = field(
        default_factory=dict
    )  # logical (events, events-dlq...) -> url
    schedule_groups: list[str] = field(default_factory=list)
    scheduler_dlq_arn: str = ""
    scheduler_role_arn: str = f"arn:aws:iam::{ACCOUNT}:role/nudge-scheduler"
    check_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:nudge-check"
    train_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:nudge-{C.FN_TRAIN}"
    queue_arns: dict[str, str] = field(default_factory=dict)  # logical -> arn
    table_env: dict[str, str] = field(default_factory=dict)  # env var -> table name
    sender_email: str = "nudge@example.com"
    unsubscribe_secret_arn: str = ""
    platform_applications: dict[str, str] = field(default_factory=dict)  # apns|fcm -> arn
    archive_bucket: str = f"nudge-{C.ARCHIVE}-{ACCOUNT}"
    archive_stream: str = f"nudge-{C.ARCHIVE}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            **self.table_env,
            C.ENV_EVENTS_QUEUE_URL: self.queue_urls[C.EVENTS_QUEUE],
            C.ENV_EVENTS_DLQ_URL: self.queue_urls[C.EVENTS_QUEUE + "-dlq"],
            C.ENV_ACTIONS_QUEUE_URL: self.queue_urls[C.ACTIONS_QUEUE],
            C.ENV_ACTIONS_DLQ_URL: self.queue_urls[C.ACTIONS_QUEUE + "-dlq"],
            C.ENV_EVENTS_MAX_RECEIVE_COUNT: str(C.EVENTS_MAX_RECEIVE_COUNT),
            C.ENV_ACTIONS_MAX_RECEIVE_COUNT: str(C.ACTIONS_MAX_RECEIVE_COUNT),
            C.ENV_SCHEDULE_GROUP: C.SCHEDULE_GROUP,
            C.ENV_SCHEDULER_ROLE_ARN: self.scheduler_role_arn,
            C.ENV_SCHEDULER_DLQ_ARN: self.scheduler_dlq_arn,
            C.ENV_ACTIONS_QUEUE_ARN: self.queue_arns[C.ACTIONS_QUEUE],
            C.ENV_SENDER_EMAIL: self.sender_email,
            C.ENV_SES_CONFIGURATION_SET: C.SES_CONFIGURATION_SET,
            C.ENV_UNSUBSCRIBE_SECRET_ARN: self.unsubscribe_secret_arn,
            C.ENV_APNS_APPLICATION_ARN: self.platform_applications.get("apns", ""),
            C.ENV_FCM_APPLICATION_ARN: self.platform_applications.get("fcm", ""),
            C.ENV_ARCHIVE_STREAM: self.archive_stream,
            C.ENV_ARCHIVE_BUCKET: self.archive_bucket,
            C.ENV_MODELS_BUCKET: self.archive_bucket,  # the artifacts live under models/
            # revalidated (by ETag) on every read: a message right after POST /_local/train
            # sees what it trained
            C.ENV_MODELS_CACHE_SECONDS: "0",
        }


_tls = threading.local()


def _speed_up_moto_sqs() -> None:
    """moto 5.2's SQS reads a queue's attributes several times per message sent, and each
    read counts every message in the queue through a datetime-based clock, so sending
    gets quadratically slower as the queue grows. Local mode counts only where the counts
    are asked for (GetQueueAttributes), and with a cheaper clock; semantics unchanged."""
    import time

    import moto.sqs.models as m

    if getattr(m, "_nudge_patched", False):
        return
    # both are moto.core.utils' helpers imported into moto.sqs.models (not re-exported
    # there): replaced where SQS looks them up
    m.camelcase_to_underscores = functools.lru_cache(maxsize=1024)(m.camelcase_to_underscores)  # type: ignore[attr-defined]
    m.unix_time_millis = lambda dt=None: time.time() * 1000.0 if dt is None else _millis(dt)  # type: ignore[attr-defined]

    def counted_when_asked(fget: Callable[[Any], int]) -> property:
        def get(queue: Any) -> int:
            return fget(queue) if getattr(_tls, "counts", False) else 0

        return property(get)

    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    ):
        setattr(m.Queue, name, counted_when_asked(getattr(m.Queue, name).fget))
    original = m.SQSBackend.get_queue_attributes

    def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> Any:
        _tls.counts = any(n == "All" or n.startswith("Approximate") for n in attribute_names or [])
        try:
            return original(self, queue_name, attribute_names)
        finally:
            _tls.counts = False

    # moto's classes patched in place (method-assign) and a marker on its module
    # (attr-defined): the point of this function
    m.SQSBackend.get_queue_attributes = get_queue_attributes  # type: ignore[method-assign]
    m._nudge_patched = True  # type: ignore[attr-defined]


# moto 5.2's SQS operations run under this lock in local mode (_serialize_moto_sqs); a
# long poll waits on SQS_CHANGED, which the operations that change a queue notify
SQS_LOCK = threading.RLock()
SQS_CHANGED = threading.Condition(SQS_LOCK)
# SQSBackend's operations on queues and their messages, and whether they change them
_SQS_OPERATIONS = {
    "create_queue": False,
    "delete_queue": True,
    "get_queue_attributes": False,
    "set_queue_attributes": True,
    "send_message": True,
    "send_message_batch": True,
    "delete_message": True,
    "delete_message_batch": True,
    "change_message_visibility": True,
    "change_message_visibility_batch": True,
    "purge_queue": True,
}
# a long poll looks again at least this often: visibility timeouts run out on their own
LONG_POLL_RECHECK_S = 0.25


def _serialize_moto_sqs() -> None:
    """moto 5.2 (checked on 5.2.5) has no lock around an SQS queue's message list, and the
    moto server runs each request in a thread of its own. Queue.delete_message rebuilds
    the list from the messages it read and assigns it back, so two DeleteMessageBatch
    calls on one queue at once (two of local mode's process pollers) undo each other's
    deletions: deleted messages come back after the visibility timeout (4 to 17 in a
    5,000-event run), to be processed again, and `settle` waits the timeout out; a
    message sent while a delete rebuilds is lost. Local mode runs moto's queue operations
    one at a time, under SQS_LOCK (re-entrant: a batch calls the single operation, and a
    receive moves messages to the dead-letter queue).

    A long poll (WaitTimeSeconds > 0) releases the lock while it waits, and looks again
    when an operation changed a queue (a send, a delete that frees a FIFO group, a
    visibility change) or LONG_POLL_RECHECK_S passed; moto's own wait would hold the
    lock, or spin while the visible messages all belong to busy FIFO groups."""
    import time

    import moto.sqs.models as m

    if getattr(m, "_nudge_serialized", False):
        return

    def locked(original: Callable[..., Any], changes: bool) -> Callable[..., Any]:
        @functools.wraps(original)
        def run(*args: Any, **kwargs: Any) -> Any:
            with SQS_LOCK:
                try:
                    return original(*args, **kwargs)
                finally:
                    if changes:
                        SQS_CHANGED.notify_all()

        return run

    for name, changes in _SQS_OPERATIONS.items():
        setattr(m.SQSBackend, name, locked(getattr(m.SQSBackend, name), changes))
    receive = m.SQSBackend.receive_message

    def receive_message(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        with SQS_LOCK:
            while True:
                got = receive(
                    self, queue_name, count, 0, visibility_timeout, message_attribute_names
                )
                left = deadline - time.monotonic()
                if got or left <= 0:
                    return got
                SQS_CHANGED.wait(min(LONG_POLL_RECHECK_S, left))

    # moto's backend patched in place (method-assign) and a marker on its module
    # (attr-defined), as in _speed_up_moto_sqs
    m.SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    m._nudge_serialized = True  # type: ignore[attr-defined]


def _index_moto_sqs_deletes() -> None:
    """moto 5.2's Queue.delete_message finds a receipt handle by going through every
    message of the queue twice, building each message's list of handles on the way, and
    rebuilds the list without it: a batch of 10 deletes walks a backed-up queue 20 times.
    Local mode notes each handle a receive hands out (handle -> message, per queue) and
    deletes by it; a handle it does not know (from another queue, or a message moved to
    the dead-letter queue or purged) goes to moto's own delete, which keeps its answers
    (already deleted: nothing; unknown: ReceiptHandleIsInvalid). Runs under SQS_LOCK."""
    import moto.sqs.models as m

    if getattr(m, "_nudge_indexed", False):
        return
    receiving = threading.local()
    mark_received = m.Message.mark_received
    receive = m.SQSBackend.receive_message
    delete = m.Queue.delete_message

    def noted_mark_received(self: Any, visibility_timeout: int | None = None) -> None:
        mark_received(self, visibility_timeout)
        queue = getattr(receiving, "queue", None)
        if queue is not None:
            queue.__dict__.setdefault("_nudge_by_handle", {})[self.receipt_handle] = self

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        receiving.queue = self.get_queue(queue_name)
        try:
            return receive(self, queue_name, *args, **kwargs)
        finally:
            receiving.queue = None

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return
        by_handle: dict[str, Any] = self.__dict__.get("_nudge_by_handle", {})
        message = by_handle.pop(receipt_handle, None)
        try:
            if message is None:
                raise ValueError(receipt_handle)
            self._messages.remove(message)  # by identity: Message has no __eq__
        except ValueError:
            delete(self, receipt_handle)
            return
        self.pending_messages.discard(message)
        handles = message.all_receipt_handles
        self.deleted_messages.update(handles)
        for handle in handles:
            by_handle.pop(handle, None)

    # moto patched in place (see _serialize_moto_sqs)
    m.Message.mark_received = noted_mark_received  # type: ignore[method-assign]
    m.SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    m.Queue.delete_message = delete_message  # type: ignore[method-assign]
    m._nudge_indexed = True  # type: ignore[attr-defined]


def _speed_up_moto_sqs_queues() -> None:
    """What else moto 5.2's SQS spends on a backed-up queue, per call:
    - a send of a FIFO message compares its deduplication id with every message of the
      queue: local mode keeps, per queue, the last message sent with each id, which is
      the one moto's walk would find a duplicate in (an id accepted after the 5-minute
      window is newer than any earlier one). A content-based deduplication queue keeps
      moto's walk;
    - a receive lists the visible messages by reading two properties of each, each of
      them the clock: local mode reads the clock once and the two fields;
    - each message received gets a receipt handle of 185 letters drawn one at a time:
      local mode draws its bytes at once (the same length and letters);
    - each message received is checked against the queue's retention period by building
      every attribute of the queue (three times): local mode reads the period."""
    import secrets
    import string
    import time

    import moto.sqs.models as m

    if getattr(m, "_nudge_queues_patched", False):
        return
    add_message = m.Queue.add_message

    def indexed_add_message(self: Any, message: Any) -> None:
        dedup = message.deduplication_id
        content_based = str(getattr(self, "content_based_deduplication", "")).lower() == "true"
        if not (self.fifo_queue and dedup) or content_based:
            add_message(self, message)
            return
        by_dedup: dict[str, Any] = self.__dict__.setdefault("_nudge_by_dedup", {})
        last = by_dedup.get(dedup)
        if (
            last is not None
            and last in self._messages  # by identity: Message has no __eq__
            and (message.sent_timestamp - last.sent_timestamp) / 1000
            < m.DEDUPLICATION_TIME_IN_SECONDS
        ):
            return
        message.deduplication_id = None  # moto's walk skipped: it was just done
        try:
            add_message(self, message)
        finally:
            message.deduplication_id = dedup
        by_dedup[dedup] = message

    def messages(self: Any) -> list[Any]:
        now = m.unix_time_millis()  # type: ignore[attr-defined]  # moto.core.utils' helper
        return [x for x in self._messages if now > x.visible_at and now >= x.delayed_until]

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        retention_s = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention_s + message.sent_timestamp / 1000 > time.time())

    letters = string.ascii_lowercase

    def generate_receipt_handle() -> str:
        return "".join(letters[b % 26] for b in secrets.token_bytes(185))

    # moto patched in place (see _speed_up_moto_sqs)
    m.Queue.add_message = indexed_add_message  # type: ignore[method-assign]
    m.Queue.messages = property(messages)  # type: ignore[assignment,method-assign]
    m.SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )
    m.generate_receipt_handle = generate_receipt_handle  # type: ignore[attr-defined]
    m._nudge_queues_patched = True  # type: ignore[attr-defined]


# DynamoDB reads answered by json.dumps in local mode (_speed_up_moto_dynamodb_reads)
_DYNAMODB_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})


def _speed_up_moto_dynamodb_reads() -> None:
    """moto 5.2 writes every answer through its shape-driven serializer, which walks each
    attribute of each item against the API's model: a BatchGetItem of ten 2 KB profiles
    takes it 6 ms. The items of a DynamoDB read are already in the wire format (DynamoDB
    JSON, binaries as bytes), so local mode writes the answers of the reads as JSON, with
    the binaries in base64 as the serializer does; anything else in them (and every
    other operation, and errors) goes through moto's serializer."""
    import base64
    import json

    from moto.dynamodb.responses import DynamoResult

    if getattr(DynamoResult, "_nudge_patched", False):
        return
    serialize = DynamoResult.execute_result

    def as_base64(value: Any) -> str:
        if isinstance(value, bytes):
            return base64.b64encode(value).decode()
        raise TypeError(type(value).__name__)

    def execute_result(self: Any, context: Any) -> Any:
        result = self.result
        if context.operation_model.name in _DYNAMODB_READS and isinstance(result, dict):
            try:
                body = json.dumps(
                    {k: v for k, v in result.items() if v is not None}, default=as_base64
                )
            except TypeError:
                return serialize(self, context)
            return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
        return serialize(self, context)

    # moto patched in place (see _speed_up_moto_sqs)
    DynamoResult.execute_result = execute_result  # type: ignore[method-assign]
    DynamoResult._nudge_patched = True  # type: ignore[attr-defined]


def _speed_up_moto_dispatch() -> None:
    """moto 5.2's server finds the backend of every request by listing moto's package
    folder (a stat per entry) and trying each service's URL patterns, twice, and lists
    the response class's methods with inspect.getmembers: about a fifth of the server's
    time on a DynamoDB PutItem. Neither answer changes while the server runs (the host
    names a service and region; a class keeps its methods): local mode keeps them."""
    import moto.core.responses as r
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    if getattr(r, "_nudge_patched", False):
        return
    backend_for_host = DomainDispatcherApplication.get_backend_for_host
    hosts: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in hosts:
            hosts[host] = backend_for_host(self, host)
        return hosts[host]

    # moto.core.utils' helpers as moto.core.responses imported them (attr-defined: not
    # re-exported there), and its dispatcher: patched in place (see _speed_up_moto_sqs)
    r.method_names_from_class = functools.cache(r.method_names_from_class)  # type: ignore[attr-defined]
    r.camelcase_to_underscores = functools.lru_cache(maxsize=4096)(r.camelcase_to_underscores)  # type: ignore[attr-defined]
    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]
    r._nudge_patched = True  # type: ignore[attr-defined]


def patch_moto() -> None:
    """Local mode's changes to moto, in the process that runs the moto server."""
    _speed_up_moto_dispatch()
    _speed_up_moto_dynamodb_reads()
    _speed_up_moto_sqs()
    _speed_up_moto_sqs_queues()
    _index_moto_sqs_deletes()
    _serialize_moto_sqs()
    _buffer_moto_firehose()
    _keep_sesv2_content()


FIREHOSE_BUFFER_BYTES = 4 * 1024 * 1024


def _buffer_moto_firehose() -> None:
    """moto's Firehose writes one S3 object per PutRecord(Batch) call; real Firehose
    buffers (up to the stream's size or interval hint) and writes few large objects. An
    archive of 10,000 tiny objects makes every cold read of it list and fetch 10,000
    objects. Local mode appends each call's records to the hour's newest object until it
    holds FIREHOSE_BUFFER_BYTES, then starts the next: the layout and the bytes are
    those of Firehose, the object count close to it. The hour's object is rewritten on
    each call (a reader sees it grow, as it would see a new object appear)."""
    import moto.firehose.models as fm
    from moto.moto_api._internal import mock_random
    from moto.s3.models import s3_backends

    if getattr(fm, "_nudge_patched", False):
        return
    lock = threading.Lock()
    current: dict[tuple[str, str], tuple[str, int]] = {}  # (bucket, hour prefix) -> key, size
    original = fm.FirehoseBackend.put_s3_records

    def put_s3_records(
        self: Any,
        delivery_stream_name: str,
        version_id: str,
        s3_destination: dict[str, Any],
        records: list[dict[str, bytes]],
    ) -> list[dict[str, str]]:
        bucket = s3_destination["BucketARN"].split(":")[-1]
        path = self._format_s3_object_path(
            delivery_stream_name, version_id, s3_destination.get("Prefix", "")
        )
        hour = path.rsplit("/", 1)[0]
        data = b"".join(r["Data"] for r in records)
        s3 = s3_backends[self.account_id][self.partition]
        with lock:
            key, size = current.get((bucket, hour), (path, 0))
            if size and size + len(data) > FIREHOSE_BUFFER_BYTES:
                key, size = path, 0
            body = data
            if size:
                try:
                    existing = s3.get_object(bucket, key)
                except Exception:
                    existing = None
                if existing is None:  # deleted meanwhile (an erase): start a new object
                    key, body = path, data
                else:
                    body = existing.value + data
            s3.put_object(bucket, key, body)
            current[(bucket, hour)] = (key, len(body))
        return [{"RecordId": str(mock_random.uuid4())} for _ in records]

    # moto patched in place, the original kept for nudge.bench (see _speed_up_moto_sqs)
    fm.FirehoseBackend.put_s3_records = put_s3_records  # type: ignore[method-assign]
    fm._nudge_original_put_s3_records = original  # type: ignore[attr-defined]
    fm._nudge_patched = True  # type: ignore[attr-defined]


def _keep_sesv2_content() -> None:
    """moto's SES v2 keeps a Simple message's subject and one body (the HTML, or else the
    text) and drops the rest of what was sent. Local mode keeps it on the stored message
    too: the custom headers (List-Unsubscribe, ...), the text and the HTML parts, which
    GET /moto-api/data.json then shows and /_local/outbox reads. A Raw message is kept
    whole by moto already."""
    import json

    import moto.sesv2.responses as r

    if getattr(r, "_nudge_patched", False):
        return
    original = r.SESV2Response.send_email

    def send_email(self: Any) -> str:
        out: str = original(self)
        simple = (json.loads(self.body).get("Content") or {}).get("Simple")
        if simple:
            message_id = json.loads(out)["MessageId"]
            body = simple.get("Body") or {}
            for message in reversed(self.sesv2_backend.core_backend.sent_messages):
                if message.id == message_id:
                    message.headers = {h["Name"]: h["Value"] for h in simple.get("Headers") or []}
                    message.text = (body.get("Text") or {}).get("Data")
                    message.html = (body.get("Html") or {}).get("Data")
                    break
        return out

    # moto patched in place (see _speed_up_moto_sqs)
    r.SESV2Response.send_email = send_email  # type: ignore[method-assign]
    r._nudge_patched = True  # type: ignore[attr-defined]


def _millis(dt: Any) -> float:
    from moto.core.utils import unix_time

    return float(unix_time(dt) * 1000.0)


class AwsServer(Protocol):
    def stop(self) -> None: ...


def start_moto(host: str, port: int, *, own_process: bool = False) -> AwsServer:
    """The moto server on host:port, with local mode's patches: in a thread of this
    process, or in a process of its own (nudge.local.moto_server)."""
    from nudge.local.moto_server import ProcessServer, ThreadServer

    ensure_free(host, port, "AWS emulation")
    if own_process:
        return ProcessServer(host, port)
    patch_moto()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    return ThreadServer(host, port)


def set_fake_credentials() -> None:
    # moto accepts any credentials; these never leave the machine.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ["AWS_DEFAULT_REGION"] = REGION
    os.environ["AWS_REGION"] = REGION


def provision(
    endpoint_url: str | None, *, train_schedule: str | None = C.DEFAULT_TRAIN_SCHEDULE
) -> Resources:
    """Creates what the stack defines. With endpoint_url None it uses boto3's default
    resolution (moto's mock_aws in tests). `train_schedule`: the train function's
    recurring schedule expression (`rate(...)`); None creates none (the bench, which
    measures the event path only)."""
    kw: dict[str, Any] = {"region_name": REGION}
    if endpoint_url:
        kw["endpoint_url"] = endpoint_url
    res = Resources(endpoint_url=endpoint_url or "")
    ddb = boto3.client("dynamodb", **kw)
    for spec in table_specs():
        name = C.local_table_name(spec.logical)
        keys = [spec.partition_key] + ([spec.sort_key] if spec.sort_key else [])
        schema: list[KeySchemaElementTypeDef] = [
            {"AttributeName": spec.partition_key.name, "KeyType": "HASH"}
        ]
        if spec.sort_key:
            schema.append({"AttributeName": spec.sort_key.name, "KeyType": "RANGE"})
        ddb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": k.name, "AttributeType": k.type} for k in keys],
            KeySchema=schema,
        )
        if spec.ttl_attribute:
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
        res.tables[spec.logical] = name
        res.table_env[spec.env_var] = name

    sqs = boto3.client("sqs", **kw)
    for logical, max_receive in (
        (C.EVENTS_QUEUE, C.EVENTS_MAX_RECEIVE_COUNT),
        (C.ACTIONS_QUEUE, C.ACTIONS_MAX_RECEIVE_COUNT),
    ):
        dlq_name = C.local_queue_name(logical, dlq=True)
        dlq_url = sqs.create_queue(
            QueueName=dlq_name,
            Attributes={
                "FifoQueue": "true",
                "MessageRetentionPeriod": str(C.DEAD_LETTER_RETENTION_DAYS * 86400),
            },
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        import json

        url = sqs.create_queue(
            QueueName=C.local_queue_name(logical),
            Attributes={
                "FifoQueue": "true",
                "VisibilityTimeout": str(C.EVENTS_VISIBILITY_TIMEOUT_S),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive}
                ),
            },
        )["QueueUrl"]
        res.queue_urls[logical] = url
        res.queue_arns[logical] = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        res.queue_urls[logical + "-dlq"] = dlq_url
        res.queues[C.local_queue_name(logical)] = url
        res.queues[dlq_name] = dlq_url
    sched_dlq = sqs.create_queue(QueueName="nudge-scheduler-dlq")["QueueUrl"]
    res.queues["nudge-scheduler-dlq"] = sched_dlq
    res.scheduler_dlq_arn = sqs.get_queue_attributes(
        QueueUrl=sched_dlq, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]

    scheduler = boto3.client("scheduler", **kw)
    scheduler.create_schedule_group(Name=C.SCHEDULE_GROUP)
    res.schedule_groups.append(C.SCHEDULE_GROUP)
    # The wake-up sweep, as the stack defines it (infra/constructs/scheduling.py): local
    # mode fires it at the minutes the clock passes (nudge.local.schedules)
    scheduler.create_schedule(
        Name=C.WAKE_UP_SWEEP_SCHEDULE,
        GroupName=C.SCHEDULE_GROUP,
        Description=C.WAKE_UP_SWEEP_DESCRIPTION,
        ScheduleExpression=C.WAKE_UP_SWEEP_EXPRESSION,
        ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        State="ENABLED",
        Target={
            "Arn": res.check_function_arn,
            "RoleArn": res.scheduler_role_arn,
            "Input": C.WAKE_UP_SWEEP_INPUT,
            "DeadLetterConfig": {"Arn": res.scheduler_dlq_arn},
            "RetryPolicy": RETRY_POLICY,
        },
    )
    # The train function's recurring schedule, in a group of its own as on AWS: local mode
    # fires it as the clock passes it (nudge.local.schedules) and never deletes it
    scheduler.create_schedule_group(Name=C.TRAIN_SCHEDULE_GROUP)
    res.schedule_groups.append(C.TRAIN_SCHEDULE_GROUP)
    if train_schedule is not None:
        scheduler.create_schedule(
            Name=C.TRAIN_SCHEDULE_NAME,
            GroupName=C.TRAIN_SCHEDULE_GROUP,
            ScheduleExpression=train_schedule,
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={
                "Arn": res.train_function_arn,
                "RoleArn": res.scheduler_role_arn,
                "Input": "{}",
                "DeadLetterConfig": {"Arn": res.scheduler_dlq_arn},
            },
        )

    ses = boto3.client("sesv2", **kw)
    ses.create_email_identity(EmailIdentity=res.sender_email.split("@", 1)[1])
    ses.create_configuration_set(ConfigurationSetName=C.SES_CONFIGURATION_SET)
    secrets = boto3.client("secretsmanager", **kw)
    res.unsubscribe_secret_arn = secrets.create_secret(
        Name=C.UNSUBSCRIBE_SECRET_NAME, SecretString=secrets_token()
    )["ARN"]
    sns = boto3.client("sns", **kw)
    for platform, (aws_platform, attrs) in {
        "apns": ("APNS_SANDBOX", {"PlatformCredential": "local", "PlatformPrincipal": "local"}),
        "fcm": ("GCM", {"PlatformCredential": "local"}),
    }.items():
        res.platform_applications[platform] = sns.create_platform_application(
            Name=f"nudge-{platform}", Platform=aws_platform, Attributes=attrs
        )["PlatformApplicationArn"]
    provision_archive(res, kw)
    return res


def provision_archive(res: Resources, kw: dict[str, Any]) -> None:
    """The archive bucket and its Firehose stream. The stack's stream writes under
    `events/!{timestamp:yyyy/MM/dd/HH}/`; moto's Firehose appends that hour path to a
    plain prefix itself, so the layout is the same (one object per call, uncompressed)."""
    s3 = boto3.client("s3", **kw)
    s3.create_bucket(Bucket=res.archive_bucket)
    firehose = boto3.client("firehose", **kw)
    firehose.create_delivery_stream(
        DeliveryStreamName=res.archive_stream,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/nudge-archive-delivery",
            "BucketARN": f"arn:aws:s3:::{res.archive_bucket}",
            "Prefix": C.ARCHIVE_PREFIX,
            "ErrorOutputPrefix": C.ARCHIVE_ERROR_PREFIX,
            "CompressionFormat": "GZIP",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 300},
        },
    )


def secrets_token() -> str:
    import secrets

    return secrets.token_urlsafe(32)
