"""Verifying the audit log's chains: recompute everything, trust nothing, report the first break.

Per tenant, in position order: positions must be contiguous from 1, each hash must recompute
from the stored ``prev_hash`` and payload, the payload must be canonical JSON with exactly the
expected fields, every column must equal its payload field (so editing a column *or* the
payload is caught), each ``prev_hash`` must equal the previous record's hash, ``row_id`` must
grow with position, and the head row must name the last record's position and hash. Limits:
someone with write access who rewrites a chain's whole suffix *and* its head is not
detectable from inside the database; compare head hashes against a copy kept elsewhere to
catch that. ``AuditLog.verify`` reads the rows (one snapshot) and calls ``verify_chain``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from charter.core.canonical import canonical_json, sha256_hex
from charter.observability.audit_record import (
    ALL_COLUMNS,
    COLUMN_FIELDS,
    GENESIS_HASH,
    PAYLOAD_KEYS,
    REQUIRED_PAYLOAD_KEYS,
    is_fee_text,
)

__all__ = ["ChainBreak", "VerifyReport", "verify_chain"]


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first place a tenant's chain stops being trustworthy."""

    tenant: str
    position: int
    row_id: int | None
    problem: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the break."""
        return {
            "tenant": self.tenant,
            "position": self.position,
            "row_id": self.row_id,
            "problem": self.problem,
        }


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of ``AuditLog.verify``.

    ``first_break`` is the lowest bad position in the first broken tenant (tenants in sorted
    order). Checking a tenant stops at its first break, since everything after it is suspect;
    ``records_checked`` counts the records actually examined.
    """

    ok: bool
    records_checked: int
    tenants: tuple[str, ...]
    first_break: ChainBreak | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the report."""
        return {
            "ok": self.ok,
            "records_checked": self.records_checked,
            "tenants": list(self.tenants),
            "first_break": None if self.first_break is None else self.first_break.as_dict(),
        }


def verify_chain(
    tenant: str, rows: Iterable[Sequence[Any]], head: tuple[int, str] | None
) -> tuple[int, ChainBreak | None]:
    """Check one tenant's rows (in position order) against each other and the head.

    Returns:
        How many records were examined, and the first break (None if the chain is intact).
    """
    expected = 1
    prev_hash = GENESIS_HASH
    last_row_id = 0
    checked = 0
    for row in rows:
        checked += 1
        row_id = row[0]
        values = dict(zip(ALL_COLUMNS, row[1:], strict=True))
        problem = _check_record(values, expected, prev_hash, row_id, last_row_id)
        if problem is not None:
            position, problem_row, text = problem
            return checked, ChainBreak(tenant, position, problem_row, text)
        prev_hash = values["hash"]
        last_row_id = row_id
        expected += 1
    found = expected - 1
    if head is None:
        if found == 0:
            return checked, None
        return checked, ChainBreak(
            tenant, found, last_row_id, "chain head is missing (audit_heads row deleted?)"
        )
    head_position, head_hash = head
    if head_position > found:
        return checked, ChainBreak(
            tenant,
            found + 1,
            None,
            f"chain head says {head_position} records but only {found} found (truncated?)",
        )
    if head_position < found:
        return checked, ChainBreak(
            tenant,
            head_position + 1,
            None,
            f"chain head says {head_position} records but {found} found (head rolled back?)",
        )
    if head_hash != prev_hash:
        return checked, ChainBreak(
            tenant, found, last_row_id, f"chain head does not match record {found} (altered?)"
        )
    return checked, None


def _sealed_entry(data: dict[str, Any]) -> bool:
    """Whether a payload has the keys of a sealed entry, its optional fields each left out or
    in the form an entry takes (never a sealed null: see audit_record's "Optional fields")."""
    keys = frozenset(data)
    if not REQUIRED_PAYLOAD_KEYS <= keys <= PAYLOAD_KEYS:
        return False
    if "event_id" in keys and not isinstance(data["event_id"], str):
        return False
    return "fee_usd" not in keys or is_fee_text(data["fee_usd"])


def _check_record(
    values: dict[str, Any], expected: int, prev_hash: str, row_id: int, last_row_id: int
) -> tuple[int, int | None, str] | None:
    """The first problem with one stored record, as (position, row_id, problem), or None."""
    position = values["position"]
    if type(position) is not int:
        return expected, row_id, f"record has a non-integer position {position!r}"
    if position != expected:
        if position > expected:
            return expected, None, f"record {expected} is missing (deleted?)"
        return expected, row_id, f"records out of order (found position {position})"
    payload = values["payload"]
    if sha256_hex(f"{values['prev_hash']}\n{payload}") != values["hash"]:
        return expected, row_id, "record was altered (hash mismatch)"
    try:
        data = json.loads(payload)
        canonical = isinstance(data, dict) and canonical_json(data) == payload
    except (ValueError, RecursionError):
        canonical = False
    if not (canonical and _sealed_entry(data)):
        return expected, row_id, "record was altered (payload is not a sealed audit entry)"
    if type(data["position"]) is not int or data["position"] != position:
        return (
            expected,
            row_id,
            f"records out of order (record sealed as position {data['position']} is stored "
            f"at position {position})",
        )
    if data["tenant"] != values["tenant"]:
        return expected, row_id, f"record was moved here from tenant {data['tenant']!r}"
    for name in COLUMN_FIELDS:
        if values[name] != data.get(name):  # only event_id may be absent (None)
            return (
                expected,
                row_id,
                f"record was altered (column {name!r} does not match the sealed payload)",
            )
    if values["prev_hash"] != prev_hash:
        return (
            expected,
            row_id,
            f"chain link broken (prev_hash does not match the hash of record {expected - 1})",
        )
    if row_id <= last_row_id:
        return expected, row_id, "records out of order (row_id goes backwards)"
    return None
