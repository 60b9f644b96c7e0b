"""One run as a timeline: what the model did, what each call was decided, and why.

``charter runs show`` answers "why did this run do (or not do) that?" without reading logs,
by joining what Charter keeps about a run:

- the ``runs`` row (``RunStore``): who, which charter version, how it ended, what it used
  (its totals are written when the run ends; until then they are counted from the timeline
  itself: see ``Usage``);
- the audit log: every tool call with its redacted arguments, verdict, rule, reason and
  outcome, and the run's start and end. It is the record of truth and is never pruned, so a
  run whose row and spans were pruned is still explained from it alone;
- the approvals inbox: each request a call filed, who decided it, when, and the wait;
- spans, when a span store filled them: model calls (tokens, cost, duration) and each tool
  call's duration (a tool span has the id of the call's audit record). Without spans the
  timeline still stands, with model calls missing and durations unknown, and says so.

Steps are ordered by the time they ended (an audit record is written when its call ends, a
span has its end time), which is also the order the run saw their results. Deferred effects
show in their phases: a call ``deferred`` when decided, then ``send`` (delivered after the run
succeeded) or ``discard`` (dropped because it did not), and ``compensate`` for writes taken
back when a run does not succeed. Each is paired with the call it settles by the run's step,
which its audit event id names (``call_step``), never by the model's tool-call id: a model
may give two calls one id. An effect whose record names no step it agrees with (recorded
before steps named effects) is shown unpaired (``timeline_model.settles``).

The ``runs`` table does not know which charter file a run came from, only its version hash,
so budget limits are shown only when the caller supplies that charter (``charter=``) and its
hash matches: limits read from another version would be wrong without looking wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError

from charter.contract.loader import Charter
from charter.core.clock import Clock
from charter.core.errors import DatabaseUnavailable, UserError
from charter.core.events import EventBus
from charter.execution.approval_store import ApprovalRecord, ApprovalStore
from charter.identity.roles import RoleGrants
from charter.observability.audit_reader import call_phase, call_step, records_of_runs
from charter.observability.cost import approval_wait
from charter.observability.runs import RunRow, RunStore
from charter.observability.stored import stored_usd
from charter.observability.timeline_model import (
    ApprovalView,
    Limits,
    ModelCallStep,
    RunEdgeStep,
    Step,
    Timeline,
    ToolCallStep,
    Usage,
    settles,
    usage_of_row,
    usage_so_far,
)
from charter.storage.database import Database
from charter.storage.migrate import ensure_schema
from charter.storage.tables import spans

__all__ = [
    "ApprovalView",
    "Limits",
    "ModelCallStep",
    "RunEdgeStep",
    "Step",
    "Timeline",
    "TimelineReader",
    "ToolCallStep",
    "Usage",
]

_NS: Final = 1_000_000_000
# An approval decision's audit outcome is the verdict; the inbox speaks of statuses.
_DECIDED: Final = {"approve": "approved", "reject": "rejected", "terminate": "terminated",
                   "escalate": "escalated", "expire": "expired"}  # fmt: skip


class TimelineReader:
    """Builds timelines from Charter's database (see the module docstring).

    Raises:
        DatabaseUnavailable: the database cannot be reached or is out of date.
    """

    def __init__(self, database: Database, clock: Clock) -> None:
        ensure_schema(database)
        self._database = database
        self._clock = clock
        self._runs = RunStore(database)
        # Read only: the bus is never published on, and no decision is made here.
        self._approvals = ApprovalStore(database, clock, EventBus(), RoleGrants(database, clock))

    def find(self, run_id: str, *, charter: Charter | None = None) -> Timeline | None:
        """The timeline of ``run_id`` (None when no run has that id: neither a row nor an
        audit record); with ``charter``, its budgets as the limits.

        Raises:
            UserError: ``charter`` is not the version the run ran under.
            DatabaseUnavailable: the database cannot be read.
        """
        try:
            row: RunRow | None = self._runs.get(run_id)
        except DatabaseUnavailable:
            raise
        except UserError:
            row = None
        records = self._audit(run_id)
        if row is None and not records:
            return None
        header = _header(row, records)
        notes: list[str] = []
        if row is None:
            notes.append(
                "the run's row is gone (pruned, or never recorded): usage is not shown; "
                "the audit log still holds every decision"
            )
        limits = None
        if charter is not None:
            if charter.content_sha256 != header["charter_sha256"]:
                raise UserError(
                    f"charter {charter.name!r} version {charter.content_sha256[:12]} is not "
                    f"the version run {run_id!r} ran under ({header['charter_sha256'][:12]}); "
                    "give that version's file to compare against its budgets"
                )
            budgets = charter.spec.budgets
            limits = Limits(
                budgets.max_total_tokens,
                budgets.max_tool_calls,
                budgets.max_usd_per_run,
                budgets.timeouts.overall_seconds,
            )
        span_rows = self._spans(run_id, header["trace_id"])
        if not span_rows:
            notes.append(
                "no spans are stored for this run (pruned, or no span store was configured): "
                "model calls are not shown and durations are unknown"
            )
        steps = self._steps(records, span_rows)
        usage = None
        if row is not None:  # without it, the run is known from its audit records alone
            ended = header["outcome"] != "running"
            usage = usage_of_row(row) if ended else usage_so_far(steps, bool(span_rows))
            if not ended and usage.tool_fees_usd is None:
                notes.append(
                    "tool fees so far are unknown: some calls were recorded before the audit "
                    "log kept what each was charged"
                )
        return Timeline(
            run_id=run_id,
            usage=usage,
            limits=limits,
            steps=steps,
            notes=tuple(notes),
            **header,
        )

    def _steps(
        self, records: Sequence[Mapping[str, Any]], span_rows: Sequence[Any]
    ) -> tuple[Step, ...]:
        tool_spans = {s.span_id: s for s in span_rows if _operation(s) == "execute_tool"}
        decisions = {
            r["approval_request_id"]: r
            for r in records
            if r["kind"] == "approval_decision" and r.get("approval_request_id")
        }
        ordered: list[tuple[datetime, int, Step]] = []
        for index, record in enumerate(records):
            at = _parse_at(record["at"])
            kind = record["kind"]
            if kind == "run_started" or kind == "run_finished":
                edge = RunEdgeStep(at, kind, record["outcome"], record["reason"],
                                   record.get("rule_id"))  # fmt: skip
                ordered.append((at, index, edge))
            elif kind == "tool_call":
                span = tool_spans.get(record["span_id"])
                request_id = record.get("approval_request_id")
                approval = (
                    self._approval(request_id, record, decisions.get(request_id))
                    if request_id
                    else None
                )
                step = ToolCallStep(
                    at=at,
                    tool=record["tool"] or "",
                    phase=call_phase(record),
                    arguments=record.get("arguments"),
                    arguments_sha256=record.get("arguments_sha256"),
                    verdict=record.get("verdict"),
                    rule_id=record.get("rule_id"),
                    stage=record.get("stage"),
                    reason=record["reason"],
                    outcome=record["outcome"],
                    detail=record.get("detail", ""),
                    duration_ms=_duration_ms(span) if span is not None else None,
                    span_id=record.get("span_id", ""),
                    approval=approval,
                    step=call_step(record),
                    # What the ledger charged, as audited: anything but an amount is unknown.
                    fee_usd=stored_usd(record.get("fee_usd")),
                )
                ordered.append((at, index, step))
        offset = len(records)
        for index, span in enumerate(span_rows, offset):
            if _operation(span) == "chat":
                ordered.append((_ns_time(span.end_ns), index, _model_step(span)))
        ordered.sort(key=lambda item: (item[0], item[1]))
        return _unpaired_without_step(tuple(step for _, _, step in ordered))

    def _approval(
        self,
        request_id: str,
        record: Mapping[str, Any],
        decision: Mapping[str, Any] | None,
    ) -> ApprovalView:
        try:
            stored: ApprovalRecord | None = self._approvals.get(request_id)
        except DatabaseUnavailable:
            raise
        except UserError:
            stored = None
        if stored is not None:
            wait = approval_wait(
                stored.requested_at, stored.decided_at, stored.expires_at, self._clock.now()
            )
            return ApprovalView(
                id=stored.id,
                status=stored.status,
                rule_id=stored.rule_id,
                reason=stored.reason,
                requested_at=stored.requested_at,
                expires_at=stored.expires_at,
                decided_at=stored.decided_at,
                decided_by=stored.decided_by,
                decision_reason=stored.decision_reason,
                wait_seconds=wait.total_seconds(),
            )
        # Not in the inbox (in-memory approvals): what the audit log says is all there is.
        requested_at = _parse_at(record["at"])
        decided_at = _parse_at(decision["at"]) if decision else None
        status = _DECIDED.get(decision["outcome"], decision["outcome"]) if decision else "unknown"
        return ApprovalView(
            id=request_id,
            status=status,
            rule_id=record.get("rule_id"),
            reason=record["reason"],
            requested_at=requested_at,
            expires_at=None,
            decided_at=decided_at,
            decided_by=decision["user"] if decision else None,
            decision_reason=decision["reason"] if decision else None,
            wait_seconds=(decided_at - requested_at).total_seconds() if decided_at else None,
        )

    def _audit(self, run_id: str) -> list[dict[str, Any]]:
        """The run's audit records, in the order they were appended."""
        return records_of_runs(self._database, [run_id])[run_id]

    def _spans(self, run_id: str, trace_id: str) -> list[Any]:
        condition = spans.c.run_id == run_id
        if trace_id:
            condition = or_(condition, spans.c.trace_id == trace_id)
        statement = select(spans).where(condition).order_by(spans.c.start_ns)
        try:
            with self._database.engine.connect() as connection:
                return list(connection.execute(statement))
        except SQLAlchemyError as exc:
            raise _unavailable(self._database, "spans", exc) from None


