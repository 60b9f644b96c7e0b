"""Cost reports: what runs cost per charter, tenant or day, humans' waiting time included.

An agent's cost is not only its model bill. Each group of runs is reported with:

- ``runs``: runs started in the window (in progress included; a run's usage is recorded when
  it ends, so one still running counts with what it had recorded: nothing yet);
- ``succeeded``: those that ended ``succeeded``;
- ``model_usd`` and ``tool_fees_usd``: as each run's own ledger settled them (``runs`` table);
- ``review_usd``: the human side, ``approval wait hours x review_usd_per_hour``, where a
  request's wait is ``decided_at - requested_at``, or ``now - requested_at`` while it is
  pending, never past its expiry (after it nobody can decide). Waiting is an upper bound of a
  reviewer's effort, and it is what the business feels: the work stood still that long;
- ``total_usd``, ``per_run_usd`` (total / runs) and ``per_success_usd`` (total / succeeded,
  ``None`` without a success): the price of one successful outcome, failures paid for;
- ``unreadable_cost``: runs whose recorded cost is not an amount from 0 (negative, NaN, not
  a number, or tool fees above the whole cost). Their money is left out of every sum, never
  added as recorded: a version that trusted a model's usage could record a run costing
  minus $750,000, which would hide real spend. They still count as runs.

Money is ``Decimal`` from end to end (stored as exact text). Rows are streamed, so a report
over millions of runs holds one row at a time plus one accumulator per group.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal, cast, get_args

from sqlalchemy import and_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from charter.core.clock import Clock, as_utc
from charter.core.errors import DatabaseUnavailable, UserError
from charter.core.money import ZERO
from charter.observability.stored import stored_usd
from charter.storage.database import Database, from_db_time
from charter.storage.migrate import ensure_schema
from charter.storage.tables import approval_requests, runs

__all__ = [
    "GROUPS",
    "CostLine",
    "CostReport",
    "CostReporter",
    "GroupBy",
    "approval_wait",
    "group_by",
    "review_cost",
]

GroupBy = Literal["charter", "tenant", "day"]
GROUPS: Final[tuple[str, ...]] = get_args(GroupBy)

_MICRO: Final = Decimal("0.000001")  # format_usd shows at most six places
_MICROSECONDS_PER_HOUR: Final = Decimal(3_600_000_000)
_STREAM: Final = 1000
_R = runs.c
_A = approval_requests.c


def group_by(value: str) -> GroupBy:
    """``value`` as a grouping.

    Raises:
        UserError: it is not one of ``GROUPS``.
    """
    if value not in GROUPS:
        raise UserError(f"--by {value!r} is not one of {', '.join(GROUPS)}")
    return cast(GroupBy, value)


def approval_wait(
    requested_at: datetime, decided_at: datetime | None, expires_at: datetime, now: datetime
) -> timedelta:
    """How long an approval request held the work up: until its decision; while undecided,
    until now, but never past its expiry (an expired request counts as rejected)."""
    end = decided_at if decided_at is not None else min(now, expires_at)
    return max(end - requested_at, timedelta(0))


def review_cost(wait: timedelta, usd_per_hour: Decimal) -> Decimal:
    """``wait`` in hours times the hourly rate, exact (not rounded)."""
    microseconds = Decimal(wait // timedelta(microseconds=1))
    return microseconds / _MICROSECONDS_PER_HOUR * usd_per_hour


@dataclass(slots=True)
class CostLine:
    """The cost of one group of runs (see the module docstring for each figure)."""

    group: str
    runs: int = 0
    succeeded: int = 0
    in_progress: int = 0
    model_usd: Decimal = ZERO
    tool_fees_usd: Decimal = ZERO
    approvals: int = 0
    review_hours: Decimal = ZERO
    review_usd: Decimal = ZERO
    unreadable_cost: int = 0

    @property
    def total_usd(self) -> Decimal:
        return self.model_usd + self.tool_fees_usd + self.review_usd

    @property
    def per_run_usd(self) -> Decimal | None:
        return _per(self.total_usd, self.runs)

    @property
    def per_success_usd(self) -> Decimal | None:
        return _per(self.total_usd, self.succeeded)

    def add(self, other: CostLine) -> None:
        self.runs += other.runs
        self.succeeded += other.succeeded
        self.in_progress += other.in_progress
        self.model_usd += other.model_usd
        self.tool_fees_usd += other.tool_fees_usd
        self.approvals += other.approvals
        self.review_hours += other.review_hours
        self.review_usd += other.review_usd
        self.unreadable_cost += other.unreadable_cost

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: money as exact decimal strings (review rounded to a millionth)."""
        return {
            "group": self.group,
            "runs": self.runs,
            "succeeded": self.succeeded,
            "in_progress": self.in_progress,
            "model_usd": str(self.model_usd),
            "tool_fees_usd": str(self.tool_fees_usd),
            "approvals": self.approvals,
            "review_hours": str(self.review_hours.quantize(_MICRO)),
            "review_usd": str(self.review_usd.quantize(_MICRO)),
            "total_usd": str(self.total_usd.quantize(_MICRO)),
            "per_run_usd": _text(self.per_run_usd),
            "per_success_usd": _text(self.per_success_usd),
            "unreadable_cost": self.unreadable_cost,
        }


