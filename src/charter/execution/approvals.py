"""Approval requests and grants, bound to the SHA-256 of the exact canonical arguments.

An approval for ``issue_refund`` with ``{"amount_usd": "350", ...}`` approves that call, in
that run, once: change one character of the arguments and the hash no longer matches; the same
arguments in another run (another user, another conversation) need their own approval. While
a call of a run waits for a decision, filing the same call again (same tool, same argument
hash) gets the waiting request back instead of a second one: one decision, one use. This
in-memory store is the seam that durable approvals implement.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

__all__ = ["ApprovalGrants", "ApprovalInbox", "ApprovalRequest", "FiledRequest", "InMemoryGrants"]


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What a human is asked to approve."""

    id: str
    run_id: str
    tenant: str
    requested_by: str
    tool: str
    arguments: dict[str, Any]
    arguments_sha256: str
    reason: str
    rule_id: str
    requested_at: datetime

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApprovalRequest:
        """The inverse of ``as_dict``."""
        return cls(
            id=data["id"],
            run_id=data["run_id"],
            tenant=data["tenant"],
            requested_by=data["requested_by"],
            tool=data["tool"],
            arguments=data["arguments"],
            arguments_sha256=data["arguments_sha256"],
            reason=data["reason"],
            rule_id=data["rule_id"],
            requested_at=datetime.fromisoformat(data["requested_at"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "tenant": self.tenant,
            "requested_by": self.requested_by,
            "tool": self.tool,
            "arguments": self.arguments,
            "arguments_sha256": self.arguments_sha256,
            "reason": self.reason,
            "rule_id": self.rule_id,
            "requested_at": self.requested_at.isoformat(),
        }


class ApprovalGrants(Protocol):
    def granted(self, run_id: str, tool: str, arguments_sha256: str, *, use_key: str) -> str | None:
        """The id of an approval for exactly this call of this run (consumed), or None.

        ``use_key`` names the use (the call's idempotency key): the same call asking again,
        a durable step re-run after a crash, gets the approval it already used.
        """
        ...


class FiledRequest(Protocol):
    """What filing a request gives back: at least the id of the request that stands for it."""

    @property
    def id(self) -> str: ...


class ApprovalInbox(Protocol):
    def request(self, request: ApprovalRequest, *, charter_name: str) -> FiledRequest:
        """Record a new request where approvers will find it, and return the one that stands.

        That is ``request`` itself, or, when the same call of the same run (same tool, same
        argument hash) is already waiting for a decision, that pending request: the run
        then waits on it. Filing the same ``request.id`` again returns what it did the
        first time (a durable step re-run after a crash finds its own request).
        """
        ...


class InMemoryGrants:
    """Requests and grants held in memory; a grant is consumed once (one approval, one call).

    For tests and embedding. ``charter.execution.approval_store`` is the durable pair.
    """

    def __init__(self) -> None:
        self._grants: dict[tuple[str, str, str], str] = {}
        self._used: dict[str, str] = {}
        self._pending: dict[tuple[str, str, str], str] = {}  # the call -> its waiting request
        self._filed: dict[str, str] = {}  # every id filed -> the request that stands for it
        self._lock = threading.Lock()
        self.requests: dict[str, ApprovalRequest] = {}

    def request(self, request: ApprovalRequest, *, charter_name: str) -> ApprovalRequest:
        call = (request.run_id, request.tool, request.arguments_sha256)
        with self._lock:
            standing = self._filed.get(request.id) or self._pending.get(call)
            if standing is None:
                standing = request.id
                self.requests[request.id] = request
                self._pending[call] = request.id
            self._filed[request.id] = standing
            return self.requests[standing]

    def grant(self, request: ApprovalRequest, approval_id: str) -> None:
        call = (request.run_id, request.tool, request.arguments_sha256)
        with self._lock:
            self._grants[call] = approval_id
            self._pending.pop(call, None)  # decided: the next filing of the call is new

    def granted(self, run_id: str, tool: str, arguments_sha256: str, *, use_key: str) -> str | None:
        with self._lock:
            if use_key in self._used:
                return self._used[use_key]
            grant = self._grants.pop((run_id, tool, arguments_sha256), None)
            if grant is not None:
                self._used[use_key] = grant
            return grant
