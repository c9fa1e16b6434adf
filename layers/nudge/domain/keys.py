"""API keys as nudge manages them (`nudge keys`, `/v1/keys`): a key is shown once, when
it is created; afterwards only its id (the first 16 hex digits of its SHA-256 digest, which
reveal nothing of the key), kind, label and creation time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from nudge.domain.errors import ValidationFailedError
from nudge.domain.ingest import KeyKind

KEY_ID_HEX = 16
MAX_LABEL_CHARS = 100
KINDS: tuple[KeyKind, ...] = ("write", "admin")


def key_id_of(key_hash: str) -> str:
    return key_hash[:KEY_ID_HEX]


@dataclass(frozen=True)
class KeyInfo:
    id: str
    kind: KeyKind
    label: str
    created_at: int  # unix seconds

    def view(self) -> dict[str, Any]:
        at = datetime.fromtimestamp(self.created_at, UTC) if self.created_at else None
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "created_at": at.isoformat().replace("+00:00", "Z") if at else None,
        }


class KeyAdmin(Protocol):
    def create(self, kind: KeyKind, label: str = "") -> tuple[str, KeyInfo]: ...

    def list(self) -> list[KeyInfo]: ...

    def revoke(self, key_id: str, *, keep_admin: bool = True) -> KeyInfo: ...


def key_request(body: Any) -> tuple[KeyKind, str]:
    """`POST /v1/keys`'s body: `{"kind": "write"|"admin", "label"?}`."""
    if not isinstance(body, dict):
        raise ValidationFailedError("the body must be a JSON object")
    kind = body.get("kind")
    if kind not in KINDS:
        raise ValidationFailedError(
            'kind must be "write" or "admin"',
            details=[{"field": "kind", "message": f"got {kind!r}"}],
        )
    label = body.get("label", "")
    if not isinstance(label, str) or len(label) > MAX_LABEL_CHARS:
        raise ValidationFailedError(
            f"label must be text of at most {MAX_LABEL_CHARS} characters",
            details=[{"field": "label", "message": "too long or not text"}],
        )
    return kind, label
