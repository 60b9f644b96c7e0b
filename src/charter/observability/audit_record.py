"""The audit log's record format: what an entry holds, how it is sealed, how it reads back.

Sealing
    Each record gets a 1-based ``position`` in its tenant's chain. Its *payload* is the
    canonical JSON (``charter.core.canonical``) of every ``AuditEntry`` field plus
    ``position``; ``at`` is written in UTC as ISO 8601 with microseconds and offset, ``roles``
    as a list. The record's hash is ``sha256_hex(prev_hash + "\\n" + payload)``, where
    ``prev_hash`` is the previous record's hash in the same tenant, or ``"0" * 64`` for the
    first. Chains are per tenant so one tenant's records can be exported, verified or purged
    without the others.

Optional fields
    The format grows by optional fields, each left out of the payload when it is None, so a
    record without one hashes exactly as it did before the field existed, and ``verify``
    accepts both: ``event_id`` (records since event ids), and ``fee_usd`` (a tool call's
    record since fees were audited: what the run's budget charged for the call as its
    tool's fee, ``ToolResult.fee_usd``, as plain decimal text; see ``fee_text``). A sealed
    optional field is never null: one that is was forged.

Columns
    ``audit_records`` keeps the exact payload text (the thing that was hashed) *and* every
    scalar field in its own column, so the log can be queried with plain SQL (``roles``,
    ``arguments`` and ``fee_usd`` live only in the payload; use ``json_extract`` on SQLite,
    ``payload::json`` on Postgres: a fee is summed over a run's records, not filtered on,
    and a column would have cost a migration of the largest table). Text columns cannot
    hold NUL characters on Postgres, so an entry with one in a column field is refused on
    both backends (inside ``arguments`` it is fine: the payload escapes it).

``prepare_entry`` serializes everything about an entry that does not depend on its position,
in the caller's thread; the writer (``charter.observability.audit``) splices the position in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, Final, Literal, get_args

from charter.core.canonical import canonical_text, to_jsonable
from charter.core.errors import AuditUnavailable
from charter.storage.tables import AUDIT_COLUMNS

__all__ = [
    "ALL_COLUMNS",
    "COLUMN_FIELDS",
    "ENTRY_FIELDS",
    "GENESIS_HASH",
    "OPTIONAL_PAYLOAD_KEYS",
    "PAYLOAD_KEYS",
    "REQUIRED_PAYLOAD_KEYS",
    "AuditEntry",
    "AuditKind",
    "AuditRecord",
    "at_text",
    "fee_text",
    "is_fee_text",
    "prepare_entry",
    "record_from_row",
]

AuditKind = Literal[
    "run_started", "tool_call", "run_finished", "approval_decision", "kill_switch", "governance"
]

GENESIS_HASH: Final = "0" * 64
"""The ``prev_hash`` of the first record of every tenant's chain."""