@dataclass(frozen=True, slots=True)
class CostReport:
    """Cost lines per group, and the total over all of them."""

    by: GroupBy
    since: datetime | None
    until: datetime | None
    usd_per_hour: Decimal
    lines: tuple[CostLine, ...]
    total: CostLine = field(default_factory=lambda: CostLine("total"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "review_usd_per_hour": str(self.usd_per_hour),
            "groups": [line.as_dict() for line in self.lines],
            "total": self.total.as_dict(),
        }


class CostReporter:
    """Builds cost reports from the ``runs`` and ``approval_requests`` tables.

    Raises:
        DatabaseUnavailable: the database cannot be reached or is out of date.
    """

    def __init__(self, database: Database, clock: Clock) -> None:
        ensure_schema(database)
        self._database = database
        self._clock = clock

    def report(
        self,
        by: str,
        *,
        usd_per_hour: Decimal,
        since: datetime | None = None,
        until: datetime | None = None,
        charter: str | None = None,
        tenant: str | None = None,
    ) -> CostReport:
        """Runs started in ``[since, until)`` (of ``charter`` / ``tenant`` when given), grouped
        ``by`` charter, tenant or UTC day of their start.

        Charters and tenants are listed costliest first, days in calendar order.

        Raises:
            UserError: ``by`` is not one of ``GROUPS``, a time is naive, or the rate is negative.
            DatabaseUnavailable: the database cannot be read.
        """
        grouping = group_by(by)
        if not usd_per_hour.is_finite() or usd_per_hour < 0:
            raise UserError(f"review cost {usd_per_hour} USD per hour must be 0 or more")
        where = _filters(since=since, until=until, charter=charter, tenant=tenant)
        now = self._clock.now()
        lines: dict[str, CostLine] = {}

        def line(charter_name: str, tenant_id: str, started_at: datetime) -> CostLine:
            key = _key(by, charter_name, tenant_id, from_db_time(started_at))
            return lines.setdefault(key, CostLine(key))

        columns = (_R.charter_name, _R.tenant, _R.started_at, _R.outcome, _R.cost_usd,
                   _R.tool_fees_usd)  # fmt: skip
        for row in self._stream(select(*columns).where(where)):
            current = line(row.charter_name, row.tenant, row.started_at)
            current.runs += 1
            current.succeeded += row.outcome == "succeeded"
            current.in_progress += row.outcome == "running"
            cost, fees = stored_usd(row.cost_usd), stored_usd(row.tool_fees_usd)
            if cost is None or fees is None or fees > cost:
                current.unreadable_cost += 1
                continue
            current.tool_fees_usd += fees
            current.model_usd += cost - fees
        waits = (
            select(
                _R.charter_name,
                _R.tenant,
                _R.started_at,
                _A.requested_at,
                _A.decided_at,
                _A.expires_at,
            )
            .select_from(approval_requests.join(runs, _R.id == _A.run_id))
            .where(where)
        )
        for row in self._stream(waits):
            decided = from_db_time(row.decided_at) if row.decided_at is not None else None
            wait = approval_wait(
                from_db_time(row.requested_at), decided, from_db_time(row.expires_at), now
            )
            current = line(row.charter_name, row.tenant, row.started_at)
            current.approvals += 1
            current.review_hours += review_cost(wait, Decimal(1))
            current.review_usd += review_cost(wait, usd_per_hour)
        ordered = sorted(lines.values(), key=lambda c: c.group)
        if by != "day":
            ordered.sort(key=lambda c: c.total_usd, reverse=True)
        total = CostLine("total")
        for each in ordered:
            total.add(each)
        return CostReport(grouping, since, until, usd_per_hour, tuple(ordered), total)

    def _stream(self, statement: Any) -> Iterator[Any]:
        try:
            with self._database.engine.connect() as connection:
                result = connection.execution_options(yield_per=_STREAM).execute(statement)
                yield from result
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(
                f"cannot read runs from {self._database.shown_url}: {type(exc).__name__}; "
                "check CHARTER_DATABASE_URL and that the server is running"
            ) from None


def _filters(
    *,
    since: datetime | None,
    until: datetime | None,
    charter: str | None,
    tenant: str | None,
) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if charter is not None:
        conditions.append(_R.charter_name == charter)
    if tenant is not None:
        conditions.append(_R.tenant == tenant)
    if since is not None:
        conditions.append(_R.started_at >= as_utc(since))
    if until is not None:
        conditions.append(_R.started_at < as_utc(until))
    return and_(True, *conditions)


def _key(by: str, charter_name: str, tenant: str, started_at: datetime) -> str:
    if by == "charter":
        return charter_name
    if by == "tenant":
        return tenant
    return started_at.date().isoformat()


def _per(total: Decimal, count: int) -> Decimal | None:
    return (total / count).quantize(_MICRO) if count else None


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
