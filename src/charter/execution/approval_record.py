"""An approval request as stored, with its decision if it has one, and its statuses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, cast, get_args

from charter.storage.database import from_db_time

__all__ = ["STATUSES", "ApprovalRecord", "ApprovalStatus", "record_from_row"]

ApprovalStatus = Literal[
    "pending", "approved", "rejected", "expired", "terminated", "escalated", "executed"
]
STATUSES: Final[tuple[str, ...]] = get_args(ApprovalStatus)


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """One approval request as stored, with its decision if it has one.

    Attributes:
        id: the request id (``apr_...``), the one the run reported.
        run_id: the run that asked.
        tenant: the run's tenant; approvers must hold ``approver`` there.
        requested_by: the run's user; they may not decide their own request.
        charter_name: the charter the run ran under.
        tool: the tool the call was for.
        arguments: the call's canonical arguments, secrets redacted.
        arguments_sha256: SHA-256 of the canonical arguments as called; the approval is bound
            to it.
        reason: why approval is required (the policy's reason).
        rule_id: the rule that required it.
        requested_at: when it was requested (UTC).
        expires_at: after this, undecided, it counts as rejected (UTC).
        status: one of ``STATUSES``; a pending request past ``expires_at`` reads ``expired``.
        decided_by: who decided (``system`` for expiry), or None.
        decided_at: when (UTC), or None.
        decision_reason: the decider's reason, or None.
        used_key: the idempotency key of the call that used the approval, or None.
    """

    id: str
    run_id: str
    tenant: str
    requested_by: str
    charter_name: str
    tool: str
    arguments: dict[str, Any]
    arguments_sha256: str
    reason: str
    rule_id: str
    requested_at: datetime
    expires_at: datetime
    status: ApprovalStatus
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    used_key: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready values; datetimes in ISO 8601 (UTC)."""
        return {
            "id": self.id,
            "run_id": self.run_id,
            "tenant": self.tenant,
            "requested_by": self.requested_by,
            "charter_name": self.charter_name,
            "tool": self.tool,
            "arguments": self.arguments,
            "arguments_sha256": self.arguments_sha256,
            "reason": self.reason,
            "rule_id": self.rule_id,
            "requested_at": self.requested_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "status": self.status,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "decision_reason": self.decision_reason,
            "used_key": self.used_key,
        }


def record_from_row(row: Mapping[str, Any], now: datetime) -> ApprovalRecord:
    """A stored row as a record; a pending request past its expiry at ``now`` reads expired."""
    expires_at = from_db_time(row["expires_at"])
    status = row["status"]
    if status == "pending" and expires_at <= now:
        status = "expired"
    decided_at = row.get("decided_at")
    return ApprovalRecord(
        id=row["id"],
        run_id=row["run_id"],
        tenant=row["tenant"],
        requested_by=row["requested_by"],
        charter_name=row["charter_name"],
        tool=row["tool"],
        arguments=json.loads(row["arguments"]),
        arguments_sha256=row["arguments_sha256"],
        reason=row["reason"],
        rule_id=row["rule_id"],
        requested_at=from_db_time(row["requested_at"]),
        expires_at=expires_at,
        status=cast(ApprovalStatus, status),
        decided_by=row.get("decided_by"),
        decided_at=from_db_time(decided_at) if decided_at is not None else None,
        decision_reason=row.get("decision_reason"),
        used_key=row.get("used_key"),
    )
