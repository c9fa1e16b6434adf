"""The deliver function under injected faults (issue 12, parts 4 and 10): actions
through the real handler and the real actions FIFO queue under moto, with 20 % of
DynamoDB writes refused, 20 % of SES/SNS calls throttled, SES/SNS 500s and timeouts after
sending, and the function dying after a send (tests/integration/faults.py), every failed
record coming back as SQS brings it back, until maxReceiveCount moves it to the
dead-letter queue; then the outage ends and an operator redrives that queue.

What must hold: no message sent twice; no message that went out logged as anything but
`sent` or `unconfirmed`; nothing logged `sent` that did not go out; every action ends
with a final status and a reason in the delivery log (none left `sending`); the caps
count what went out (no user above 3 messages). The figures are printed (`pytest -s`).
`NUDGE_FAULT_ACTIONS` sets the number of actions: 100 by default (about 15 s), 1,000
with `make fuzz` (docs/decisions.md D41 has that run's figures)."""

from __future__ import annotations

import os
import random
import shutil
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import nudge.adapters.delivery as delivery_adapters
import pytest
from moto.backends import get_backend
from nudge import constants as C
from nudge.adapters.delivery import DynamoInbox
from nudge.domain.delivery import FINAL
from nudge.local.emulation import ACCOUNT, REGION

from tests.integration.delivery_support import Delivery, dx_fixture  # noqa: F401
from tests.integration.faults import Faults, Rates, drive, redrive

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = int(os.environ.get("NUDGE_FAULT_ACTIONS", "100"))
VISIBILITY = timedelta(seconds=180)  # the actions queue's (6 x the deliver timeout)

# one action per channel and user (so that what reached a user's address names the
# action), the in-app channel twice: five actions compete for the cap of 3 a day
KINDS: dict[str, dict[str, Any]] = {
    "email": {"trigger_id": "cart_abandonment"},
    "sms": {"trigger_id": "cart_sms", "channel": "sms", "template": "cart_sms"},
    "push": {"trigger_id": "repeat_product_view", "channel": "push"},
    "inapp": {"trigger_id": "product_dwell_upsell"},
    "inapp2": {"trigger_id": "inapp_reminder", "channel": "inapp", "template": "cart_abandonment"},
}


