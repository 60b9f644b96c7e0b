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

One call, one request: filing a call of a run while the same call (same tool, same argument
hash) of that run is pending does not add a second request. The filing is linked to the
pending one (``approval_links``) and gets it back, then and when its step is re-run after
a crash, so a human decides it once and the run can use it once. People (who asked, who
decides) are stored in canonical form (``charter.identity.names``), so separation of duties
is plain equality: ``Alice`` cannot decide what ``alice`` asked for.

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
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol, cast, get_args

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from charter.core.canonical import canonical_json
from charter.core.clock import Clock
from charter.core.errors import DatabaseUnavailable, UserError
from charter.core.events import ApprovalDecided, ApprovalVerdict, EventBus
from charter.execution.approval_filing import file_request
from charter.execution.approval_record import (
    STATUSES,
    ApprovalRecord,
    ApprovalStatus,
    record_from_row,
)
from charter.execution.approval_repeats import EarlierApproval, earlier_approvals
from charter.execution.approvals import ApprovalRequest
from charter.identity.names import canonical_person
from charter.storage.database import Database
from charter.storage.migrate import ensure_schema
from charter.storage.tables import approval_requests

__all__ = [
    "APPROVER_ROLE",
    "STATUSES",
    "ApprovalRecord",
    "ApprovalStatus",
    "ApprovalStore",
    "DecisionVerdict",
    "EarlierApproval",
    "RoleDirectory",
    "StoreGrants",
    "status_is",
]

APPROVER_ROLE: Final = "approver"
DEFAULT_TTL: Final = timedelta(hours=24)

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
_T = approval_requests.c


class RoleDirectory(Protocol):
    """Where the store learns which roles a user holds in a tenant."""

    def roles_of(self, tenant: str, user: str) -> frozenset[str]:
        """The roles ``user`` holds in ``tenant`` (empty when none)."""
        ...


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
        """Persist ``req`` as pending, expiring ``ttl`` after it was requested; or, when the
        same call of the same run is already pending, return that request instead.

        Idempotent on the request id: filing the same request again returns what the first
        filing returned (the stored record, with its first ``requested_at``, or the pending
        request it was linked to, however that has been decided since). A run that crashed
        after asking asks again, later, and must find its own request.

        Args:
            req: the request the run built.
            charter_name: the charter the run runs under.

        Returns:
            The request standing for ``req``: ``req`` as stored, or an identical pending
            request of the same run (its ``id`` differs from ``req.id``).

        Raises:
            UserError: a request with this id exists with different content, or
                ``req.requested_by`` cannot be a person's name.
            ValueError: ``req.requested_at`` has no time zone.
            DatabaseUnavailable: the database cannot be written.
        """
        requested_at = _to_utc(req.requested_at, "requested_at")
        row = {
            "id": req.id,
            "run_id": req.run_id,
            "tenant": req.tenant,
            "requested_by": canonical_person(req.requested_by, "requested by"),
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
        now = self._clock.now()
        try:
            try:
                stored = self._file(row, now)
            except IntegrityError:
                # Filed under the same id at the same moment by a filing of another call
                # (so under another lock): a second look finds it and says how it differs.
                stored = self._file(row, now)
        except SQLAlchemyError as exc:
            raise self._unavailable("write approval requests", exc) from None
        return record_from_row(stored, now)

    def _file(self, row: Mapping[str, Any], now: datetime) -> Mapping[str, Any]:
        """In one transaction: the row standing for ``row``, inserting it if it is new."""
        with self._begin() as connection:
            return file_request(connection, row, _to_utc(now, "now"))

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
        return record_from_row(row, self._clock.now())

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
        statement = select(approval_requests).where(_listed(tenant, status, now))
        statement = statement.order_by(_T.requested_at.desc(), _T.id.desc()).limit(limit)
        return [record_from_row(row, now) for row in self._read(statement)]

    def count(self, *, tenant: str | None = None, status: str | None = None) -> int:
        """How many requests ``list`` would show without a limit (the same filters, expiry
        read the same way), so a listing cut at its limit can say how many it left out.

        Raises:
            UserError: ``status`` is not a known status.
            DatabaseUnavailable: the database cannot be read.
        """
        where = _listed(tenant, status, self._clock.now())
        statement = select(func.count().label("n")).select_from(approval_requests).where(where)
        [row] = self._read(statement)
        return int(row["n"])

    def decide(self, id: str, verdict: DecisionVerdict, *, by: str, reason: str) -> ApprovalRecord:
        """Decide the pending request ``id``; publish ``ApprovalDecided`` once it stands.

        Args:
            id: the request.
            verdict: approve, reject, terminate (stop the run) or escalate (hand it on).
            by: the deciding user, any spelling of them (stored in canonical form); must
                hold ``approver`` in the request's tenant and must not be the user the run
                acts for (separation of duties).
            reason: why; required for every verdict but approve.

        Returns:
            The decided record.

        Raises:
            UserError: the verdict is unknown, ``by`` is empty or cannot be a person's name,
                the request does not exist,
                is already decided or expired, ``by`` requested it or lacks the approver
                role, or the reason is missing. Nothing is changed.
            DatabaseUnavailable: the database cannot be read or written.
        """
        if verdict not in _VERDICTS:
            raise UserError(f"verdict {verdict!r} is not one of {', '.join(_VERDICTS)}")
        if not isinstance(by, str) or not by.strip():
            raise UserError("the deciding user is empty; say who decides (e.g. --as alice)")
        # One spelling per person: the comparisons below are then plain equality.
        by = canonical_person(by, "the deciding user")
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
        by = canonical_person(by, "withdrawn by")
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

    def earlier_approvals(self, records: Sequence[ApprovalRecord]) -> dict[str, EarlierApproval]:
        """For each of ``records`` that repeats an effect already approved, that approval.

        A repeat is an earlier request of the same tenant for the same tool with the same
        argument hash, approved (used or not), in this run or another: approving it again
        pays twice. See ``charter.execution.approval_repeats``.

        Returns:
            The latest such approval by the id of each record that has one.

        Raises:
            DatabaseUnavailable: the database cannot be read.
        """
        return earlier_approvals(self._read, records)

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


def _listed(tenant: str | None, status: str | None, now: datetime) -> ColumnElement[bool]:
    """The requests ``ApprovalStore.list`` and ``count`` select."""
    conditions: list[ColumnElement[bool]] = []
    if tenant is not None:
        conditions.append(_T.tenant == tenant)
    if status is not None:
        conditions.append(status_is(status, _to_utc(now, "now")))
    return and_(True, *conditions)


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