def _unpaired_without_step(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    """A send, discard or compensation whose step settles no call of the run names no step:
    the number its record carries is not the run's step (see ``settles``)."""
    calls: dict[int | None, list[ToolCallStep]] = {}
    for s in steps:
        if isinstance(s, ToolCallStep) and s.phase == "call":
            calls.setdefault(s.step, []).append(s)
    return tuple(
        replace(s, step=None)
        if isinstance(s, ToolCallStep)
        and s.phase != "call"
        and s.step is not None
        and not any(settles(s, c) for c in calls.get(s.step, ()))
        else s
        for s in steps
    )


def _header(row: RunRow | None, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Who and what the run was: from its row, else from its audit records."""
    if row is not None:
        return {
            "charter": row.charter_name,
            "charter_sha256": row.charter_sha256,
            "tenant": row.tenant,
            "user": row.user,
            "environment": row.environment,
            "model": row.model,
            "trace_id": row.trace_id,
            "started_at": row.started_at,
            "finished_at": row.finished_at,
            "outcome": row.outcome,
            "reason": row.reason,
            "rule_id": row.rule_id,
        }
    started = next((r for r in records if r["kind"] == "run_started"), None)
    finished = next((r for r in records if r["kind"] == "run_finished"), None)
    # A run's own records carry its identity; an approval decision carries the approver's.
    first = started or next((r for r in records if r["kind"] != "approval_decision"), records[0])
    return {
        "charter": first["charter_name"],
        "charter_sha256": first["charter_sha256"],
        "tenant": first["tenant"],
        "user": first["user"],
        "environment": first["environment"],
        "model": first["model"],
        "trace_id": first["trace_id"],
        "started_at": _parse_at(started["at"]) if started else None,
        "finished_at": _parse_at(finished["at"]) if finished else None,
        "outcome": finished["outcome"] if finished else "running",
        "reason": finished["reason"] if finished else "",
        "rule_id": finished.get("rule_id") if finished else None,
    }


def _attributes(span: Any) -> dict[str, Any]:
    try:
        value = json.loads(span.attributes)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _operation(span: Any) -> str:
    operation = _attributes(span).get("gen_ai.operation.name")
    if isinstance(operation, str):
        return operation
    return str(span.name).split(" ", 1)[0]


def _model_step(span: Any) -> ModelCallStep:
    attributes = _attributes(span)
    name = str(span.name)
    model = attributes.get("gen_ai.request.model") or name.partition(" ")[2] or name
    return ModelCallStep(
        at=_ns_time(span.end_ns),
        model=str(model),
        input_tokens=_int(attributes.get("gen_ai.usage.input_tokens")),
        output_tokens=_int(attributes.get("gen_ai.usage.output_tokens")),
        cost_usd=_decimal(attributes.get("charter.cost_usd")),
        duration_ms=_duration_ms(span),
        status=str(span.status),
        error=str(span.status_message or ""),
    )


def _duration_ms(span: Any) -> float:
    return max(int(span.end_ns) - int(span.start_ns), 0) / 1_000_000


def _ns_time(ns: int) -> datetime:
    seconds, rest = divmod(int(ns), _NS)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)


def _parse_at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _decimal(value: Any) -> Decimal | None:
    # What a span recorded, as stored: anything but an amount from 0 is unknown.
    return stored_usd(value)


def _unavailable(database: Database, what: str, exc: SQLAlchemyError) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"cannot read {what} from {database.shown_url}: {type(exc).__name__}; check "
        "CHARTER_DATABASE_URL and that the server is running"
    )
