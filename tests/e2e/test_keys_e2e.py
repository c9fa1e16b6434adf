"""`nudge keys` against local mode: a write key created with the CLI ingests, is listed
without its secret, and once revoked (before any function cached it) is refused."""

from __future__ import annotations

import json

import pytest
import requests

from tests.e2e.conftest import Client
from tests.e2e.test_archive_e2e import nudge

pytestmark = pytest.mark.e2e


def test_keys_created_listed_and_revoked_with_the_cli(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUDGE_ADMIN_KEY", client.local.admin_key)
    code, out, err = nudge(
        "keys", "create", "--kind", "write", "--label", "shop", "--url", client.url
    )
    assert code == 0, err
    key = out.strip()
    assert key.startswith("wk_") and "cannot show it again" in err
    event = {"userId": "keys-e2e", "event": "Song Played"}
    r = requests.post(f"{client.url}/v1/track", json=event, auth=(key, ""), timeout=10)
    assert r.status_code == 200, r.text

    code, out, err = nudge("keys", "list", "--url", client.url, "--json")
    assert code == 0, err
    listed = json.loads(out)["keys"]
    assert key not in out
    assert {"write", "admin"} <= {k["kind"] for k in listed}

    code, out, err = nudge("keys", "create", "--kind", "write", "--url", client.url, "--json")
    assert code == 0, err
    unused = json.loads(out)
    code, _, err = nudge("keys", "revoke", unused["id"], "--url", client.url)
    assert code == 0, err
    r = requests.post(f"{client.url}/v1/track", json=event, auth=(unused["key"], ""), timeout=10)
    assert r.status_code == 401
    code, _, err = nudge("keys", "revoke", unused["id"], "--url", client.url)
    assert code == 2 and "no key" in err
