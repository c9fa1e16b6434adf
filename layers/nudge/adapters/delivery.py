"""Delivery adapters: the delivery log, inbox and suppression list in DynamoDB
(PynamoDB), email through SES v2, SMS and push through SNS, deferral through an
EventBridge Scheduler one-time schedule that puts the action back on its queue. No wall
clock here: times come with the entry, the message (`Outbound.at`) or the call.

A provider's answer is sorted by what it says about the message (`provider_call`):
throttling or no connection at all — not sent, retried here a few times, then
TransientSendError; a 5xx or a connection lost after the request went out — it may have
been sent: AmbiguousSendError, never retried; any other refusal — PermanentSendError."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ProxyConnectionError,
)
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError
from pynamodb.expressions.condition import Condition

from nudge import constants as C
from nudge.adapters.aws import client, send_client
from nudge.adapters.queues import message_group_id
from nudge.adapters.scheduler import create_one_time_schedule
from nudge.adapters.tables import DeliveryRow, InboxRow, SuppressionRow, bind_table
from nudge.domain.clock import from_ms, to_ms
from nudge.domain.delivery import (
    AmbiguousSendError,
    DeliveryEntry,
    EndpointDisabledError,
    Outbound,
    PermanentSendError,
    TransientSendError,
)
from nudge.domain.inbox import InboxMessage, inbox_message_id
from nudge.domain.messages import ActionMessage
from nudge.domain.outcomes import email_tags

HASHED_PREFIX = "hmac-sha256:"  # an erased user's address, kept suppressed (docs/erase.md)

if TYPE_CHECKING:
    from mypy_boto3_sesv2.type_defs import BodyTypeDef, MessageTagTypeDef

# Refusals before anything is sent: the rate (SES's sending rate, SNS's publish rate)
THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "LimitExceededException",
    "ThrottledException",
    "Throttled",
    "KMSThrottlingException",
}
# The provider failed while handling the request: it may have sent the message
SERVER_ERRORS = {"InternalFailure", "InternalError", "InternalServerError", "ServiceUnavailable"}
# The request never reached the provider
NOT_CONNECTED = (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError)
SEND_ATTEMPTS = 3  # throttled or unconnected calls, then the queue retries
THROTTLE_BACKOFF_S = 0.25  # full jitter: up to this, then twice this
T = TypeVar("T")


def _ttl(days: int, since: datetime) -> datetime:
    return since + timedelta(days=days)


def _ms(dt: datetime | None) -> int | None:
    return None if dt is None else to_ms(dt)


class DynamoDeliveryLog:
    def __init__(self, *, table: str | None = None) -> None:
        """`table`: the deliveries table of the function's settings (None: the environment's)."""
        bind_table(C.DELIVERIES, table)

    def entries(self, user_id: str) -> list[DeliveryEntry]:
        return [self._entry(r) for r in DeliveryRow.query(user_id, consistent_read=True)]

    @staticmethod
    def _entry(r: DeliveryRow) -> DeliveryEntry:
        return DeliveryEntry(
            user_id=r.user_id,
            action_id=r.action_id,
            trigger_id=r.trigger_id,
            channel=r.channel,
            status=r.status,
            reason=r.reason or "",
            at=from_ms(r.at),
            fired_at=from_ms(r.fired_at) if r.fired_at is not None else None,
            priority=int(r.priority or 0),
            variant=r.variant,
            defer_until=from_ms(r.defer_until) if r.defer_until is not None else None,
            provider_id=r.provider_id,
            to=r.to,
            subject=r.subject,
            body=r.body,
        )

    def record(self, entry: DeliveryEntry, *, expect: frozenset[str | None]) -> bool:
        row = DeliveryRow(
            entry.user_id,
            entry.action_id,
            trigger_id=entry.trigger_id,
            channel=entry.channel,
            status=entry.status,
            reason=entry.reason[:1000],
            at=to_ms(entry.at),
            fired_at=_ms(entry.fired_at),
            priority=entry.priority,
            variant=entry.variant,
            defer_until=_ms(entry.defer_until),
            provider_id=entry.provider_id,
            to=entry.to,
            subject=entry.subject,
            body=entry.body,
            expires_at=_ttl(C.DELIVERY_LOG_TTL_DAYS, entry.at),
        )
        statuses = sorted(s for s in expect if s is not None)
        condition: Condition | None = None
        if None in expect:
            condition = DeliveryRow.action_id.does_not_exist()
        if statuses:
            has = DeliveryRow.status.is_in(*statuses)
            condition = has if condition is None else (condition | has)
        try:
            row.save(condition=condition)
            return True
        except PutError as err:
            if err.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise

    def erase_user(self, user_id: str) -> int:
        """Deletes the user's whole log (addresses, subjects and bodies with it)."""
        return _erase_rows(DeliveryRow, user_id)

    def release(self, user_id: str, action_id: str) -> None:
        try:
            DeliveryRow(user_id, action_id).delete(condition=DeliveryRow.status == "sending")
        except DeleteError as err:
            if err.cause_response_code != "ConditionalCheckFailedException":
                raise


