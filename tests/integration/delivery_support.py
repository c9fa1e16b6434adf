"""Shared by the delivery integration tests (deliver, feedback and the api's delivery
routes): a `dx` fixture over the `aws` and `clock` fixtures of conftest that seeds
profiles, builds action messages as the process function enqueues them, runs them
through the actions FIFO queue into the deliver function, and reads what left through
SES and SNS from moto's backends.

Test modules import `dx_fixture` (the fixture named `dx`) from here; it is kept out of
conftest, which other capabilities edit."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
import pytest
from moto.backends import get_backend
from nudge import constants as C
from nudge.adapters.aws import send_client
from nudge.adapters.delivery import DynamoDeliveryLog, DynamoInbox
from nudge.adapters.profiles import DynamoProfileStore
from nudge.domain.clock import SettableClock, to_ms
from nudge.domain.delivery import DeliveryEntry
from nudge.domain.messages import ActionMessage, ActionSpec
from nudge.domain.ports import StoredProfile
from nudge.domain.profile import Profile
from nudge.domain.triggers.contract import action_id
from nudge.local.emulation import ACCOUNT, REGION, Resources
from nudge.local.lambdas import sqs_event

from tests.integration.conftest import ADMIN_KEY, Fn, http

PUBLIC_URL = "https://nudge.example.test"

# the default triggers' actions as triggers/default.yaml defines them
TRIGGERS: dict[str, dict[str, Any]] = {
    "cart_abandonment": {
        "action": {"channel": "email", "template": "cart_abandonment"},
        "priority": 100,
        "cooldown_seconds": 86_400,
    },
    "inactivity_winback": {
        "action": {"channel": "email", "template": "inactivity_winback"},
        "priority": 20,
        "cooldown_seconds": 86_400,
    },
    "repeat_product_view": {
        "action": {"channel": "push", "template": "repeat_product_view", "fallback": "inapp"},
        "priority": 50,
        "cooldown_seconds": 86_400,
    },
    "product_dwell_upsell": {
        "action": {"channel": "inapp", "template": "product_dwell_upsell"},
        "priority": 30,
        "cooldown_seconds": 21_600,
    },
}

SHOE = {
    "product_id": "p-trail",
    "name": "Trail Runner 2",
    "price": 89.0,
    "url": "https://shop.example/p-trail",
}


@dataclass
class Delivery:
    """The deliver function over the real actions queue, and what it left behind."""

    res: Resources
    clock: SettableClock
    deliver: Fn
    api: Fn
    ses_requests: list[dict[str, Any]] = field(default_factory=list)  # SES v2 SendEmail params
    _episodes: int = 0

    # ---- users -----------------------------------------------------------------------
    def seed(
        self,
        user_id: str,
        *,
        email: str | None = "ana@example.com",
        timezone: str | None = None,
        cart: Sequence[dict[str, Any]] = (SHOE,),
        devices: Sequence[str] = (),
        **traits: Any,
    ) -> Profile:
        """A profile as the process function would have stored it (traits, a cart, push
        devices by their SNS endpoint ARN)."""
        all_traits: dict[str, Any] = {"first_name": "Ana", **traits}
        if email is not None:
            all_traits["email"] = email
        if timezone is not None:
            all_traits["timezone"] = timezone
        t = to_ms(self.clock.now()) - 20 * 60_000
        profile = Profile(user_id, traits=all_traits, first_seen=t, last_seen=t)
        for item in cart:
            pid = item["product_id"]
            profile.cart[pid] = {
                "add": t,
                "rm": 0,
                "qty": 1,
                **{k: v for k, v in item.items() if k != "product_id"},
            }
        if devices:
            profile.extra["devices"] = [
                {"platform": "apns", "token": arn.rsplit("/", 1)[-1], "endpoint_arn": arn}
                for arn in devices
            ]
        DynamoProfileStore().save(StoredProfile(profile, None))
        return profile

    def profile(self, user_id: str) -> Profile:
        stored = DynamoProfileStore().get(user_id)
        assert stored is not None
        return stored.profile

    # ---- actions ---------------------------------------------------------------------
    def action(
        self,
        user_id: str,
        trigger_id: str = "cart_abandonment",
        *,
        channel: str | None = None,
        template: str | None = None,
        fallback: str | None = None,
        priority: int | None = None,
        cooldown_seconds: int | None = None,
        at: datetime | None = None,
        product: dict[str, Any] | None = SHOE,
    ) -> dict[str, Any]:
        """An action message as the process function queues it (ActionMessage)."""
        spec = TRIGGERS.get(
            trigger_id,
            {
                "action": {"channel": "inapp", "template": trigger_id},
                "priority": 10,
                "cooldown_seconds": 86_400,
            },
        )
        action = dict(spec["action"])
        if channel is not None:
            action["channel"] = channel
            action.pop("fallback", None)
        if template is not None:
            action["template"] = template
        if fallback is not None:
            action["fallback"] = fallback
        fired = at or self.clock.now()
        self._episodes += 1
        episode = self._episodes
        key = product["product_id"] if product else None
        message = ActionMessage(
            user_id=user_id,
            trigger_id=trigger_id,
            key=key,
            at=fired,
            episode=episode,
            action_id=action_id(user_id, trigger_id, key, episode),
            action=ActionSpec.model_validate(action),
            priority=spec["priority"] if priority is None else priority,
            cooldown_seconds=spec["cooldown_seconds"]
            if cooldown_seconds is None
            else cooldown_seconds,
            context={
                "event": "Product Added",
                "properties": dict(product or {}),
                **({"product": dict(product)} if product else {}),
            },
            enqueued_at=fired,
        )
        # its body on the queue, as a dict a test may change before it is queued
        body: dict[str, Any] = json.loads(message.to_json())
        return body

    # ---- the actions queue -----------------------------------------------------------
    @property
    def queue_url(self) -> str:
        return self.res.queue_urls[C.ACTIONS_QUEUE]

    @property
    def queue_arn(self) -> str:
        return self.res.queue_arns[C.ACTIONS_QUEUE]

    def enqueue(self, actions: Sequence[dict[str, Any]]) -> None:
        """As the process function's SqsActionQueue sends them (group = user)."""
        sqs = boto3.client("sqs", region_name=REGION)
        for a in actions:
            sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=json.dumps(a, separators=(",", ":")),
                MessageGroupId=str(a["user_id"]),
                MessageDeduplicationId=str(a["action_id"]),
            )

    def receive(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        out: list[dict[str, Any]] = []
        for _ in range(5):
            msgs = sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
                VisibilityTimeout=30,
            ).get("Messages", [])
            if not msgs:
                break
            out.extend(msgs)
        return out

    def event(self, actions: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Queues the actions and receives them back as one Lambda SQS event."""
        self.enqueue(actions)
        msgs = self.receive()
        assert len(msgs) == len(actions)
        self.forget(msgs)
        return sqs_event(msgs, self.queue_arn)

    def forget(self, msgs: Sequence[dict[str, Any]]) -> None:
        """Deletes received messages: the test replays their event itself (redeliveries)."""
        sqs = boto3.client("sqs", region_name=REGION)
        for m in msgs:
            sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])

    def run(self, actions: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """One deliver invocation over these actions; the batch response."""
        resp = self.deliver(self.event(actions))
        assert isinstance(resp, dict) and "batchItemFailures" in resp
        return resp

    def dlq(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        return sqs.receive_message(
            QueueUrl=self.res.queue_urls[C.ACTIONS_QUEUE + "-dlq"],
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            VisibilityTimeout=300,
        ).get("Messages", [])

    # ---- what was sent and logged ----------------------------------------------------
    def emails(self) -> list[Any]:
        """Messages SES (v1 and v2 land in the v1 backend) accepted."""
        return list(get_backend("ses")[ACCOUNT][REGION].sent_messages)

    def sms(self) -> list[tuple[str, str]]:
        return list(get_backend("sns")[ACCOUNT][REGION].sms_messages.values())

    def endpoint(self, token: str) -> str:
        """An APNs endpoint in SNS for a device token (as registering a device makes)."""
        sns = boto3.client("sns", region_name=REGION)
        return sns.create_platform_endpoint(
            PlatformApplicationArn=self.res.platform_applications["apns"], Token=token
        )["EndpointArn"]

    def pushes(self, endpoint_arn: str | None = None) -> list[str]:
        backend = get_backend("sns")[ACCOUNT][REGION]
        out: list[str] = []
        for arn, ep in backend.platform_endpoints.items():
            if endpoint_arn is None or arn == endpoint_arn:
                out.extend(ep.messages.values())
        return out

    def log(self, user_id: str) -> list[DeliveryEntry]:
        return DynamoDeliveryLog().entries(user_id)

    def entry(self, user_id: str, action_id: str) -> DeliveryEntry:
        [hit] = [e for e in self.log(user_id) if e.action_id == action_id]
        return hit

    def inbox(self, user_id: str) -> list[Any]:
        return DynamoInbox().messages(user_id)

    # ---- the api function ------------------------------------------------------------
    def get(self, path: str, *, key: str = ADMIN_KEY, query: str = "") -> tuple[int, Any]:
        return self._call("GET", path, key=key, query=query)

    def post(
        self, path: str, body: Any = None, *, key: str | None = ADMIN_KEY, query: str = ""
    ) -> tuple[int, Any]:
        return self._call("POST", path, body, key=key, query=query)

    def _call(
        self, method: str, path: str, body: Any = None, *, key: str | None, query: str = ""
    ) -> tuple[int, Any]:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        if body is not None:
            headers["content-type"] = "application/json"
        resp = self.api(http(method, path, body, headers=headers, query=query))
        text = resp.get("body") or ""
        ctype = {k.lower(): v for k, v in (resp.get("headers") or {}).items()}.get(
            "content-type", ""
        )
        return resp["statusCode"], (json.loads(text) if "json" in ctype and text else text)


@pytest.fixture(name="dx")
def dx_fixture(
    aws: Resources, clock: SettableClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Delivery]:
    monkeypatch.setenv(C.ENV_PUBLIC_URL, PUBLIC_URL)
    d = Delivery(res=aws, clock=clock, deliver=Fn(C.FN_DELIVER), api=Fn(C.FN_API))

    def capture(params: dict[str, Any], **_: Any) -> None:
        d.ses_requests.append(json.loads(json.dumps(params, default=str)))

    # moto keeps neither the text part nor custom headers: read them off the request
    send_client("sesv2").meta.events.register("before-parameter-build.sesv2.SendEmail", capture)
    yield d


def headers_of(request: dict[str, Any]) -> dict[str, str]:
    return {h["Name"]: h["Value"] for h in request["Content"]["Simple"].get("Headers", [])}
