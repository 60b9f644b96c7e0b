"""Runs as operators look at them: one row per run, written from run events.

``RunRecorder`` subscribes to the event bus: ``RunStarted`` inserts the run (outcome
``running``), ``RunFinished`` completes it with how it ended and what it used (the totals the
agent loop computes from the run's own ledger and results, which a durable run restores after
a crash, so a recovered run is recorded as completely as one that never crashed). Both writes
are idempotent: a replayed event changes nothing it has not already said.

``RunStore`` reads them back for the run inspector, cost reports, metrics and SLOs, and keeps
human labels on runs (e.g. whether an escalation was right).

What a run says about the agent is decided here, once, for the SLOs and the rollout guard
(``RunRow.violations``, ``RunRow.disposition``): a refusal is a violation, a blocked attack
or a human's decision (``ToolResult.refusal``, counted when the run ends), and a run either
succeeded, failed at what it was left to do, was handed to a human, or was stopped by a
blocked attack.

A row is read whatever it holds (``observability.stored``): a figure that is no amount (a
negative cost written by a version that trusted a model's usage, NaN, text where SQLite keeps
a number) reads as ``None`` (unknown) and is named in ``RunRow.unreadable``, so it is shown
as unknown and left out of sums, never counted and never a crash.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from charter.core.clock import as_utc
from charter.core.errors import DatabaseUnavailable, UserError
from charter.core.events import Event, RunFinished, RunStarted
from charter.identity.names import canonical_person
from charter.observability.stored import stored_count, stored_seconds, stored_usd
from charter.storage.database import Database, from_db_time
from charter.storage.migrate import ensure_schema
from charter.storage.tables import run_labels, runs

__all__ = [
    "LABELS",
    "RunDisposition",
    "RunLabel",
    "RunRecorder",
    "RunRow",
    "RunStore",
    "violations_of",
]

RunDisposition = Literal["running", "succeeded", "failed", "handed_off", "attack_blocked"]
"""What a run's end says about the agent (see ``RunRow.disposition``)."""

LABELS: Final[dict[str, tuple[str, ...]]] = {"escalation": ("confirmed", "overturned")}
"""Labels a human may put on a run, and their values."""