class DynamoInbox:
    """The in-app channel: 'sending' is writing the message into the user's inbox.
    `table`: the inbox table of the function's settings (None: the environment's)."""

    def __init__(self, *, table: str | None = None) -> None:
        bind_table(C.INBOX, table)

    def send(self, message: Outbound) -> str:
        """Writes the message once: its id is the action's (inbox_message_id) and the
        write is conditional, so an attempt after one whose answer was lost writes
        nothing more. A failed write is transient: repeating it is harmless."""
        now = to_ms(message.at)
        message_id = inbox_message_id(message.fired_at or message.at, message.action_id)
        row = InboxRow(
            message.user_id,
            message_id,
            trigger_id=message.trigger_id,
            action_id=message.action_id,
            title=message.content.title or message.content.subject or "",
            body=message.content.body or message.content.text or "",
            cta=message.content.cta,
            cta_url=message.content.cta_url,
            created_at=now,
            read=False,
            expires_at=_ttl(C.INBOX_TTL_DAYS, from_ms(now)),
        )
        try:
            row.save(condition=InboxRow.message_id.does_not_exist())
        except PutError as err:
            if err.cause_response_code == "ConditionalCheckFailedException":
                return message_id  # an earlier attempt wrote it
            raise TransientSendError(f"inbox write failed: {err.cause_response_code}") from err
        return message_id

    def confirm(self, claim: DeliveryEntry) -> str | None:
        """The claimed action's message id if it is in the inbox (a consistent read)."""
        message_id = inbox_message_id(claim.fired_at or claim.at, claim.action_id)
        try:
            InboxRow.get(claim.user_id, message_id, consistent_read=True)
        except DoesNotExist:
            return None
        return message_id

    def messages(self, user_id: str, limit: int = 100) -> list[InboxMessage]:
        rows = InboxRow.query(user_id, scan_index_forward=False, limit=limit, consistent_read=True)
        return [self._message(r) for r in rows]

    @staticmethod
    def _message(r: InboxRow) -> InboxMessage:
        return InboxMessage(
            id=r.message_id,
            trigger=r.trigger_id,
            title=r.title,
            body=r.body,
            cta=r.cta,
            cta_url=r.cta_url,
            created_at=from_ms(r.created_at),
            read=bool(r.read),
            action_id=r.action_id,
        )

    def erase_user(self, user_id: str) -> int:
        return _erase_rows(InboxRow, user_id)

    def mark_read(self, user_id: str, message_id: str) -> InboxMessage | None:
        try:
            row = InboxRow.get(user_id, message_id)
        except DoesNotExist:
            return None
        row.update(actions=[InboxRow.read.set(True)])
        return self._message(row)


