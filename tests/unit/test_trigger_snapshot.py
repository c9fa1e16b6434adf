"""The small copies of event properties the engine keeps (late events, episodes waiting
for an identify, the dwell page) are bounded in stored bytes, whatever the alphabet."""

from __future__ import annotations

from nudge.domain.sizes import stored_len
from nudge.domain.triggers.values import (
    KEY_TEXT,
    SNAPSHOT_FIELDS,
    SNAPSHOT_NAME,
    SNAPSHOT_TEXT,
    key_values,
    snapshot,
)


def test_a_snapshot_is_bounded_in_stored_bytes() -> None:
    props = {("ü" * 500) + str(i): "😀" * 1000 for i in range(20)}
    props["nested"] = {"a": 1}  # type: ignore[assignment]
    snap = snapshot(props)
    assert len(snap) <= SNAPSHOT_FIELDS
    for name, value in snap.items():
        assert stored_len(name) - 2 <= SNAPSHOT_NAME
        assert stored_len(value) - 2 <= SNAPSHOT_TEXT
    bound = SNAPSHOT_FIELDS * (SNAPSHOT_NAME + SNAPSHOT_TEXT + 6) + 2
    assert stored_len(snap) <= bound


def test_short_properties_are_kept_as_they_are() -> None:
    props = {"product_id": "p1", "price": 9.5, "name": "Shoe", "in_stock": True}
    assert snapshot(props) == props


def test_a_key_value_is_cut_to_its_stored_bytes() -> None:
    [key] = key_values({"product_id": "é" * 500}, "product_id")
    assert stored_len(key) - 2 <= KEY_TEXT
