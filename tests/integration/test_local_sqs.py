"""Local mode's moto SQS (nudge.local.emulation): queue operations one at a time, so two
pollers deleting batches from one queue at once delete every message (moto 5.2 alone
brings some back after the visibility timeout); deletes found by receipt handle with
moto's answers kept; a long poll that lets sends in while it waits."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest
import requests
from nudge.local.emulation import REGION


@pytest.fixture
def sqs(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")  # moto takes any
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    return boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)


def _queue(sqs: Any, name: str) -> str:
    url: str = sqs.create_queue(
        QueueName=f"{name}-{time.monotonic_ns()}.fifo",
        Attributes={"FifoQueue": "true", "VisibilityTimeout": "60"},
    )["QueueUrl"]
    return url


def _in_queue(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def test_two_pollers_deleting_batches_at_once_delete_every_message(sqs: Any) -> None:
    # given 2,000 messages received (in flight for 60 s; a user each, so all at once)
    url = _queue(sqs, "race")
    n = 2_000
    for start in range(0, n, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": f"event {i}",
                    "MessageGroupId": f"user-{i}",
                    "MessageDeduplicationId": f"e-{i}",
                }
                for i in range(start, start + 10)
            ],
        )
    handles: list[str] = []
    while len(handles) < n:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        assert got, f"received {len(handles)} of {n}"
        handles.extend(m["ReceiptHandle"] for m in got)

    # when two pollers delete their halves in batches of 10 at the same time
    failed: list[Any] = []
    go = threading.Barrier(2)

    def poller(mine: list[str]) -> None:
        client = boto3.client("sqs", endpoint_url=sqs.meta.endpoint_url, region_name=REGION)
        go.wait()
        for start in range(0, len(mine), 10):
            resp = client.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h}
                    for i, h in enumerate(mine[start : start + 10])
                ],
            )
            failed.extend(resp.get("Failed", []))

    threads = [threading.Thread(target=poller, args=(handles[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # then every delete succeeded and nothing is left to come back
    assert failed == []
    assert _in_queue(sqs, url) == 0


def test_a_delete_keeps_moto_s_answers(sqs: Any) -> None:
    url = _queue(sqs, "answers")
    sqs.send_message(QueueUrl=url, MessageBody="a", MessageGroupId="g", MessageDeduplicationId="a")
    [first] = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
    [again] = sqs.receive_message(QueueUrl=url)["Messages"]
    assert again["ReceiptHandle"] != first["ReceiptHandle"]

    # an earlier receive's handle still deletes the message; deleting again is no error
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    resp = sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "again", "ReceiptHandle": again["ReceiptHandle"]},
            {"Id": "unknown", "ReceiptHandle": "not-a-handle"},
        ],
    )

    assert [s["Id"] for s in resp["Successful"]] == ["again"]
    assert [(f["Id"], f["Code"]) for f in resp["Failed"]] == [("unknown", "ReceiptHandleIsInvalid")]
    assert _in_queue(sqs, url) == 0


def test_a_long_poll_lets_a_send_in_and_returns_it(sqs: Any) -> None:
    url = _queue(sqs, "long-poll")
    sender = boto3.client("sqs", endpoint_url=sqs.meta.endpoint_url, region_name=REGION)

    def send_soon() -> None:
        time.sleep(0.3)
        sender.send_message(
            QueueUrl=url, MessageBody="late", MessageGroupId="g", MessageDeduplicationId="l"
        )

    t = threading.Thread(target=send_soon)
    started = time.monotonic()
    t.start()
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5).get("Messages", [])
    took = time.monotonic() - started
    t.join()

    assert [m["Body"] for m in got] == ["late"]
    assert took < 3


def test_the_server_answers_what_ses_and_sns_sent(endpoint: str) -> None:
    # the route /_local/outbox reads instead of moto's whole state
    sent = requests.get(f"{endpoint}/_nudge/sent.json", timeout=10).json()
    assert set(sent) == {"ses", "sns"}
    assert set(sent["ses"]) == {"Message", "RawMessage"}
    assert set(sent["sns"]) == {"SMS", "PlatformEndpoint"}
