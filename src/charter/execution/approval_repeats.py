"""Repeats of an approved effect: the inbox says when approving would pay twice.

Three identical $350 refunds on one ticket each asked for approval and, approved, paid three
times: every request looked new to the approver. A request *repeats* an approved effect when
an earlier request of the same tenant, for the same tool with the same argument hash, was
approved (whether its run has used the approval yet or not). Runs do not matter: the same
refund asked for in two conversations is the same money. The inbox shows the latest such
approval beside the request (``charter approvals list|show``, and ``repeat_of`` in JSON); it
informs the approver and blocks nothing, since paying twice is sometimes right.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, cast

from sqlalchemy import and_, select

from charter.execution.approval_record import ApprovalRecord
from charter.storage.database import from_db_time
from charter.storage.tables import approval_requests

__all__ = ["EarlierApproval", "earlier_approvals"]

_T = approval_requests.c
_APPROVED: Final = ("approved", "executed")
# Argument hashes per query: far below every database's limit on bound parameters.
_CHUNK: Final = 500

Reader = Callable[[Any], list[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class EarlierApproval:
    """An earlier approval of the same effect as some request.

    Attributes:
        id: the earlier request.
        run_id: its run.
        status: ``approved`` (not used yet) or ``executed`` (the run used it: it was paid).
        decided_by: who approved it.
        decided_at: when (UTC).
        same_run: whether it is of the same run as the request it is an earlier approval of.
    """

    id: str
    run_id: str
    status: Literal["approved", "executed"]
    decided_by: str
    decided_at: datetime
    same_run: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values, with ``summary`` as ``describe`` gives it."""
        return {
            "id": self.id,
            "run_id": self.run_id,
            "status": self.status,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat(),
            "same_run": self.same_run,
            "summary": self.describe(),
        }

    def describe(self) -> str:
        """One line for the inbox, e.g. ``repeat of apr_x approved by lead at ... (used)``."""
        used = "used: it ran" if self.status == "executed" else "not used yet"
        where = "this run" if self.same_run else f"run {self.run_id}"
        return (
            f"repeat of {self.id} approved by {self.decided_by} at "
            f"{self.decided_at.isoformat(timespec='seconds')} in {where} ({used})"
        )


def earlier_approvals(
    read: Reader, records: Sequence[ApprovalRecord]
) -> dict[str, EarlierApproval]:
    """The latest earlier approval of the same effect, by the id of each record that has one.

    Args:
        read: runs a SELECT and returns its rows as mappings (the store's reader).
        records: the requests to look up, e.g. one page of the inbox.

    Returns:
        For each record with an earlier approved request of the same tenant, tool and
        argument hash (filed before it, never itself), the one decided last.
    """
    hashes = sorted({record.arguments_sha256 for record in records})
    candidates: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for start in range(0, len(hashes), _CHUNK):
        statement = select(
            _T.id, _T.run_id, _T.tenant, _T.tool, _T.arguments_sha256, _T.status,
            _T.decided_by, _T.decided_at, _T.requested_at,
        ).where(
            and_(_T.arguments_sha256.in_(hashes[start : start + _CHUNK]),
                 _T.status.in_(_APPROVED))
        )  # fmt: skip
        for row in read(statement):
            key = (row["tenant"], row["tool"], row["arguments_sha256"])
            candidates.setdefault(key, []).append(row)
    found: dict[str, EarlierApproval] = {}
    for record in records:
        rows = candidates.get((record.tenant, record.tool, record.arguments_sha256), [])
        earlier = [
            row
            for row in rows
            if (from_db_time(row["requested_at"]), row["id"]) < (record.requested_at, record.id)
        ]
        if not earlier:
            continue
        latest = max(earlier, key=lambda row: (from_db_time(row["decided_at"]), row["id"]))
        found[record.id] = EarlierApproval(
            id=latest["id"],
            run_id=latest["run_id"],
            status=cast(Literal["approved", "executed"], latest["status"]),
            decided_by=latest["decided_by"],
            decided_at=from_db_time(latest["decided_at"]),
            same_run=latest["run_id"] == record.run_id,
        )
    return found