_KINDS: Final[frozenset[str]] = frozenset(get_args(AuditKind))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What a caller records: one run start, tool call or run end.

    ``arguments`` must already be redacted and JSON-able. It is read back in its JSON form:
    tuples come back as lists and ``Decimal`` values as exact strings. ``event_id``, when set,
    makes the append idempotent: see "Event ids" in the module docstring. ``fee_usd``: see
    "Optional fields" there.

    Raises:
        ValueError: ``at`` is naive, ``kind`` is unknown or ``tenant`` is empty.
        ValueError: ``fee_usd`` is not plain decimal text (``fee_text``).
        TypeError: a field has the wrong type (checked here so that one bad entry cannot
            fail a group commit shared with other callers).
    """

    kind: AuditKind
    at: datetime
    tenant: str
    user: str
    service_principal: str
    roles: tuple[str, ...]
    environment: str
    run_id: str
    charter_name: str
    charter_sha256: str
    model: str
    prompt_sha256: str
    tool: str | None
    arguments: dict[str, Any] | None
    arguments_sha256: str | None
    verdict: str | None
    reason: str
    rule_id: str | None
    stage: str | None
    outcome: str
    trace_id: str
    span_id: str
    detail: str = ""
    approval_request_id: str | None = None
    event_id: str | None = None
    fee_usd: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}, not {self.kind!r}")
        if not isinstance(self.at, datetime):
            raise TypeError(f"at must be a datetime, not {type(self.at).__name__}")
        if self.at.utcoffset() is None:
            raise ValueError("at must be timezone-aware (use Clock.now(), which returns UTC)")
        for name in _REQUIRED_TEXT:
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a str, not {type(getattr(self, name)).__name__}")
        for name in _OPTIONAL_TEXT:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str or None, not {type(value).__name__}")
        if not self.tenant:
            raise ValueError("tenant must not be empty; it names the chain the record joins")
        if not isinstance(self.roles, tuple) or not all(isinstance(r, str) for r in self.roles):
            raise TypeError("roles must be a tuple of str")
        if self.arguments is not None and not isinstance(self.arguments, dict):
            raise TypeError(
                f"arguments must be a dict or None, not {type(self.arguments).__name__}"
            )
        if self.fee_usd is not None and not is_fee_text(self.fee_usd):
            raise ValueError(
                f"fee_usd must be plain decimal text of an amount from 0 (as fee_text "
                f"writes it), not {self.fee_usd[:40]!r}"
            )


ENTRY_FIELDS: Final[tuple[str, ...]] = tuple(f.name for f in fields(AuditEntry))
_OPTIONAL_TEXT: Final = (
    "tool",
    "arguments_sha256",
    "verdict",
    "rule_id",
    "stage",
    "approval_request_id",
    "event_id",
    "fee_usd",
)
_REQUIRED_TEXT: Final = tuple(
    n for n in ENTRY_FIELDS if n not in {"kind", "at", "roles", "arguments", *_OPTIONAL_TEXT}
)
PAYLOAD_KEYS: Final[frozenset[str]] = frozenset((*ENTRY_FIELDS, "position"))
# Left out of the payload when None (see "Optional fields" and prepare_entry).
OPTIONAL_PAYLOAD_KEYS: Final[frozenset[str]] = frozenset({"event_id", "fee_usd"})
REQUIRED_PAYLOAD_KEYS: Final[frozenset[str]] = PAYLOAD_KEYS - OPTIONAL_PAYLOAD_KEYS
# Plain decimal text: digits, then a fraction if any; at most 15 digits before the point
# (a quadrillion dollars, as ``stored_usd`` reads amounts back) and 28 after.
_FEE_TEXT: Final = re.compile(r"(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,28})?")

_get_fields = attrgetter(*ENTRY_FIELDS)
# In canonical JSON (sorted keys) "position" sits right before the "prompt_sha256" key; see
# prepare_entry for why the last occurrence of this text is always that key.
_POSITION_SPLICE: Final = ',"prompt_sha256":'
assert max(k for k in ENTRY_FIELDS if k < "position") == "outcome"
assert min(k for k in ENTRY_FIELDS if k > "position") == "prompt_sha256"

# Every scalar field has a column; ``roles``, ``arguments`` and ``fee_usd`` live only in the
# payload (query them with json_extract on SQLite, payload::json on Postgres). ``tenant``
# and ``position`` lead for the index.
COLUMN_FIELDS: Final = tuple(
    n for n in ENTRY_FIELDS if n not in {"tenant", "roles", "arguments", "fee_usd"}
)
_get_columns = attrgetter(*COLUMN_FIELDS)
_AT_INDEX: Final = COLUMN_FIELDS.index("at")
ALL_COLUMNS: Final = ("tenant", "position", *COLUMN_FIELDS, "payload", "prev_hash", "hash")

assert COLUMN_FIELDS == AUDIT_COLUMNS, "audit columns drifted from charter.storage.tables"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An ``AuditEntry`` as sealed into its tenant's chain."""

    entry: AuditEntry
    position: int
    row_id: int
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """A flat JSON-able dict: every entry field plus the chain fields.

        ``at`` is ISO 8601 in UTC, ``roles`` a list, exactly as in the sealed payload.
        """
        entry = self.entry
        out: dict[str, Any] = dict(zip(ENTRY_FIELDS, attrgetter(*ENTRY_FIELDS)(entry), strict=True))
        out["at"] = at_text(entry.at)
        out["roles"] = list(entry.roles)
        out["arguments"] = to_jsonable(entry.arguments)
        out["position"] = self.position
        out["row_id"] = self.row_id
        out["prev_hash"] = self.prev_hash
        out["hash"] = self.hash
        return out


