"""Local mode over HTTP: one `nudge dev` per test session, started in-process on free
ports (the same LocalMode object the CLI runs). Tests isolate themselves by user id."""

from __future__ import annotations

import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
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
        return self.s.post(
            f"{self.url}/v1/{kind}", json=body, auth=(self.local.write_key, ""), **kw
        )

    def track(
        self, user: str, event: str, props: dict[str, Any] | None = None, **extra: Any
    ) -> requests.Response:
        r = self.send("track", {"userId": user, "event": event, "properties": props or {}, **extra})
        assert r.status_code == 200, r.text
        return r

    def admin_get(self, path: str, **kw: Any) -> requests.Response:
        return self.s.get(
            f"{self.url}{path}", headers={"Authorization": f"Bearer {self.local.admin_key}"}, **kw
        )

    def user(self, user_id: str) -> dict[str, Any]:
        r = self.admin_get(f"/v1/users/{user_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def settle(self) -> None:
        r = self.s.post(f"{self.url}/_local/settle")
        assert r.status_code == 200, r.text

    def outbox(self, user_id: str | None = None) -> list[dict[str, Any]]:
        r = self.s.get(f"{self.url}/_local/outbox")
        assert r.status_code == 200, r.text
        msgs = r.json()["messages"]
        return [m for m in msgs if user_id is None or m["user_id"] == user_id]

    def deliveries(self, user_id: str) -> list[dict[str, Any]]:
        r = self.admin_get(f"/v1/users/{user_id}/deliveries")
        assert r.status_code == 200, r.text
        return r.json()["deliveries"]

    def clock(self, **body: Any) -> dict[str, Any]:
        r = self.s.post(f"{self.url}/_local/clock", json=body)
        assert r.status_code == 200, r.text
        return r.json()


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def triggers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default triggers plus two more (tests/e2e/fixtures/extra_triggers.yaml), the
    v2 condition kinds' (v2_triggers.yaml), a segment filter's (train_triggers.yaml) and
    a three-variant experiment's (experiment_triggers.yaml), with the project's
    templates beside them as the loader expects."""
    root = tmp_path_factory.mktemp("defs")
    (root / "triggers").mkdir()
    shutil.copy(ROOT / "triggers" / "default.yaml", root / "triggers" / "default.yaml")
    fixtures = Path(__file__).parent / "fixtures"
    shutil.copy(fixtures / "extra_triggers.yaml", root / "triggers" / "extra.yaml")
    shutil.copy(fixtures / "v2_triggers.yaml", root / "triggers" / "v2.yaml")
    shutil.copy(fixtures / "train_triggers.yaml", root / "triggers" / "train.yaml")
    shutil.copy(fixtures / "experiment_triggers.yaml", root / "triggers" / "experiment.yaml")
    (root / "templates").symlink_to(ROOT / "templates")
    return root / "triggers"


@pytest.fixture(scope="session")
def local(triggers_dir: Path) -> Iterator[LocalMode]:
    port = free_port_pair()
    lm = LocalMode(
        LocalConfig(port=port, aws_port=port + 1, triggers_path=str(triggers_dir))
    ).start()
    yield lm
    lm.stop()


@pytest.fixture
def client(local: LocalMode) -> Client:
    return Client(local)


@pytest.fixture
def uid() -> str:
    """A new user whom the shipped experiment sends the cart reminder (its `reminder`
    variant: a tenth of users are in `holdout` and get none; tests of the holdout pick
    theirs with `holdout_uid`)."""
    return _user_in("reminder")


@pytest.fixture
def holdout_uid() -> str:
    return _user_in("holdout")


def _user_in(variant: str) -> str:
    from nudge.domain.triggers import load_triggers
    from nudge.domain.triggers.experiments import draw

    cart = load_triggers(ROOT / "triggers").get("cart_abandonment")
    exp = cart.experiment if cart is not None else None
    while True:
        user = f"u-{uuid.uuid4().hex[:10]}"
        if exp is None or draw(exp, user).name == variant:
            return user
