"""Dead letters on local mode (docs/decisions.md D40): an event accepted by ingest that
fails processing for good (the archive stream is gone, as a deleted Firehose stream
answers on AWS), a message of an unknown version and an action whose profile never
comes end in their dead-letter queues after as many receives as the queues' redrive
policy allows; `GET /v1/reports/dead-letters` names each with its reason beside the
queues' sizes, and the dashboard's "Dead letters" section shows the same rows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from nudge import constants as C
from nudge.local.server import LocalMode

from tests.e2e import test_browser_e2e as chromium
from tests.e2e.conftest import Client
from tests.e2e.test_browser_e2e import Browser
from tests.e2e.test_dashboard_e2e import js, script_errors, wait_until

pytestmark = pytest.mark.e2e
browser = chromium.browser  # the headless Chromium fixture (skips when it is absent)
ROUTE = "/v1/reports/dead-letters"


class Aws:
    """boto3 clients on local mode's emulation, named by `GET /_local/aws`."""

    def __init__(self, client: Client) -> None:
        self.info = client.s.get(f"{client.url}/_local/aws").json()

    def client(self, service: str) -> Any:
        return boto3.client(
            service, endpoint_url=self.info["endpoint_url"], region_name=self.info["region"]
        )

    def queue_url(self, name: str) -> str:
        return str(self.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])

    def enqueue(self, queue: str, body: dict[str, Any], *, group: str, dedup: str) -> None:
        """A message straight onto one of nudge's FIFO queues (`events`, `actions`), as
        its producer would send it."""
        self.client("sqs").send_message(
            QueueUrl=self.queue_url(C.local_queue_name(queue)),
            MessageBody=json.dumps(body),
            MessageGroupId=group,
            MessageDeduplicationId=dedup,
        )


def action_body(user: str, action_id: str, *, at: str) -> dict[str, Any]:
    """An actions-queue message as the process function writes it: a cart reminder."""
    return {
        "user_id": user,
        "trigger_id": "cart_abandonment",
        "key": None,
        "at": at,
        "episode": 1,
        "action_id": action_id,
        "action": {"channel": "email", "template": "cart_abandonment"},
        "priority": 100,
        "cooldown_seconds": 86400,
        "context": {},
        "enqueued_at": at,
    }


@pytest.fixture
def aws(client: Client) -> Aws:
    return Aws(client)


@pytest.fixture
def archive_gone(aws: Aws, local: LocalMode) -> Iterator[None]:
    """The archive's Firehose stream deleted for the test (every PutRecordBatch to it
    fails, as on AWS), then created again as local mode provisions it."""
    assert local.resources is not None
    name = local.resources.archive_stream
    firehose = aws.client("firehose")
    desc = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    s3 = desc["Destinations"][0]["ExtendedS3DestinationDescription"]
    firehose.delete_delivery_stream(DeliveryStreamName=name)
    try:
        yield
    finally:
        firehose.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                k: s3[k]
                for k in (
                    "RoleARN",
                    "BucketARN",
                    "Prefix",
                    "ErrorOutputPrefix",
                    "CompressionFormat",
                    "BufferingHints",
                )
                if k in s3
            },
        )


def depths(client: Client) -> dict[str, int]:
    r = client.admin_get(ROUTE)
    assert r.status_code == 200, r.text
    return {q["queue"]: q["messages"] for q in r.json()["queues"]}


def entries_of(client: Client, group: str) -> list[dict[str, Any]]:
    r = client.admin_get(ROUTE, params={"limit": 200})
    assert r.status_code == 200, r.text
    return [e for e in r.json()["dead_letters"] if e["group"] == group]


def test_what_fails_for_good_is_listed_with_its_reason_and_shown_on_the_dashboard(
    local: LocalMode, client: Client, aws: Aws, browser: Browser, archive_gone: None
) -> None:
    run = uuid.uuid4().hex[:8]
    lost, newer, ghost = f"dl-lost-{run}", f"dl-newer-{run}", f"dl-ghost-{run}"
    before = depths(client)

    # given an event ingest accepts, which processing cannot archive (the stream is gone)
    client.track(lost, "Product Viewed", {"product_id": "p-1"}, messageId=f"m-{run}")
    # and a message of a version this process function does not know (a newer producer)
    aws.enqueue(
        C.EVENTS_QUEUE,
        {"kind": "events", "v": 99, "user_id": newer, "events": []},
        group=newer,
        dedup=f"v99-{run}",
    )
    # and an action enqueued now for a user whose profile never lands
    now = client.clock(advance_seconds=0)["now"]
    action = action_body(ghost, f"a-{run}", at=now)
    aws.enqueue(C.ACTIONS_QUEUE, action, group=ghost, dedup=f"a-{run}")

    # when local mode's event source mappings have retried them as the redrive allows
    client.settle()

    # then each is in its DLQ and listed with why
    assert depths(client) == {
        "events": before["events"] + 2,
        "actions": before["actions"] + 1,
    }
    [failed] = entries_of(client, lost)
    assert failed["moved_by"] == "redrive" and failed["queue"] == "events"
    assert failed["receive_count"] == C.EVENTS_MAX_RECEIVE_COUNT
    assert f"m-{run}" in failed["body"] and failed["error"]
    [refused] = entries_of(client, newer)
    assert (refused["moved_by"], refused["error_type"]) == ("function", "ValueError")
    assert "unknown events message version 99" in refused["error"]
    [waited] = entries_of(client, ghost)
    assert (waited["queue"], waited["error_type"]) == ("actions", "ProfileNotReadyError")
    assert waited["receive_count"] == C.ACTIONS_MAX_RECEIVE_COUNT

    # and the dashboard's section shows the queues' sizes and these rows
    d = browser.driver
    d.set_window_size(1280, 900)
    d.get(f"{local.url}/dashboard")
    wait_until(browser, "the key form", lambda: d.find_element("id", "key").is_displayed())
    d.find_element("id", "key").send_keys(local.admin_key + "\n")
    rows = wait_until(
        browser,
        "the dead letters",
        lambda: d.find_elements("css selector", "#deadletters tbody tr"),
    )
    shown = {
        r.get_attribute("data-message-id"): r.text
        for r in rows
        if r.get_attribute("data-message-id")
        in {failed["message_id"], refused["message_id"], waited["message_id"]}
    }
    assert len(shown) == 3, [r.text for r in rows]
    assert "after 5 receives" in shown[failed["message_id"]]
    assert failed["error_type"] in shown[failed["message_id"]]
    assert "at once" in shown[refused["message_id"]]
    assert "unknown events message version 99" in shown[refused["message_id"]]
    assert (
        "ProfileNotReadyError" in shown[waited["message_id"]]
        and ghost in shown[waited["message_id"]]
    )
    sizes = {
        li.get_attribute("data-queue"): li.text
        for li in d.find_elements("css selector", "#deadletters .sizes li")
    }
    now_depths = depths(client)
    assert sizes == {
        q: f"{q} DLQ: {n:,} {'message' if n == 1 else 'messages'}" for q, n in now_depths.items()
    }
    full = d.find_elements("css selector", "#deadletters .sizes li.full")
    assert {li.get_attribute("data-queue") for li in full} == {"events", "actions"}
    assert (
        js(browser, "return document.querySelector('#deadletters').getAttribute('aria-busy')")
        is None
    )
    assert script_errors(browser, set()) == []
