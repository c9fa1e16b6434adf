"""GET /v1/users/{userId}/export under moto (GDPR access): the profile, inbox, delivery
log, devices and archived events of the user and the ids merged into it, read from the
real tables and the archive bucket (DuckDB over the objects Firehose wrote); the admin
key only; a 404 once the user is erased."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from nudge import constants as C
from nudge.local.emulation import Resources

from tests.integration.conftest import ADMIN_KEY, WRITE_KEY, Fn, basic, bearer, drain, http


def send(ingest: Fn, items: list[dict[str, Any]]) -> None:
    resp = ingest(http("POST", "/v1/batch", {"batch": items}, headers={"authorization": basic()}))
    assert resp["statusCode"] == 200, resp


def call(api: Fn, path: str, key: str | None = None, query: str = "") -> tuple[int, Any]:
    headers = {"authorization": bearer(key)} if key else {}
    resp = api(http("GET", path, headers=headers, query=query))
    return resp["statusCode"], json.loads(resp["body"]) if resp.get("body") else None


def test_the_export_reads_every_store_and_the_archive(aws: Resources, clock: Any) -> None:
    ingest, process, api = Fn(C.FN_INGEST), Fn(C.FN_PROCESS), Fn(C.FN_API)
    at = clock.now().isoformat()
    send(
        ingest,
        [
            {"type": "page", "anonymousId": "anon-7", "name": "Home", "messageId": "p1"},
            {
                "type": "identify",
                "userId": "ada",
                "anonymousId": "anon-7",
                "traits": {"email": "ada@example.com"},
                "messageId": "i1",
                "timestamp": at,
            },
            *(
                {
                    "type": "track",
                    "userId": "ada",
                    "event": "Product Viewed",
                    "properties": {"product_id": f"p{i}"},
                    "messageId": f"v{i}",
                    "timestamp": at,
                }
                for i in range(3)
            ),
            {"type": "track", "userId": "bob", "event": "Signed Up", "messageId": "b1"},
        ],
    )
    drain(aws, process)
    device = api(
        http(
            "POST",
            "/v1/users/ada/devices",
            {"platform": "fcm", "token": "tok-ada"},
            headers={"authorization": bearer()},
        )
    )
    assert device["statusCode"] == 201, device
    # when
    status, doc = call(api, "/v1/users/anon-7/export", ADMIN_KEY)
    # then the whole user, through the anonymous id merged into them
    assert status == 200, doc
    assert doc["user_id"] == "ada" and set(doc["ids"]) == {"ada", "anon-7"}
    assert doc["profile"]["traits"]["email"] == "ada@example.com"
    assert [d["token"] for d in doc["devices"]] == ["tok-ada"]
    assert doc["devices"][0]["endpoint_arn"].startswith("arn:aws:sns:")
    assert {e["message_id"] for e in doc["events"]} == {"p1", "i1", "v0", "v1", "v2"}
    assert doc["events_next"] is None
    # nothing of another user; no key, the write key, an unknown user, a forged cursor
    # (quoted: a bare "b1" turns up in the random hex of an SNS endpoint's ARN, as it did
    # in a CI run; "bob" cannot, "o" is not a hex digit)
    assert '"b1"' not in json.dumps(doc) and "bob" not in json.dumps(doc)
    assert call(api, "/v1/users/ada/export")[0] == 401
    assert call(api, "/v1/users/ada/export", WRITE_KEY)[0] == 403
    assert call(api, "/v1/users/nobody/export", ADMIN_KEY)[0] == 404
    assert call(api, "/v1/users/ada/export", ADMIN_KEY, query="after=nope")[0] == 400
    # and once erased, there is nothing to export
    erased = api(http("DELETE", "/v1/users/ada", headers={"authorization": bearer()}))
    assert erased["statusCode"] == 202
    assert call(api, f"/v1/users/{quote('ada')}/export", ADMIN_KEY)[0] == 404