def fee_text(amount: Decimal) -> str:
    """A charged fee as a record keeps it: plain decimal text (``0.05``, ``100``, ``0``).

    Raises:
        ValueError: ``amount`` is negative, not finite, or too large to be a fee.
    """
    if amount.is_zero():
        amount = amount.copy_abs()  # -0 is no charge too
    text = format(amount, "f") if amount.is_finite() else str(amount)
    if not is_fee_text(text):
        raise ValueError(f"a tool fee must be a finite amount from 0, not {amount!r}")
    return text


def is_fee_text(value: object) -> bool:
    """Whether ``value`` is a fee as ``fee_text`` writes it: the only form an entry takes and
    ``verify`` accepts in a sealed payload."""
    return isinstance(value, str) and _FEE_TEXT.fullmatch(value) is not None


def at_text(at: datetime) -> str:
    # UTC and fixed width, so the ``at`` column sorts as text and the hash does not depend on
    # which offset the caller happened to use.
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.isoformat(timespec="microseconds")


def prepare_entry(entry: AuditEntry) -> tuple[str, str, tuple[Any, ...]]:
    """Serialize everything about ``entry`` that does not depend on its chain position.

    Runs in the caller's thread, outside the writer lock, so a bad entry fails alone and the
    group-commit leader only has to splice in the position.

    Returns:
        The payload before and after its position, and the record's column values.
    """
    at = at_text(entry.at)
    payload = dict(zip(ENTRY_FIELDS, _get_fields(entry), strict=True))
    payload["at"] = at
    payload["roles"] = list(entry.roles)
    for name in OPTIONAL_PAYLOAD_KEYS:
        if payload[name] is None:
            del payload[name]  # records without one hash as they did before the field
    # Every field but ``arguments`` is already plain (checked in AuditEntry.__post_init__), so
    # only the arguments need converting before serializing.
    if entry.arguments is not None:
        payload["arguments"] = to_jsonable(entry.arguments)
    try:
        text = canonical_text(payload)
    except TypeError as exc:
        raise ValueError(f"audit entry is not JSON-serializable: {exc}") from exc
    # The sealed payload is this text with '"position":N' inserted before the top-level
    # "prompt_sha256" key. Taking the *last* occurrence finds that key: every top-level value
    # after it is a string, null or a list of strings, and inside JSON strings '"' is always
    # escaped, so ',"prompt_sha256":' cannot occur there. (A key of that name nested in
    # ``arguments`` comes earlier, since "arguments" sorts first.) Tests check the splice
    # against canonical_json of the full payload; verify re-checks it on every record.
    cut = text.rindex(_POSITION_SPLICE)
    columns = list(_get_columns(entry))
    columns[_AT_INDEX] = at
    if "\x00" in entry.tenant or "\x00" in "".join(filter(None, columns)):
        named = zip(("tenant", *COLUMN_FIELDS), (entry.tenant, *columns), strict=True)
        name = next(n for n, value in named if value and "\x00" in value)
        raise ValueError(
            f"audit entry field {name!r} contains a NUL character, which the database cannot "
            "store in a column; remove it before recording"
        )
    return f'{text[:cut]},"position":', text[cut:], tuple(columns)


def _entry_from_payload(data: dict[str, Any]) -> AuditEntry:
    values = {name: data[name] for name in ENTRY_FIELDS if name not in OPTIONAL_PAYLOAD_KEYS}
    for name in OPTIONAL_PAYLOAD_KEYS:
        values[name] = data.get(name)
    values["at"] = datetime.fromisoformat(data["at"])
    values["roles"] = tuple(data["roles"])
    return AuditEntry(**values)


def record_from_row(row: Sequence[Any]) -> AuditRecord:
    payload, tenant, position, row_id, prev_hash, digest = row
    try:
        entry = _entry_from_payload(json.loads(payload))
    except (ValueError, TypeError, KeyError) as exc:
        raise AuditUnavailable(
            f"audit record {position} of tenant {tenant!r} (row {row_id}) cannot be read: "
            f"{exc!r}; run verify to locate the damage"
        ) from exc
    return AuditRecord(
        entry=entry, position=position, row_id=row_id, prev_hash=prev_hash, hash=digest
    )