def _templates_with_an_sms_one(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    (folder / "cart_sms.yaml").write_text(
        'sms:\n  text: "{{ traits.first_name }}, your cart waits"\n'
    )
    return folder


def _actions(dx: Delivery, total: int, rng: random.Random) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    i = 0
    while len(actions) < total:
        user = f"f{i:05d}"
        dx.seed(
            user,
            email=f"{user}@example.com",
            phone=f"+1555{i:07d}",
            devices=[dx.endpoint(f"token-{user}")],
        )
        kinds = rng.sample(list(KINDS), rng.randint(1, len(KINDS)))
        for kind in kinds[: total - len(actions)]:
            spec = dict(KINDS[kind])
            actions.append(dx.action(user, spec.pop("trigger_id"), **spec))
        i += 1
    return actions


def _delivered(dx: Delivery, actions: list[dict[str, Any]]) -> Counter[str]:
    """How many messages reached each action's recipient (SES, SNS, the inbox)."""
    by_address: dict[tuple[str, str], str] = {}
    for a in actions:
        channel = a["action"]["channel"]
        user = a["user_id"]
        if channel == "email":
            by_address[("email", f"{user}@example.com")] = a["action_id"]
        if channel == "sms":
            by_address[("sms", f"+1555{int(user[1:]):07d}")] = a["action_id"]
        if channel == "push":
            by_address[("push", f"token-{user}")] = a["action_id"]
    got: Counter[str] = Counter()
    reached = [("email", mail.destinations["ToAddresses"][0]) for mail in dx.emails()]
    reached += [("sms", phone) for phone, _ in dx.sms()]
    for endpoint in get_backend("sns")[ACCOUNT][REGION].platform_endpoints.values():
        reached += [("push", endpoint.token)] * len(endpoint.messages)
    for address in reached:  # a message no action asked for counts as doubled
        got[by_address.get(address, f"unasked {address}")] += 1 + (address not in by_address)
    inbox = DynamoInbox()
    for user in {a["user_id"] for a in actions}:
        for m in inbox.messages(user):
            assert m.action_id is not None
            got[m.action_id] += 1
    return got


@pytest.fixture
def partition_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's Table.query sorts the whole table on every call (`all_items`), which makes a
    1,000-action run quadratic in moto; here a query without an index reads its own
    partition only, as DynamoDB does: the same answers at a partition's cost."""
    from moto.dynamodb.models.table import Table

    real = Table.query

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name is not None or not self.range_key_attr or hash_key is None:
            return real(self, hash_key, *args, **kwargs)
        items = list(self.items.get(hash_key, {}).values())
        self.all_items = lambda: items
        try:
            return real(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    monkeypatch.setattr(Table, "query", query)


def _entry_of(dx: Delivery, action_id: str, actions: list[dict[str, Any]]) -> bool:
    user = next(a["user_id"] for a in actions if a["action_id"] == action_id)
    return any(e.action_id == action_id for e in dx.log(user))


def test_actions_under_injected_faults_are_sent_at_most_once_and_each_ends_with_an_outcome(
    dx: Delivery, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, partition_queries: None
) -> None:
    monkeypatch.setattr(delivery_adapters, "THROTTLE_BACKOFF_S", 0.0)  # not what is measured
    monkeypatch.setenv(C.ENV_TEMPLATES_PATH, str(_templates_with_an_sms_one(tmp_path)))
    dx.deliver.fn.module.deps.cache_clear()
    rng = random.Random(12)
    actions = _actions(dx, ACTIONS, rng)
    dx.enqueue(actions)
    dx.deliver({"Records": []})  # the cold start: the function's clients, to hook faults on
    faults = Faults(Rates(), seed=12, inbox_table=dx.res.tables[C.INBOX])

    # when
    with faults.installed():
        run = drive(
            dx.deliver,
            queue_url=dx.queue_url,
            queue_arn=dx.queue_arn,
            clock=dx.clock,
            visibility=VISIBILITY,
        )
        faults.on = False

    # and once the outage is over, an operator redrives the dead-letter queue
    dead = redrive(dlq_url=dx.res.queue_urls[C.ACTIONS_QUEUE + "-dlq"], queue_url=dx.queue_url)
    dead_ids = {str(a["action_id"]) for a in dead}
    no_entry_when_dead = [a for a in dead_ids if not _entry_of(dx, a, actions)]
    after = drive(
        dx.deliver,
        queue_url=dx.queue_url,
        queue_arn=dx.queue_arn,
        clock=dx.clock,
        visibility=VISIBILITY,
    )

    # then
    delivered = _delivered(dx, actions)
    entries = {e.action_id: e for u in {a["user_id"] for a in actions} for e in dx.log(u)}
    status = Counter(
        entries[a["action_id"]].status if a["action_id"] in entries else "(no entry)"
        for a in actions
    )
    doubled = [a for a, n in delivered.items() if n > 1]
    went_out_logged_otherwise = [
        a["action_id"]
        for a in actions
        if delivered[a["action_id"]]
        and entries.get(a["action_id"]) is not None
        and entries[a["action_id"]].status not in ("sent", "unconfirmed")
    ]
    logged_sent_not_out = [
        aid for aid, e in entries.items() if e.status == "sent" and not delivered[aid]
    ]
    no_outcome = [
        a["action_id"]
        for a in actions
        if (e := entries.get(a["action_id"])) is None
        or e.status not in FINAL | {"deferred"}
        or not e.reason
    ]
    unconfirmed = [aid for aid, e in entries.items() if e.status == "unconfirmed"]
    per_user: Counter[str] = Counter()
    for a in actions:
        per_user[a["user_id"]] += delivered[a["action_id"]]
    print(
        f"\nfault run: {len(actions)} actions of {len(per_user)} users in {run.seconds:.1f} s "
        f"({run.invocations} invocations, {run.rounds} rounds of {VISIBILITY.seconds} s)\n"
        f"  injected: {dict(sorted(faults.injected.items()))}\n"
        f"  function died: {run.crashes}, function errors: {len(run.function_errors)}, "
        f"records redelivered: {run.redeliveries}, in the dead-letter queue: {len(dead)} "
        f"({len(no_entry_when_dead)} of them without a log entry), redriven and delivered "
        f"in {after.invocations} invocations\n"
        f"  outcomes: {dict(status.most_common())}\n"
        f"  sent {status['sent']}, deferred {status['deferred']}, "
        f"failed with a reason {status['failed']}, ambiguous (unconfirmed) {len(unconfirmed)} "
        f"({sum(1 for a in unconfirmed if delivered[a])} of them did go out)\n"
        f"  doubled {len(doubled)}, went out but logged otherwise "
        f"{len(went_out_logged_otherwise)}, logged sent but not out {len(logged_sent_not_out)}, "
        f"no final outcome {len(no_outcome)}, most messages to one user "
        f"{max(per_user.values())}"
    )
    assert faults.injected["dynamodb write refused"] and faults.injected["sesv2 throttled"]
    assert run.crashes and any("timeout after" in k for k in faults.injected)  # it can fail
    assert run.function_errors == [] and after.function_errors == []
    assert doubled == []
    assert went_out_logged_otherwise == []
    assert logged_sent_not_out == []
    assert no_outcome == [], [entries.get(a) for a in no_outcome[:5]]
    assert max(per_user.values()) <= 3  # the caps counted what went out
