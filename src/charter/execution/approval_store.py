"""Durable approvals: requests wait in Charter's database until a human decides them.

A run that needs approval files an :class:`ApprovalRequest`; :class:`ApprovalStore` keeps it
in ``approval_requests`` (SQLite or Postgres, a URL apart) as ``pending`` until an approver
decides it or it expires. :class:`StoreGrants` then lets the run use an approval exactly once.

Statuses::

    pending --approve--> approved --used by the run (StoreGrants)--> executed
            --reject---> rejected
            --terminate> terminated   (also: withdrawn when the kill switch stops the run)
            --escalate-> escalated
            --(no decision before expires_at)--> expired   (counts as rejected)

Every transition is one conditional ``UPDATE ... WHERE status = <from>``, so of two
approvers (or two workers consuming a grant) racing on the same row exactly one wins, in one
process or many. A pending request past ``expires_at`` is reported as ``expired`` at once;
``expire_due`` writes that down and publishes the event.

Each decision publishes :class:`~charter.core.events.ApprovalDecided` after it is committed
(the audit log subscribes). If publishing fails the decision is put back to ``pending`` and
the error propagates: an unaudited decision must not stand. The event is published outside
the transaction on purpose: a subscriber may write to the same database (on SQLite a second
writer would wait on our lock until it timed out).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol, cast, get_args

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from charter.core.canonical import canonical_json
from charter.core.clock import Clock
from charter.core.errors import DatabaseUnavailable, UserError
from charter.core.events import ApprovalDecided, ApprovalVerdict, EventBus
from charter.execution.approvals import ApprovalRequest
from charter.storage.database import Database, from_db_time
from charter.storage.migrate import ensure_schema
from charter.storage.tables import approval_requests

__all__ = [
    "APPROVER_ROLE",
    "STATUSES",
    "ApprovalRecord",
    "ApprovalStatus",
    "ApprovalStore",
    "DecisionVerdict",
    "RoleDirectory",
    "StoreGrants",
    "status_is",
]

APPROVER_ROLE: Final = "approver"
DEFAULT_TTL: Final = timedelta(hours=24)

ApprovalStatus = Literal[
    "pending", "approved", "rejected", "expired", "terminated", "escalated", "executed"
]
STATUSES: Final[tuple[str, ...]] = get_args(ApprovalStatus)
DecisionVerdict = Literal["approve", "reject", "terminate", "escalate"]
_VERDICTS: Final[tuple[str, ...]] = get_args(DecisionVerdict)

_STATUS_OF: Final[dict[str, str]] = {
    "approve": "approved",
    "reject": "rejected",
    "terminate": "terminated",
    "escalate": "escalated",
    "expire": "expired",
}
# Past tense for messages about a decision already made.
_DONE: Final[dict[str, str]] = {
    "approved": "approved",
    "rejected": "rejected",
    "terminated": "terminated",
    "escalated": "escalated",
    "expired": "expired",
    "executed": "approved (and the approval has been used)",
}
# The columns an idempotent repeat of ``request`` must match. Not requested_at: a durable
# step re-run after a crash asks again later, and the first filing (and its clock) stands
# (found by the crash campaign); nor expires_at, derived from a ttl processes may differ on.
_CONTENT: Final = (
    "run_id", "tenant", "requested_by", "charter_name", "tool", "arguments",
    "arguments_sha256", "reason", "rule_id",
)  # fmt: skip

_T = approval_requests.c


class RoleDirectory(Protocol):
    """Where the store learns which roles a user holds in a tenant."""

    def roles_of(self, tenant: str, user: str) -> frozenset[str]:
        """The roles ``user`` holds in ``tenant`` (empty when none)."""
        ...


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


class ApprovalStore:
    """Approval requests and their decisions in Charter's database.

    Args:
        database: where requests are kept; its schema must be current (an embedded SQLite
            file is upgraded on open, a Postgres one needs ``charter db upgrade``).
        clock: the time requests expire against and decisions are stamped with.
        bus: where ``ApprovalDecided`` is published after each decision.
        roles: who holds the ``approver`` role in which tenant.
        ttl: how long a request waits for a decision before it expires.

    Raises:
        DatabaseUnavailable: the database cannot be reached or is out of date.
        ValueError: ``ttl`` is not positive.
    """

    def __init__(
        self,
        database: Database,
        clock: Clock,
        bus: EventBus,
        roles: RoleDirectory,
        *,
        ttl: timedelta = DEFAULT_TTL,
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError(f"ttl must be positive, not {ttl}")
        ensure_schema(database)
        self._database = database
        self._clock = clock
        self._bus = bus
        self._roles = roles
        self._ttl = ttl

    def request(self, req: ApprovalRequest, *, charter_name: str) -> ApprovalRecord:
        """Persist ``req`` as pending, expiring ``ttl`` after it was requested.

        Idempotent on the request id: filing the same request again returns the stored
        record unchanged, with its first ``requested_at`` (a run that crashed after asking
        asks again, later).

        Args:
            req: the request the run built.
            charter_name: the charter the run runs under.

        Returns:
            The stored record.

        Raises:
            UserError: a request with this id exists with different content.
            ValueError: ``req.requested_at`` has no time zone.
            DatabaseUnavailable: the database cannot be written.
        """
        requested_at = _to_utc(req.requested_at, "requested_at")
        row = {
            "id": req.id,
            "run_id": req.run_id,
            "tenant": req.tenant,
            "requested_by": req.requested_by,
            "charter_name": charter_name,
            "tool": req.tool,
            "arguments": canonical_json(req.arguments),
            "arguments_sha256": req.arguments_sha256,
            "reason": req.reason,
            "rule_id": req.rule_id,
            "requested_at": requested_at,
            "expires_at": requested_at + self._ttl,
            "status": "pending",
        }
        try:
            with self._begin() as connection:
                connection.execute(insert(approval_requests).values(**row))
        except IntegrityError:
            # The id is the primary key: an earlier (or concurrent) filing got there first.
            existing = self._row(req.id)
            assert existing is not None  # rows are never deleted
            differing = [name for name in _CONTENT if _stored(existing[name]) != row[name]]
            if differing:
                raise UserError(
                    f"approval request {req.id!r} already exists with a different "
                    f"{', '.join(differing)}; request ids must be unique, file it under a new id"
                ) from None
            return self._record(existing, self._clock.now())
        except SQLAlchemyError as exc:
            raise self._unavailable("write approval requests", exc) from None
        return self._record(row, self._clock.now())

    def get(self, id: str) -> ApprovalRecord:
        """The request ``id``.

        Raises:
            UserError: there is no such request.
            DatabaseUnavailable: the database cannot be read.
        """
        row = self._row(id)
        if row is None:
            raise UserError(
                f"approval request {id!r} not found; list requests with 'charter approvals list'"
            )
        return self._record(row, self._clock.now())

    def list(
        self, *, tenant: str | None = None, status: str | None = None, limit: int = 50
    ) -> builtins.list[ApprovalRecord]:
        """Requests, newest first.

        Args:
            tenant: only this tenant's.
            status: only those in this status as reported (``expired`` includes pending
                requests past their expiry; ``pending`` excludes them).
            limit: at most this many.

        Raises:
            UserError: ``status`` is not a known status, or ``limit`` is below 1.
            DatabaseUnavailable: the database cannot be read.
        """
        if limit < 1:
            raise UserError(f"limit {limit!r} must be at least 1")
        now = self._clock.now()
        statement = select(approval_requests)
        if tenant is not None:
            statement = statement.where(_T.tenant == tenant)
        if status is not None:
            statement = statement.where(status_is(status, _to_utc(now, "now")))
        statement = statement.order_by(_T.requested_at.desc(), _T.id.desc()).limit(limit)
        return [self._record(row, now) for row in self._read(statement)]

    def decide(self, id: str, verdict: DecisionVerdict, *, by: str, reason: str) -> ApprovalRecord:
        """Decide the pending request ``id``; publish ``ApprovalDecided`` once it stands.

        Args:
            id: the request.
            verdict: approve, reject, terminate (stop the run) or escalate (hand it on).
            by: the deciding user; must hold ``approver`` in the request's tenant and must
                not be the user the run acts for (separation of duties).
            reason: why; required for every verdict but approve.

        Returns:
            The decided record.

        Raises:
            UserError: the verdict is unknown, ``by`` is empty, the request does not exist,
                is already decided or expired, ``by`` requested it or lacks the approver
                role, or the reason is missing. Nothing is changed.
            DatabaseUnavailable: the database cannot be read or written.
        """
        if verdict not in _VERDICTS:
            raise UserError(f"verdict {verdict!r} is not one of {', '.join(_VERDICTS)}")
        if not by.strip():
            raise UserError("the deciding user is empty; say who decides (e.g. --as alice)")
        now = self._clock.now()
        record = self.get(id)
        self._check_open(record, verdict)
        if by == record.requested_by:
            raise UserError(
                f"{by!r} requested {id!r} (the run acts for them) and cannot decide it: "
                "separation of duties; ask another approver"
            )
        if APPROVER_ROLE not in self._roles.roles_of(record.tenant, by):
            raise UserError(
                f"{by!r} does not hold the role {APPROVER_ROLE!r} in tenant {record.tenant!r}; "
                f"ask an administrator to grant it, or ask someone who holds it to decide {id!r}"
            )
        if verdict != "approve" and not reason.strip():
            raise UserError(
                f"a reason is required to {verdict} {id!r}; pass one (e.g. --reason '...')"
            )
        changed = self._transition(
            record.id,
            "pending",
            _STATUS_OF[verdict],
            by=by,
            reason=reason,
            at=now,
            unexpired=True,
        )
        if not changed:
            # Lost a race (or it expired meanwhile): explain from what is stored now.
            self._check_open(self.get(id), verdict)
            raise UserError(f"approval request {id!r} could not be decided; try again")
        return self._publish(record, verdict, by, reason, now)

    def withdraw(self, id: str, *, by: str, reason: str) -> ApprovalRecord | None:
        """Terminate the pending request ``id`` because its run is being stopped by the kill
        switch. No approver role is needed: the operator who pulled the switch answers for
        it, and is recorded as the decider.

        Returns:
            The terminated record, or None if the request was no longer pending.

        Raises:
            UserError: the request does not exist, or ``by`` or ``reason`` is empty.
            DatabaseUnavailable: the database cannot be read or written.
        """
        if not by.strip() or not reason.strip():
            raise UserError("withdrawing an approval request needs who and why")
        now = self._clock.now()
        record = self.get(id)
        if record.status != "pending":
            return None
        if not self._transition(
            id, "pending", "terminated", by=by, reason=reason, at=now, unexpired=False
        ):
            return None
        return self._publish(record, "terminate", by, reason, now)

    def expire_due(self) -> builtins.list[ApprovalRecord]:
        """Mark every pending request past its expiry as expired and publish each.

        Returns:
            The requests expired by this call (not those another process expired first).

        Raises:
            DatabaseUnavailable: the database cannot be read or written.
        """
        now = self._clock.now()
        due = select(_T.id).where(
            and_(_T.status == "pending", _T.expires_at <= _to_utc(now, "now"))
        )
        expired = []
        for row in self._read(due.order_by(_T.requested_at, _T.id)):
            record = self.get(row.id)
            reason = f"no decision before {record.expires_at.isoformat()}"
            if self._transition(
                row.id, "pending", "expired", by="system", reason=reason, at=now, unexpired=False
            ):
                expired.append(self._publish(record, "expire", "system", reason, now))
        return expired

    def consume(self, run_id: str, tool: str, arguments_sha256: str, *, use_key: str) -> str | None:
        """Use one approved request for exactly this call of this run, once.

        ``use_key`` (the call's idempotency key) is stored with the use: the same call asking
        again, a durable step re-run after a crash killed it between using the approval and
        recording the step, gets the same approval back rather than none (which would park
        the run again for a decision already used).

        Returns:
            The id of the request now marked ``executed``, or None when there is none.

        Raises:
            DatabaseUnavailable: the database cannot be read or written.
        """
        same_call = and_(_T.run_id == run_id, _T.tool == tool,
                         _T.arguments_sha256 == arguments_sha256)  # fmt: skip
        used = self._read(select(_T.id).where(and_(same_call, _T.used_key == use_key)))
        if used:
            return str(used[0].id)
        candidates = (
            select(_T.id)
            .where(and_(same_call, _T.status == "approved"))
            .order_by(_T.decided_at, _T.id)
        )
        for row in self._read(candidates):
            # Another worker may take this one between the read and the update: try the next.
            if self._transition(row.id, "approved", "executed", unexpired=False,
                                used_key=use_key):  # fmt: skip
                return str(row.id)
        return None

    def _check_open(self, record: ApprovalRecord, verdict: str) -> None:
        if record.status == "pending":
            return
        if record.status == "expired":
            raise UserError(
                f"approval request {record.id!r} expired at {record.expires_at.isoformat()} "
                "without a decision and counts as rejected, so it cannot be "
                f"{_STATUS_OF[verdict]}; nothing changed, the run must ask for approval again"
            )
        when = record.decided_at.isoformat() if record.decided_at else "an unknown time"
        raise UserError(
            f"approval request {record.id!r} was already {_DONE[record.status]} by "
            f"{record.decided_by!r} at {when} ({record.decision_reason or 'no reason given'}); "
            "nothing changed"
        )

    def _transition(
        self,
        id: str,
        from_status: str,
        to_status: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        at: datetime | None = None,
        unexpired: bool,
        used_key: str | None = None,
    ) -> bool:
        # The WHERE clause is the lock: the database lets exactly one UPDATE match the row.
        condition = and_(_T.id == id, _T.status == from_status)
        values: dict[str, Any] = {"status": to_status}
        if used_key is not None:
            values["used_key"] = used_key
        if at is not None:
            stamp = _to_utc(at, "now")
            values.update(decided_by=by, decided_at=stamp, decision_reason=reason)
            if unexpired:
                condition = and_(condition, _T.expires_at > stamp)
        try:
            with self._begin() as connection:
                result = connection.execute(
                    update(approval_requests).where(condition).values(values)
                )
        except SQLAlchemyError as exc:
            raise self._unavailable("write approval requests", exc) from None
        return bool(result.rowcount == 1)

    def _publish(
        self, before: ApprovalRecord, verdict: ApprovalVerdict, by: str, reason: str, at: datetime
    ) -> ApprovalRecord:
        # Built from what was written rather than read back: a failed read must not leave a
        # committed decision unpublished.
        record = replace(
            before,
            status=cast(ApprovalStatus, _STATUS_OF[verdict]),
            decided_by=by,
            decided_at=_to_utc(at, "now"),
            decision_reason=reason,
        )
        event = ApprovalDecided(
            at=at,
            request_id=record.id,
            run_id=record.run_id,
            tenant=record.tenant,
            charter_name=record.charter_name,
            tool=record.tool,
            arguments_sha256=record.arguments_sha256,
            verdict=verdict,
            decided_by=by,
            reason=reason,
        )
        try:
            self._bus.publish(event)
        except BaseException:
            # Unaudited, the decision must not stand: put the request back as it was.
            revert = and_(_T.id == record.id, _T.status == record.status, _T.decided_by == by)
            with self._begin() as connection:
                connection.execute(
                    update(approval_requests)
                    .where(revert)
                    .values(
                        status="pending", decided_by=None, decided_at=None, decision_reason=None
                    )
                )
            raise
        return record

    def _begin(self) -> AbstractContextManager[Connection]:
        # BEGIN IMMEDIATE on SQLite: take the write lock up front, so concurrent writers queue
        # on the busy timeout instead of failing when a read lock cannot be upgraded.
        return self._database.engine.execution_options(sqlite_begin="IMMEDIATE").begin()

    def _row(self, id: str) -> Mapping[str, Any] | None:
        rows = self._read(select(approval_requests).where(_T.id == id))
        return rows[0] if rows else None

    def _read(self, statement: Any) -> builtins.list[Any]:
        try:
            with self._database.engine.connect() as connection:
                return [row._mapping for row in connection.execute(statement)]
        except SQLAlchemyError as exc:
            raise self._unavailable("read approval requests", exc) from None

    def _record(self, row: Mapping[str, Any], now: datetime) -> ApprovalRecord:
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

    def _unavailable(self, doing: str, exc: SQLAlchemyError) -> DatabaseUnavailable:
        # The exception text can carry the URL; only the redacted form is shown.
        return DatabaseUnavailable(
            f"cannot {doing} in {self._database.shown_url}: {type(exc).__name__}; check "
            "CHARTER_DATABASE_URL and that the server is running"
        )


class StoreGrants:
    """The ``ApprovalGrants`` seam on durable approvals: one approval, one execution.

    Shared by every process on the same database: of two runs (or workers) asking for the
    same approval at once, exactly one gets it.

    Args:
        store: the approvals to consume from.
    """

    def __init__(self, store: ApprovalStore) -> None:
        self._store = store

    def granted(self, run_id: str, tool: str, arguments_sha256: str, *, use_key: str) -> str | None:
        """The id of an approved request for exactly this call of this run (now used), or None.

        An approval does not expire once given: ``expires_at`` bounds the wait for a
        decision, not its use.
        """
        return self._store.consume(run_id, tool, arguments_sha256, use_key=use_key)


def status_is(status: str, now: datetime) -> ColumnElement[bool]:
    """The SQL condition for requests in ``status`` as reported at ``now`` (a pending request
    past its expiry reads ``expired``), for every reader that must agree with this store."""
    if status not in STATUSES:
        raise UserError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    if status == "pending":
        return and_(_T.status == "pending", _T.expires_at > now)
    if status == "expired":
        return or_(_T.status == "expired", and_(_T.status == "pending", _T.expires_at <= now))
    return _T.status == status


def _to_utc(value: datetime, what: str) -> datetime:
    # SQLite keeps the wall time without its zone, so everything is stored as UTC.
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware (Clock.now() is)")
    return value.astimezone(UTC)


def _stored(value: Any) -> Any:
    return from_db_time(value) if isinstance(value, datetime) else value
