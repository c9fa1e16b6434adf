"""Local mode over HTTP: one `nudge dev` per test session, started in-process on free
ports (the same LocalMode object the CLI runs). Tests isolate themselves by user id."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from nudge.local.server import LocalConfig, LocalMode


def free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


class Client:
    def __init__(self, local: LocalMode) -> None:
        self.local = local
        self.url = local.url
        self.s = requests.Session()

    def send(self, kind: str, body: dict[str, Any], **kw: Any) -> requests.Response:
        return self.s.post(f"{self.url}/v1/{kind}", json=body, auth=(self.local.write_key, ""), **kw)

    def track(self, user: str, event: str, props: dict[str, Any] | None = None, **extra: Any) -> requests.Response:
        r = self.send("track", {"userId": user, "event": event, "properties": props or {}, **extra})
        assert r.status_code == 200, r.text
        return r

    def admin_get(self, path: str, **kw: Any) -> requests.Response:
        return self.s.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {self.local.admin_key}"}, **kw)

    def user(self, user_id: str) -> dict[str, Any]:
        r = self.admin_get(f"/v1/users/{user_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def settle(self) -> None:
        r = self.s.post(f"{self.url}/_local/settle")
        assert r.status_code == 200, r.text

    def clock(self, **body: Any) -> dict[str, Any]:
        r = self.s.post(f"{self.url}/_local/clock", json=body)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="session")
def local() -> Iterator[LocalMode]:
    port = free_port_pair()
    lm = LocalMode(LocalConfig(port=port, aws_port=port + 1)).start()
    yield lm
    lm.stop()


@pytest.fixture
def client(local: LocalMode) -> Client:
    return Client(local)


@pytest.fixture
def uid() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"
