"""Message outcomes in the archive, under moto (D33): the deliver function archives each
action's outcome through Firehose (a redelivered action once in the view `events`), the
feedback function archives SES opens and clicks linked to the action by the email's
tags, and GET /v1/reports/triggers reads them back with DuckDB over the bucket."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from nudge import constants as C
from nudge.adapters.query import query_engine
from nudge.settings import QuerySettings

from tests.fakes import an_sns_event
from tests.integration.conftest import Fn
from tests.integration.delivery_support import Delivery, dx_fixture  # noqa: F401
from tests.ses_events import an_ses_event


@pytest.fixture(autouse=True)
def archive_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The api's DuckDB copies of the archive, fresh for each test."""
    monkeypatch.setenv(C.ENV_ARCHIVE_CACHE_DIR, str(tmp_path / "cache"))
    return tmp_path / "cache"


def raw_lines(dx: Delivery) -> list[dict[str, Any]]:
    """Every line of every archived object (the copies the view deduplicates)."""
    s3 = boto3.client("s3")
    out: list[dict[str, Any]] = []
    listing = s3.list_objects_v2(Bucket=dx.res.archive_bucket, Prefix=C.ARCHIVE_PREFIX)
    for obj in listing.get("Contents", []):
        body = s3.get_object(Bucket=dx.res.archive_bucket, Key=obj["Key"])["Body"].read()
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        out += [json.loads(line) for line in body.splitlines() if line]
    return out


def sql(dx: Delivery, cache: Path, query: str) -> list[tuple[Any, ...]]:
    engine = query_engine(
        QuerySettings.model_validate(
            {C.ENV_ARCHIVE_BUCKET: dx.res.archive_bucket, C.ENV_ARCHIVE_CACHE_DIR: str(cache)}
        )
    )
    return [tuple(r) for r in engine.query(query).rows]


def tags_of(request: dict[str, Any]) -> dict[str, list[str]]:
    """The EmailTags of a SendEmail request, as SES echoes them in event publishing."""
    return {t["Name"]: [t["Value"]] for t in request["EmailTags"]}


def test_a_redelivered_action_archives_its_outcome_once(dx: Delivery, archive_cache: Path) -> None:
    dx.seed("u1", email="ana@example.com")
    action = dx.action("u1", "cart_abandonment")
    event = dx.event([action])

    assert dx.deliver(event)["batchItemFailures"] == []
    dx.clock.set(dx.clock.now() + timedelta(minutes=5))
    assert dx.deliver(event)["batchItemFailures"] == []  # SQS redelivers it

    assert len(dx.emails()) == 1
    copies = [r for r in raw_lines(dx) if r["event"] == "Message Outcome"]
    assert len(copies) == 2 and len({r["message_id"] for r in copies}) == 1
    [(message_id, status, trigger, user, n)] = sql(
        dx,
        archive_cache / "sql",
        "SELECT message_id, properties->>'status', properties->>'trigger_id', user_id, "
        "count(*) OVER () FROM events WHERE event = 'Message Outcome'",
    )
    assert (status, trigger, user, n) == ("sent", "cart_abandonment", "u1", 1)
    assert message_id == f"outcome-{action['action_id']}-sent"


def test_capped_and_holdout_outcomes_are_archived_with_their_reason(dx: Delivery) -> None:
    dx.seed("u1", email="ana@example.com")
    first = dx.action("u1", "cart_abandonment")
    second = dx.action("u1", "inactivity_winback")  # the day's one email is taken
    dx.run([first, second])
    outcomes = {
        r["properties"]["action_id"]: r["properties"]
        for r in raw_lines(dx)
        if r["event"] == "Message Outcome"
    }
    assert outcomes[first["action_id"]]["status"] == "sent"
    assert outcomes[second["action_id"]]["status"] == "capped"
    assert outcomes[second["action_id"]]["reason"]
    assert outcomes[second["action_id"]]["channel"] == "email"


def test_ses_opens_and_clicks_are_archived_linked_to_the_trigger_and_reported(
    dx: Delivery, archive_cache: Path
) -> None:
    # given an email sent, with the tags SES will echo in its events
    dx.seed("u1", email="ana@example.com")
    action = dx.action("u1", "cart_abandonment")
    dx.run([action])
    [request] = dx.ses_requests
    tags = tags_of(request)
    assert tags["action_id"] == [action["action_id"]] and tags["trigger"] == ["cart_abandonment"]
    ses_id = dx.entry("u1", action["action_id"]).provider_id
    assert ses_id

    def note(kind: str) -> dict[str, Any]:
        n = an_ses_event(kind, ses_id=ses_id, at="2026-03-02T12:03:00.000Z")
        n["mail"]["tags"] = {"ses:configuration-set": [C.SES_CONFIGURATION_SET], **tags}
        return n

    # when SES publishes an open and a click, and SNS delivers the open twice
    dx.clock.set(dx.clock.now() + timedelta(minutes=10))
    feedback = Fn(C.FN_FEEDBACK)
    assert feedback(an_sns_event(note("Open"), note("Click"))) == {"suppressed": 0, "archived": 2}
    assert feedback(an_sns_event(note("Open")))["archived"] == 1

    # then each is in the view once, under Segment's names, linked to the trigger
    rows = sql(
        dx,
        archive_cache / "sql",
        "SELECT event, user_id, properties->>'trigger_id', properties->>'action_id', "
        "properties->>'email_id' FROM events WHERE event LIKE 'Email %' ORDER BY event",
    )
    assert rows == [
        ("Email Link Clicked", "u1", "cart_abandonment", action["action_id"], ses_id),
        ("Email Opened", "u1", "cart_abandonment", action["action_id"], ses_id),
    ]
    status, report = dx.get("/v1/reports/triggers", query="days=7")
    assert status == 200
    cart = next(t for t in report["triggers"] if t["id"] == "cart_abandonment")
    assert (cart["fired"], cart["sent"], cart["response_rate"]) == (1, 1, 1.0)
    assert cart["daily"][-1] == {
        "date": "2026-03-02",
        "fired": 1,
        "sent": 1,
        "conversions": 0,
        "anomaly": False,
    }
    assert {t["id"] for t in report["triggers"]} >= {
        "cart_abandonment",
        "inactivity_winback",
        "repeat_product_view",
        "product_dwell_upsell",
    }


def test_the_route_refuses_days_outside_1_to_365(dx: Delivery) -> None:
    assert dx.get("/v1/reports/triggers", query="days=0")[0] == 400
    assert dx.get("/v1/reports/triggers", query="days=366")[0] == 400
    status, report = dx.get("/v1/reports/triggers")
    assert status == 200 and len(report["triggers"][0]["daily"]) == 28