_T = runs.c
_MAX_LIST = 100_000


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as stored. ``outcome`` is ``running`` until the run ends."""

    id: str
    charter_name: str
    charter_sha256: str
    tenant: str
    user: str
    environment: str
    model: str
    trace_id: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    reason: str
    rule_id: str | None
    elapsed_seconds: float | None
    # The figures below are None when the stored value is unreadable (named in
    # ``unreadable``); the money is then unknown as a whole (cost and fees together).
    tool_calls: int | None
    tool_errors: int | None
    denied_calls: int | None
    model_calls: int | None
    total_tokens: int | None
    cost_usd: Decimal | None
    tool_fees_usd: Decimal | None
    violations: int = 0
    blocked_attacks: int = 0
    unreadable: tuple[str, ...] = ()  # stored columns whose value is no amount

    @property
    def model_cost_usd(self) -> Decimal | None:
        if self.cost_usd is None or self.tool_fees_usd is None:
            return None
        return self.cost_usd - self.tool_fees_usd

    @property
    def disposition(self) -> RunDisposition:
        """What the run's end says about the agent.

        ``succeeded``: it finished. ``handed_off``: the task went to a human by design: an
        approval gate stopped it (``approval_required``), the model or an approver escalated
        it, or an approver refused a call and that ended the run (``denied`` with no
        violation and no blocked attack). ``attack_blocked``: it ended ``denied`` because a
        rule refused a call made after it read untrusted content (``violations`` 0). Every
        other end is ``failed``: it failed, a violation ended it, a budget ran out (even with
        ``on_exceed: escalate``: the rule is ``budget.*``), or the kill switch stopped it.
        """
        outcome = self.outcome
        if outcome in ("running", "succeeded"):
            return outcome  # type: ignore[return-value]
        if outcome == "approval_required":
            return "handed_off"
        if outcome == "escalated" and not (self.rule_id or "").startswith("budget."):
            return "handed_off"
        if outcome == "denied" and self.violations == 0:
            return "attack_blocked" if self.blocked_attacks else "handed_off"
        return "failed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.id,
            "charter": self.charter_name,
            "charter_sha256": self.charter_sha256,
            "tenant": self.tenant,
            "user": self.user,
            "environment": self.environment,
            "model": self.model,
            "trace_id": self.trace_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "outcome": self.outcome,
            "reason": self.reason,
            "rule_id": self.rule_id,
            "elapsed_seconds": self.elapsed_seconds,
            "tool_calls": self.tool_calls,
            "tool_errors": self.tool_errors,
            "denied_calls": self.denied_calls,
            "model_calls": self.model_calls,
            "total_tokens": self.total_tokens,
            "cost_usd": _text(self.cost_usd),
            "model_cost_usd": _text(self.model_cost_usd),
            "tool_fees_usd": _text(self.tool_fees_usd),
            "violations": self.violations,
            "blocked_attacks": self.blocked_attacks,
            "disposition": self.disposition,
            "unreadable": list(self.unreadable),
        }


def violations_of(outcome: str, denied_calls: object, totals: object) -> tuple[int, int]:
    """A run's ``(violations, blocked_attacks)`` from its row (``totals`` is its JSON), as
    stored: whatever the columns hold, this never raises.

    A run recorded before refusals were told apart has no such counts: then every refused
    call is taken for a violation, and a run that ended ``denied`` had at least one, as
    these runs were always counted (a guess that errs towards a breach, not away from it).
    An unreadable count of refused calls is taken for at least one, for the same reason.
    """
    try:
        data = json.loads(totals) if isinstance(totals, str) and totals else {}
    except (ValueError, RecursionError):
        data = {}
    if isinstance(data, dict) and stored_count(data.get("violations")) is not None:
        attacks = stored_count(data.get("blocked_attacks"))
        return data["violations"], attacks or 0
    legacy = stored_count(denied_calls)
    if legacy is None:
        return 1, 0
    return (max(legacy, 1) if outcome == "denied" else legacy), 0


@dataclass(frozen=True, slots=True)
class RunLabel:
    run_id: str
    label: str
    value: str
    labeled_by: str
    labeled_at: datetime
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "label": self.label,
            "value": self.value,
            "labeled_by": self.labeled_by,
            "labeled_at": self.labeled_at.isoformat(),
            "note": self.note,
        }


class RunRecorder:
    """Event subscriber that keeps the ``runs`` table (see the module docstring)."""

    def __init__(self, database: Database) -> None:
        ensure_schema(database)
        self._database = database
        self.errors = 0

    def __call__(self, event: Event) -> None:
        # The audit log is the record of what happened and has been written first; this
        # table is a view for operators, so failing to update it counts (``errors``, exposed
        # as a metric) but never stops a run.
        try:
            if isinstance(event, RunStarted):
                self._started(event)
            elif isinstance(event, RunFinished):
                self._finished(event)
        except Exception:
            self.errors += 1

    def _started(self, event: RunStarted) -> None:
        run = event.run
        row = {
            "id": run.run_id,
            "charter_name": run.charter_name,
            "charter_sha256": run.charter_sha256,
            "tenant": run.tenant,
            "user": run.user,
            "environment": run.environment,
            "model": run.model,
            "trace_id": run.trace_id,
            "started_at": as_utc(event.at),
            "outcome": "running",
            "reason": "",
            "tool_calls": 0,
            "tool_errors": 0,
            "denied_calls": 0,
            "model_calls": 0,
            "total_tokens": 0,
            "cost_usd": "0",
            "tool_fees_usd": "0",
        }
        try:
            with self._database.engine.begin() as connection:
                connection.execute(insert(runs).values(**row))
        except IntegrityError:
            return  # recorded already: a durable step re-ran after a crash
        except SQLAlchemyError as exc:
            raise _unavailable("record the run", exc) from None

    def _finished(self, event: RunFinished) -> None:
        totals = event.totals
        values = {
            "finished_at": as_utc(event.at),
            "outcome": event.outcome,
            "reason": event.reason,
            "rule_id": event.decision.rule_id if event.decision else None,
            "elapsed_seconds": _float(totals.get("elapsed_seconds")),
            "tool_calls": int(totals.get("tool_calls", 0)),
            "tool_errors": int(totals.get("tool_errors", 0)),
            "denied_calls": int(totals.get("denied_calls", 0)),
            "model_calls": int(totals.get("model_calls", 0)),
            "total_tokens": int(totals.get("total_tokens", 0)),
            "cost_usd": str(Decimal(str(totals.get("cost_usd", "0")))),
            "tool_fees_usd": str(Decimal(str(totals.get("tool_fees_usd", "0")))),
            "totals": json.dumps(totals, sort_keys=True, default=str),
        }
        try:
            with self._database.engine.begin() as connection:
                changed = connection.execute(
                    update(runs).where(_T.id == event.run.run_id).values(**values)
                ).rowcount
            if not changed:
                # The start was recorded by a process whose database was not this one (or
                # not at all): record the run from its end.
                self._started(RunStarted(event.run, event.at, ""))
                with self._database.engine.begin() as connection:
                    connection.execute(
                        update(runs).where(_T.id == event.run.run_id).values(**values)
                    )
        except SQLAlchemyError as exc:
            raise _unavailable("record the run's end", exc) from None


class RunStore:
    """Reads runs and keeps labels on them."""

    def __init__(self, database: Database) -> None:
        ensure_schema(database)
        self._database = database

    def get(self, run_id: str) -> RunRow:
        """The run ``run_id``.

        Raises:
            UserError: no run has that id.
            DatabaseUnavailable: the database cannot be read.
        """
        found = self._read(select(runs).where(_T.id == run_id))
        if not found:
            raise UserError(f"no run {run_id!r}; 'charter runs list' shows the recorded runs")
        return _row(found[0])

    def list(
        self,
        *,
        charter: str | None = None,
        tenant: str | None = None,
        user: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[RunRow]:
        """Runs, newest first, matching every filter given.

        Raises:
            UserError: ``limit`` is below 1, a time is naive, or ``user`` cannot be a name.
            DatabaseUnavailable: the database cannot be read.
        """
        if limit < 1:
            raise UserError(f"limit {limit!r} must be at least 1")
        where = _matching(charter, tenant, user, outcome, since, until)
        statement = select(runs).where(where)
        statement = statement.order_by(_T.started_at.desc(), _T.id.desc())
        return [_row(r) for r in self._read(statement.limit(min(limit, _MAX_LIST)))]

    def count(
        self,
        *,
        charter: str | None = None,
        tenant: str | None = None,
        user: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """How many runs match every filter given (what ``list`` would show without a
        limit), so a listing cut at its limit can say how many it left out.

        Raises:
            UserError: a time is naive, or ``user`` cannot be a name.
            DatabaseUnavailable: the database cannot be read.
        """
        where = _matching(charter, tenant, user, outcome, since, until)
        [(total,)] = self._read(select(func.count()).select_from(runs).where(where))
        return int(total)

    def label(self, run_id: str, label: str, value: str, *, by: str, note: str = "",
              at: datetime) -> RunLabel:  # fmt: skip
        """Put (or replace) the human label ``label`` on a run.

        Raises:
            UserError: unknown run, label or value, or a ``by`` that is empty or cannot be
                a person's name.
            DatabaseUnavailable: the database cannot be written.
        """
        if label not in LABELS:
            raise UserError(f"label {label!r} is not one of {', '.join(LABELS)}")
        if value not in LABELS[label]:
            raise UserError(
                f"the {label} label is one of {', '.join(LABELS[label])}, not {value!r}"
            )
        if not by.strip():
            raise UserError("say who labels the run (e.g. --as alice)")
        by = canonical_person(by, "--as")  # one spelling per person (issue 11)
        self.get(run_id)
        row = {"run_id": run_id, "label": label, "value": value, "labeled_by": by,
               "labeled_at": as_utc(at), "note": note}  # fmt: skip
        try:
            with self._database.engine.begin() as connection:
                connection.execute(
                    run_labels.delete().where(
                        and_(run_labels.c.run_id == run_id, run_labels.c.label == label)
                    )
                )
                connection.execute(insert(run_labels).values(**row))
        except SQLAlchemyError as exc:
            raise _unavailable("write the label", exc) from None
        return RunLabel(run_id, label, value, by, as_utc(at), note)

    def labels(self, label: str, run_ids: builtins.list[str] | None = None) -> dict[str, RunLabel]:
        """The ``label`` labels, by run id (of ``run_ids`` only, when given)."""
        statement = select(run_labels).where(run_labels.c.label == label)
        if run_ids is not None:
            statement = statement.where(run_labels.c.run_id.in_(run_ids))
        return {
            r.run_id: RunLabel(
                r.run_id, r.label, r.value, r.labeled_by, from_db_time(r.labeled_at), r.note
            )
            for r in self._read(statement)
        }

    def _read(self, statement: Any) -> builtins.list[Any]:
        try:
            with self._database.engine.connect() as connection:
                return list(connection.execute(statement))
        except SQLAlchemyError as exc:
            raise _unavailable("read runs", exc) from None


def _matching(
    charter: str | None,
    tenant: str | None,
    user: str | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
) -> ColumnElement[bool]:
    """The runs ``RunStore.list`` and ``count`` select: every filter given."""
    if user is not None:  # runs are stored under the canonical user (issue 11)
        user = canonical_person(user, "--user")
    conditions = []
    for column, value in ((_T.charter_name, charter), (_T.tenant, tenant),
                          (_T.user, user), (_T.outcome, outcome)):  # fmt: skip
        if value is not None:
            conditions.append(column == value)
    if since is not None:
        conditions.append(_T.started_at >= as_utc(since))
    if until is not None:
        conditions.append(_T.started_at < as_utc(until))
    return and_(True, *conditions)


def _row(row: Any) -> RunRow:
    data: Mapping[str, Any] = row._mapping
    violations, attacks = violations_of(data["outcome"], data["denied_calls"], data["totals"])
    unreadable: list[str] = []

    def read(column: str, reader: Callable[[object], Any]) -> Any:
        value = reader(data[column])
        if value is None and data[column] is not None:
            unreadable.append(column)
        return value

    counts = {column: read(column, stored_count) for column in _COUNTS}
    elapsed = read("elapsed_seconds", stored_seconds)
    cost, fees = stored_usd(data["cost_usd"]), stored_usd(data["tool_fees_usd"])
    if cost is None or fees is None or fees > cost:
        # One of them is no amount, or fees exceed the whole: neither can be trusted.
        cost = fees = None
        unreadable.extend(("cost_usd", "tool_fees_usd"))
    return RunRow(
        id=data["id"],
        charter_name=data["charter_name"],
        charter_sha256=data["charter_sha256"],
        tenant=data["tenant"],
        user=data["user"],
        environment=data["environment"],
        model=data["model"],
        trace_id=data["trace_id"],
        started_at=from_db_time(data["started_at"]),
        finished_at=from_db_time(data["finished_at"]) if data["finished_at"] else None,
        outcome=data["outcome"],
        reason=data["reason"],
        rule_id=data["rule_id"],
        elapsed_seconds=elapsed,
        **counts,
        cost_usd=cost,
        tool_fees_usd=fees,
        violations=violations,
        blocked_attacks=attacks,
        unreadable=tuple(unreadable),
    )


_COUNTS: Final = ("tool_calls", "tool_errors", "denied_calls", "model_calls", "total_tokens")


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _unavailable(doing: str, exc: SQLAlchemyError) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"cannot {doing}: the database failed ({type(exc).__name__})")