class DynamoSuppressions:
    """`table`: the suppressions table of the function's settings (None: the
    environment's). `secret`: the key of the hashes an erased user's addresses are kept
    under (the unsubscribe signing key); without it only plain addresses are looked up."""

    def __init__(
        self, *, table: str | None = None, secret: Callable[[], bytes] | None = None
    ) -> None:
        bind_table(C.SUPPRESSIONS, table)
        self._secret = secret

    def _hashed(self, address: str) -> str | None:
        if self._secret is None:
            return None
        digest = hmac.new(self._secret(), address.strip().lower().encode(), hashlib.sha256)
        return HASHED_PREFIX + digest.hexdigest()

    def is_suppressed(self, address: str) -> bool:
        plain, hashed = address.strip().lower(), self._hashed(address)
        if hashed is not None:  # one BatchGetItem for both forms
            return any(True for _ in SuppressionRow.batch_get([plain, hashed]))
        try:
            SuppressionRow.get(plain)
            return True
        except DoesNotExist:
            return False

    def anonymize(self, address: str) -> bool:
        """An erased user's address stays suppressed under its keyed hash only."""
        plain = address.strip().lower()
        hashed = self._hashed(address)
        try:
            row = SuppressionRow.get(plain)
        except DoesNotExist:
            return False
        if hashed is not None:
            SuppressionRow(hashed, reason=row.reason, at=row.at).save()
        row.delete()
        return True

    def suppress(self, address: str, reason: str, *, at: datetime) -> None:
        SuppressionRow(address.strip().lower(), reason=reason[:500], at=to_ms(at) // 1000).save()


def _erase_rows(model: Any, user_id: str) -> int:
    """Deletes every row of a table keyed (user_id, ...) for the user; how many."""
    rows = list(model.query(user_id, consistent_read=True))
    with model.batch_write() as batch:
        for row in rows:
            batch.delete(row)
    return len(rows)


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _not_sent(err: Exception) -> bool:
    """The provider certainly did not send: it was not reached, or it throttled us."""
    if isinstance(err, ClientError):
        return _code(err) in THROTTLING
    return isinstance(err, NOT_CONNECTED)


def classify(err: Exception) -> Exception:
    """The domain's error for a provider's failure (see the module's docstring)."""
    if isinstance(err, ClientError):
        code = _code(err)
        message = f"{code}: {err.response.get('Error', {}).get('Message', str(err))}"
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in THROTTLING:
            return TransientSendError(message)
        if code in SERVER_ERRORS or status >= 500:
            return AmbiguousSendError(message)
        return PermanentSendError(message)
    if isinstance(err, NOT_CONNECTED):
        return TransientSendError(f"not connected: {err}")
    return AmbiguousSendError(f"{type(err).__name__}: {err}")


def provider_call(call: Callable[[], T]) -> T:
    """`call` (one attempt, send_client), retried while the provider certainly did not
    send, SEND_ATTEMPTS times with jittered backoff; its failure as the domain's error."""
    for attempt in range(SEND_ATTEMPTS):
        try:
            return call()
        except (ClientError, BotoCoreError) as err:
            if not _not_sent(err) or attempt == SEND_ATTEMPTS - 1:
                raise classify(err) from err
            time.sleep(random.uniform(0, THROTTLE_BACKOFF_S * 2**attempt))
    raise AssertionError("unreachable")  # the loop returns or raises


class SesEmailSender:
    def __init__(self, *, sender: str, configuration_set: str) -> None:
        self.sender = sender
        self.configuration_set = configuration_set

    def send(self, message: Outbound) -> str:
        body: BodyTypeDef = {}
        content = message.content
        if content.html:
            body["Html"] = {"Data": content.html, "Charset": "UTF-8"}
        if content.text:
            body["Text"] = {"Data": content.text, "Charset": "UTF-8"}
        # the feedback function links SES events back to the action by these tags
        tags: list[MessageTagTypeDef] = [
            {"Name": name, "Value": value}
            for name, value in email_tags(
                user_id=message.user_id,
                action_id=message.action_id,
                trigger_id=message.trigger_id,
                variant=message.variant,
                experiment_id=message.experiment_id,
            ).items()
        ]
        resp = provider_call(
            lambda: send_client("sesv2").send_email(
                FromEmailAddress=self.sender,
                Destination={"ToAddresses": [message.to]},
                Content={
                    "Simple": {
                        "Subject": {"Data": content.subject or "", "Charset": "UTF-8"},
                        "Body": body,
                        "Headers": [{"Name": k, "Value": v} for k, v in message.headers.items()],
                    }
                },
                ConfigurationSetName=self.configuration_set,
                EmailTags=tags,
            )
        )
        return str(resp["MessageId"])


class SnsSmsSender:
    def __init__(self, *, sms_type: str = "Transactional") -> None:
        self.sms_type = sms_type

    def send(self, message: Outbound) -> str:
        resp = provider_call(
            lambda: send_client("sns").publish(
                PhoneNumber=message.to,
                Message=message.content.text or message.content.body or "",
                MessageAttributes={
                    "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": self.sms_type}
                },
            )
        )
        return str(resp["MessageId"])


class SnsPushSender:
    def send(self, message: Outbound) -> str:
        c = message.content
        title, body = c.title or c.subject or "", c.body or c.text or ""
        apns = json.dumps(
            {
                "aps": {"alert": {"title": title, "body": body}},
                "nudge": {"trigger": message.trigger_id, "action_id": message.action_id},
            }
        )
        fcm = json.dumps(
            {
                "notification": {"title": title, "body": body},
                "data": {"trigger": message.trigger_id, "action_id": message.action_id},
            }
        )
        payload = {"default": body, "APNS": apns, "APNS_SANDBOX": apns, "GCM": fcm}
        try:
            resp = provider_call(
                lambda: send_client("sns").publish(
                    TargetArn=message.to, Message=json.dumps(payload), MessageStructure="json"
                )
            )
        except PermanentSendError as err:
            if (
                isinstance(err.__cause__, ClientError)
                and _code(err.__cause__) == "EndpointDisabled"
            ):
                raise EndpointDisabledError(f"EndpointDisabled: {message.to}", message.to) from err
            raise
        return str(resp["MessageId"])


class SchedulerDeferrer:
    """A deferred action comes back on the actions queue at its time (an SQS target)."""

    def __init__(self, *, group: str, queue_arn: str, role_arn: str, dlq_arn: str) -> None:
        self.group, self.queue_arn, self.role_arn, self.dlq_arn = (
            group,
            queue_arn,
            role_arn,
            dlq_arn,
        )

    def defer(self, action: ActionMessage, until: datetime) -> None:
        from hashlib import blake2b

        name = (
            "defer-"
            + blake2b(
                f"{action.action_id}\x1f{until.isoformat()}".encode(), digest_size=16
            ).hexdigest()
        )
        # a deferral of the same action to the same time exists already: the same one
        create_one_time_schedule(
            name=name,
            group=self.group,
            at=until,
            target_arn=self.queue_arn,
            role_arn=self.role_arn,
            payload=action.to_json(),
            dlq_arn=self.dlq_arn,
            message_group=message_group_id(action.user_id),
        )


class SecretsManagerKey:
    """The unsubscribe signing key, read once per cold start."""

    def __init__(self, secret_id: str) -> None:
        self.secret_id = secret_id
        self._value: bytes | None = None

    def get(self) -> bytes:
        if self._value is None:
            self._value = (
                client("secretsmanager")
                .get_secret_value(SecretId=self.secret_id)["SecretString"]
                .encode()
            )
        return self._value
