"""`/_local/outbox` reads what SES v2 and SNS were really sent in the emulation: each
message's `headers` (an email's as sent, Simple or Raw; `{}` for SMS and push) and `text`
(an email's plain-text part; the body for SMS and push)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import boto3
import pytest
import requests
from nudge.adapters.aws import reset_clients
from nudge.local.emulation import REGION, provision, start_moto
from nudge.local.outbox import read_outbox


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def emulation(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """A moto server as local mode starts it (with its patches), and its resources."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")  # moto takes any
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    port = _free_port()
    server = start_moto("127.0.0.1", port)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        requests.post(f"{endpoint}/moto-api/reset", timeout=10)  # backends are per process
        res = provision(endpoint)
        for k, v in res.env().items():
            monkeypatch.setenv(k, v)
        reset_clients()
        yield endpoint, res
    finally:
        server.stop()
        reset_clients()


def test_an_email_keeps_its_headers_and_text_part(emulation: tuple[str, Any]) -> None:
    endpoint, res = emulation
    ses = boto3.client("sesv2", endpoint_url=endpoint)
    ses.send_email(
        FromEmailAddress=res.sender_email,
        Destination={"ToAddresses": ["ada@example.com"]},
        Content={
            "Simple": {
                "Subject": {"Data": "Your cart"},
                "Body": {"Html": {"Data": "<p>Hello</p>"}, "Text": {"Data": "Hello"}},
                "Headers": [
                    {"Name": "List-Unsubscribe", "Value": "<https://n.example/u?token=t>"},
                    {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
                ],
            }
        },
    )

    [mail] = read_outbox(endpoint)

    assert mail["channel"] == "email" and mail["to"] == "ada@example.com"
    assert (mail["subject"], mail["body"], mail["text"]) == ("Your cart", "<p>Hello</p>", "Hello")
    assert mail["headers"] == {
        "From": res.sender_email,
        "To": "ada@example.com",
        "Subject": "Your cart",
        "List-Unsubscribe": "<https://n.example/u?token=t>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_a_raw_email_is_read_back_from_its_mime_message(emulation: tuple[str, Any]) -> None:
    endpoint, res = emulation
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = res.sender_email, "bo@example.com", "Back soon?"
    msg["List-Unsubscribe"] = "<https://n.example/u?token=r>"
    msg.set_content("We miss you")
    msg.add_alternative("<p>We miss you</p>", subtype="html")
    boto3.client("sesv2", endpoint_url=endpoint).send_email(
        FromEmailAddress=res.sender_email,
        Destination={"ToAddresses": ["bo@example.com"]},
        Content={"Raw": {"Data": msg.as_bytes()}},
    )

    [mail] = read_outbox(endpoint)

    assert (mail["to"], mail["subject"]) == ("bo@example.com", "Back soon?")
    assert mail["headers"]["List-Unsubscribe"] == "<https://n.example/u?token=r>"
    assert mail["text"].strip() == "We miss you"
    assert mail["body"].strip() == "<p>We miss you</p>"


def test_sms_and_push_have_no_headers_and_their_body_as_text(
    emulation: tuple[str, Any],
) -> None:
    endpoint, res = emulation
    sns = boto3.client("sns", endpoint_url=endpoint)
    sns.publish(PhoneNumber="+15555550100", Message="Your cart misses you")
    arn = sns.create_platform_endpoint(
        PlatformApplicationArn=res.platform_applications["apns"], Token="device-1"
    )["EndpointArn"]
    apns = json.dumps({"aps": {"alert": {"title": "Cart", "body": "Come back"}}})
    sns.publish(
        TargetArn=arn,
        Message=json.dumps({"default": "Come back", "APNS_SANDBOX": apns}),
        MessageStructure="json",
    )

    by_channel = {m["channel"]: m for m in read_outbox(endpoint)}

    assert by_channel["sms"]["headers"] == {} and by_channel["push"]["headers"] == {}
    assert by_channel["sms"]["text"] == by_channel["sms"]["body"] == "Your cart misses you"
    assert by_channel["push"]["text"] == by_channel["push"]["body"] == "Come back"


def test_the_outbox_reads_what_was_sent_not_moto_s_whole_state(
    emulation: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto's /moto-api/data.json holds every DynamoDB item and SQS message ever made:
    # seconds to build after a load test
    endpoint, _ = emulation
    asked: list[str] = []
    get = requests.get

    def recorded(url: str, **kw: Any) -> requests.Response:
        asked.append(url)
        return get(url, **kw)

    monkeypatch.setattr("nudge.local.outbox.requests.get", recorded)
    boto3.client("sns", endpoint_url=endpoint).publish(PhoneNumber="+15555550101", Message="Hi")

    [sms] = read_outbox(endpoint)

    assert sms["body"] == "Hi" and sms["user_id"] is None  # no delivery log entry
    assert asked == [f"{endpoint}/_nudge/sent.json"]
