"""API keys under moto: `/v1/keys` creates (the key shown once), lists (never the key) and
revokes them; the last admin key stays; a revoked key is refused by a cold function at
once and by a warm one within the cache period; random keys cannot flush the cache."""

from __future__ import annotations

import json
from typing import Any

import pytest
from nudge import constants as C
from nudge.adapters.keys import DynamoKeyAdmin, DynamoKeyStore, create_key
from nudge.domain.errors import ConflictError, NotFoundError
from nudge.domain.ingest import hash_key
from nudge.domain.keys import key_id_of
from nudge.local.emulation import Resources

from tests.integration.conftest import ADMIN_KEY, WRITE_KEY, Fn, basic, bearer, http


def call(
    api: Fn, method: str, path: str, body: Any = None, key: str = ADMIN_KEY
) -> tuple[int, Any]:
    resp = api(http(method, path, body, headers={"authorization": bearer(key)}))
    return resp["statusCode"], json.loads(resp["body"])


def test_a_created_key_works_is_listed_without_its_secret_and_stops_when_revoked(
    aws: Resources, clock: Any
) -> None:
    api = Fn(C.FN_API)
    status, created = call(api, "POST", "/v1/keys", {"kind": "write", "label": "web shop"})
    assert status == 201
    key = created["key"]
    assert key.startswith("wk_") and created["id"] == key_id_of(hash_key(key))
    ingest = Fn(C.FN_INGEST)
    event = {"userId": "u1", "event": "Product Viewed", "properties": {"product_id": "p"}}
    assert (
        ingest(http("POST", "/v1/track", event, headers={"authorization": basic(key)}))[
            "statusCode"
        ]
        == 200
    )
    status, listed = call(api, "GET", "/v1/keys")
    assert status == 200
    mine = [k for k in listed["keys"] if k["id"] == created["id"]]
    assert mine == [{k: created[k] for k in ("id", "kind", "label", "created_at")}]
    assert key not in json.dumps(listed) and hash_key(key) not in json.dumps(listed)
    status, revoked = call(api, "DELETE", f"/v1/keys/{created['id']}")
    assert status == 200 and revoked["id"] == created["id"]
    cold = Fn(C.FN_INGEST)  # a function started after the revocation
    resp = cold(http("POST", "/v1/track", event, headers={"authorization": basic(key)}))
    assert resp["statusCode"] == 401
    assert call(api, "DELETE", f"/v1/keys/{created['id']}")[0] == 404


def test_the_last_admin_key_cannot_be_revoked_but_a_replaced_one_can(aws: Resources) -> None:
    api = Fn(C.FN_API)
    first = key_id_of(hash_key(ADMIN_KEY))
    status, body = call(api, "DELETE", f"/v1/keys/{first}")
    assert status == 409 and "last admin key" in body["message"]
    status, second = call(api, "POST", "/v1/keys", {"kind": "admin"})
    assert status == 201
    assert call(api, "DELETE", f"/v1/keys/{first}", key=second["key"])[0] == 200
    # the revoking function forgot the key at once
    assert call(api, "GET", "/v1/keys")[0] == 401
    assert call(api, "GET", "/v1/keys", key=second["key"])[0] == 200


@pytest.mark.parametrize(
    "body",
    [{"kind": "root"}, {"kind": "write", "label": "x" * 101}, {"kind": "write", "label": 3}, []],
)
def test_a_bad_key_request_is_a_400(aws: Resources, body: Any) -> None:
    assert call(Fn(C.FN_API), "POST", "/v1/keys", body)[0] == 400


def test_the_write_key_cannot_manage_keys(aws: Resources) -> None:
    api = Fn(C.FN_API)
    for method, path in (("GET", "/v1/keys"), ("POST", "/v1/keys"), ("DELETE", "/v1/keys/x")):
        assert call(api, method, path, {"kind": "admin"}, key=WRITE_KEY)[0] == 403
        assert api(http(method, path))["statusCode"] == 401


def test_random_keys_do_not_flush_the_cached_real_keys(aws: Resources) -> None:
    now = [0.0]
    store = DynamoKeyStore(monotonic=lambda: now[0], max_unknown=200)  # Lambda: 10,000
    real = hash_key(WRITE_KEY)
    assert store.kind_of(real) == "write"
    looked_up = store.lookups
    # an attacker's random keys, more than the negative cache holds
    flood = 3 * 200
    for i in range(flood):
        assert store.kind_of(hash_key(f"random-{i}")) is None
    assert len(store._unknown) == 200
    assert store.kind_of(real) == "write"
    assert store.lookups == looked_up + flood  # the real key still came from the cache
    now[0] += 61  # past the positive period: read again (a revocation takes effect)
    assert store.kind_of(real) == "write"
    assert store.lookups == looked_up + flood + 1


def test_a_revoked_key_is_refused_by_a_warm_function_after_the_cache_period(
    aws: Resources,
) -> None:
    now = [0.0]
    store = DynamoKeyStore(monotonic=lambda: now[0])
    key = create_key("write")
    assert store.kind_of(hash_key(key)) == "write"
    DynamoKeyAdmin().revoke(key_id_of(hash_key(key)))
    assert store.kind_of(hash_key(key)) == "write"  # cached in this other instance
    now[0] += 60.5
    assert store.kind_of(hash_key(key)) is None
    with pytest.raises(NotFoundError):
        DynamoKeyAdmin().revoke(key_id_of(hash_key(key)))
    with pytest.raises(ConflictError):
        DynamoKeyAdmin().revoke(key_id_of(hash_key(ADMIN_KEY)))


def test_nudge_keys_with_table_bootstraps_a_deployment_without_an_admin_key(
    aws: Resources, capsys: pytest.CaptureFixture[str]
) -> None:
    from nudge.cli import main

    table = aws.env()[C.ENV_KEYS_TABLE]
    assert main(["keys", "create", "--kind", "admin", "--table", table, "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert DynamoKeyStore().kind_of(hash_key(created["key"])) == "admin"
    assert main(["keys", "list", "--table", table, "--json"]) == 0
    ids = {k["id"] for k in json.loads(capsys.readouterr().out)["keys"]}
    assert created["id"] in ids
    assert main(["keys", "revoke", created["id"], "--table", table]) == 0
    assert main(["keys", "revoke", created["id"], "--table", table]) == 2
    assert "no key" in capsys.readouterr().err
