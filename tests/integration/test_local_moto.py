"""Local mode's moto server (nudge.local.moto_server): in a process of its own it serves
the same AWS to boto3 and ends with its parent; its connections stay open between
requests; DynamoDB reads come back as they were written, whatever the attribute types."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import boto3
import pytest
import requests
from nudge.local.emulation import REGION, start_moto

from tests.integration.conftest import free_port


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")  # moto takes any
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_moto_in_its_own_process_serves_boto3_and_stops_with_its_handle() -> None:
    port = free_port()
    server: Any = start_moto("127.0.0.1", port, own_process=True)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
        url = sqs.create_queue(QueueName="own-process")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="hello")
        [message] = sqs.receive_message(QueueUrl=url)["Messages"]
        assert message["Body"] == "hello"
        # another client (the AWS CLI, a user's boto3) sees the same queue
        other = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
        assert url in other.list_queues()["QueueUrls"]
        assert server.pid != os.getpid()
    finally:
        server.stop()
    assert _gone_within(server.pid, 10)


def test_moto_s_process_ends_when_its_parent_dies() -> None:
    # a parent that starts it and is killed, without stopping it
    port = free_port()
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import os, sys, time
                from nudge.local.emulation import start_moto
                server = start_moto("127.0.0.1", {port}, own_process=True)
                print(server.pid, flush=True)
                time.sleep(120)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert requests.get(f"http://127.0.0.1:{port}/moto-api/data.json", timeout=10).ok
    finally:
        parent.kill()
        parent.wait(timeout=10)
    assert _gone_within(child, 10), "moto's process outlived its parent"


def test_requests_share_one_connection(endpoint: str) -> None:
    with requests.Session() as s:
        first = s.get(f"{endpoint}/_nudge/sent.json", timeout=10)
        second = s.get(f"{endpoint}/_nudge/sent.json", timeout=10)
    assert first.ok and second.ok
    assert "close" not in first.headers.get("Connection", "").lower()
    assert first.headers["Content-Length"] == str(len(first.content))


def test_dynamodb_reads_return_every_attribute_type_as_written(endpoint: str) -> None:
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION)
    table = f"types-{time.monotonic_ns()}"
    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
    )
    item = {
        "pk": {"S": "u1"},
        "sk": {"N": "1"},
        "blob": {"B": b"\x00\xff zlib"},
        "n": {"N": "3.5"},
        "text": {"S": 'é \u2028 "quoted"'},
        "list": {"L": [{"S": "x"}, {"N": "2"}, {"BOOL": True}, {"NULL": True}]},
        "map": {"M": {"bs": {"BS": [b"1", b"2"]}, "ss": {"SS": ["p", "q"]}, "ns": {"NS": ["1"]}}},
    }
    ddb.put_item(TableName=table, Item=item)
    ddb.put_item(TableName=table, Item={**item, "sk": {"N": "2"}})
    key = {"pk": item["pk"], "sk": item["sk"]}

    got = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    batch = ddb.batch_get_item(
        RequestItems={table: {"Keys": [key, {"pk": {"S": "nobody"}, "sk": {"N": "1"}}]}}
    )
    page = ddb.query(
        TableName=table,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "u1"}},
        Limit=1,
    )
    scanned = ddb.scan(TableName=table)

    assert got == item
    assert batch["Responses"][table] == [item] and batch["UnprocessedKeys"] == {}
    assert page["Items"] == [item] and page["LastEvaluatedKey"] == key
    assert scanned["Count"] == 2 and item in scanned["Items"]
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "no"}, "sk": {"N": "0"}})
