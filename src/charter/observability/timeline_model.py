"""What a run's timeline is: its steps, its usage against its limits, the whole timeline.

The data the run inspector shows (``charter runs show``); ``observability/timeline.py``
builds it from Charter's database. Usage is the run's own ledger's totals once it has ended
(``usage_of_row``), and counted from the timeline's own steps until then
(``usage_so_far``), so a header never disagrees with the steps below it.

Calls are told apart by the run's step (``ToolCallStep.step``), never by the tool-call id
the model gave them, which a model may reuse: a deferred call and its send or discard, and
a write and its compensation, share the step (``settles``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal

from charter.observability.audit_reader import CallPhase
from charter.observability.runs import RunRow

__all__ = [
    "ApprovalView",
    "Limits",
    "ModelCallStep",
    "RunEdgeStep",
    "Step",
    "Timeline",
    "ToolCallStep",
    "Usage",
    "usage_of_row",
    "usage_so_far",
]

# Stages that refuse a call before it reserves a tool-call slot of the run's budget.
_BEFORE_BUDGET: Final = frozenset({"kill_switch", "allowlist", "schema"})


@dataclass(frozen=True, slots=True)
class ApprovalView:
    """An approval request a call filed, and what became of it.

    ``status`` is the inbox's (``pending``, ``approved``, ``executed``, ``rejected``,
    ``expired``, ``terminated``, ``escalated``), or ``unknown`` when the inbox has no such
    request (a run using in-memory approvals); then only the audit log's decision is shown.
    ``wait_seconds``: until the decision, or until now while pending (see ``approval_wait``).
    """

    id: str
    status: str
    rule_id: str | None
    reason: str
    requested_at: datetime | None
    expires_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None
    wait_seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "rule_id": self.rule_id,
            "reason": self.reason,
            "requested_at": _iso(self.requested_at),
            "expires_at": _iso(self.expires_at),
            "decided_at": _iso(self.decided_at),
            "decided_by": self.decided_by,
            "decision_reason": self.decision_reason,
            "wait_seconds": self.wait_seconds,
        }


@dataclass(frozen=True, slots=True)
class RunEdgeStep:
    """The run's start or end, as the audit log recorded it."""

    at: datetime
    kind: Literal["run_started", "run_finished"]
    outcome: str
    reason: str
    rule_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": _iso(self.at), "outcome": self.outcome,
                "reason": self.reason, "rule_id": self.rule_id}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ModelCallStep:
    """One model call, from its span (the audit log records decisions, not model calls)."""

    at: datetime
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None
    duration_ms: float
    status: str
    error: str
    kind: Literal["model_call"] = "model_call"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "at": _iso(self.at),
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": None if self.cost_usd is None else str(self.cost_usd),
            "duration_ms": self.duration_ms,
            "status": self.status,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class ToolCallStep:
    """One tool call's audit record, with its duration (from its span) and its approval.

    ``phase``: ``call`` for a call the model made; ``send`` / ``discard`` for a deferred
    effect delivered or dropped when the run ended; ``compensate`` for a write taken back.
    ``detail`` is the error or refusal text shown to the model (redacted). ``step``: the
    run's step, the call's own, or for a send, discard or compensation the step of the call
    it settles (None when its record names none it agrees with: see ``settles``).
    ``fee_usd``: what the run's budget charged for it as its tool's fee, as audited (None
    for a record from before fees were audited).
    """

    at: datetime
    tool: str
    phase: CallPhase
    arguments: Mapping[str, Any] | None
    arguments_sha256: str | None
    verdict: str | None
    rule_id: str | None
    stage: str | None
    reason: str
    outcome: str
    detail: str
    duration_ms: float | None
    span_id: str
    approval: ApprovalView | None
    step: int | None = None
    fee_usd: Decimal | None = None
    kind: Literal["tool_call"] = "tool_call"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "at": _iso(self.at),
            "tool": self.tool,
            "phase": self.phase,
            "arguments": self.arguments,
            "arguments_sha256": self.arguments_sha256,
            "verdict": self.verdict,
            "rule_id": self.rule_id,
            "stage": self.stage,
            "reason": self.reason,
            "outcome": self.outcome,
            "detail": self.detail,
            "duration_ms": self.duration_ms,
            "span_id": self.span_id,
            "approval": self.approval.as_dict() if self.approval else None,
            "step": self.step,
            "fee_usd": _str(self.fee_usd),
        }


Step = RunEdgeStep | ModelCallStep | ToolCallStep


@dataclass(frozen=True, slots=True)
class Usage:
    """What the run used.

    ``final``: the run has ended, and these are its own ledger's totals (the ``runs`` row,
    written once, at its end). Not final: the run has not ended (a durable run parked for
    approval, a run in flight), its row has no totals yet, so they are counted from the
    timeline itself, so far: model calls, tokens and model cost from the stored spans (None
    when no span is stored), tool calls from the audit log as the ledger counts them (those
    that reached the budget stage), tool fees as the audit log records what the ledger
    charged for each call (None when a call was recorded before fees were audited; then the
    cost is None too), and no elapsed time.
    """

    model_calls: int | None
    tool_calls: int | None
    tool_errors: int | None
    denied_calls: int | None
    total_tokens: int | None
    cost_usd: Decimal | None
    model_cost_usd: Decimal | None
    tool_fees_usd: Decimal | None
    elapsed_seconds: float | None
    final: bool = True
    # Figures the row holds that are no amount (``RunRow.unreadable``): None above.
    unreadable: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "final": self.final,
            "model_calls": self.model_calls,
            "tool_calls": self.tool_calls,
            "tool_errors": self.tool_errors,
            "denied_calls": self.denied_calls,
            "total_tokens": self.total_tokens,
            "cost_usd": _str(self.cost_usd),
            "model_cost_usd": _str(self.model_cost_usd),
            "tool_fees_usd": _str(self.tool_fees_usd),
            "elapsed_seconds": self.elapsed_seconds,
            "unreadable": list(self.unreadable),
        }


@dataclass(frozen=True, slots=True)
class Limits:
    """The charter's budgets per run (``None``: no limit)."""

    max_total_tokens: int | None
    max_tool_calls: int | None
    max_usd_per_run: Decimal | None
    overall_seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_total_tokens": self.max_total_tokens,
            "max_tool_calls": self.max_tool_calls,
            "max_usd_per_run": None if self.max_usd_per_run is None else str(self.max_usd_per_run),
            "overall_seconds": self.overall_seconds,
        }


@dataclass(frozen=True, slots=True)
class Timeline:
    """A run, its usage against its limits, and its steps in time order.

    ``outcome`` is ``running`` while the run has not ended (a durable run parked for
    approval included). ``usage`` is None when the run's row was pruned; ``limits`` when no
    charter was given. ``notes`` say what could not be shown and why.
    """

    run_id: str
    charter: str
    charter_sha256: str
    tenant: str
    user: str
    environment: str
    model: str
    trace_id: str
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    reason: str
    rule_id: str | None
    usage: Usage | None
    limits: Limits | None
    steps: tuple[Step, ...]
    notes: tuple[str, ...]

    @property
    def ended(self) -> bool:
        return self.outcome != "running"

    def settlements(self, call: ToolCallStep) -> tuple[ToolCallStep, ...]:
        """What settled ``call`` (its send or discard, or its compensation), by its step."""
        return tuple(s for s in self.steps if isinstance(s, ToolCallStep) and settles(s, call))

    def settled_call(self, effect: ToolCallStep) -> ToolCallStep | None:
        """The call a send, discard or compensation settles, by its step (None if none)."""
        calls = [s for s in self.steps if isinstance(s, ToolCallStep) and settles(effect, s)]
        return calls[-1] if calls else None  # a step recorded twice: its last record

    @property
    def pending_approvals(self) -> list[ApprovalView]:
        return [
            s.approval
            for s in self.steps
            if isinstance(s, ToolCallStep) and s.approval and s.approval.status == "pending"
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "charter": self.charter,
            "charter_sha256": self.charter_sha256,
            "tenant": self.tenant,
            "user": self.user,
            "environment": self.environment,
            "model": self.model,
            "trace_id": self.trace_id,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "outcome": self.outcome,
            "reason": self.reason,
            "rule_id": self.rule_id,
            "usage": self.usage.as_dict() if self.usage else None,
            "limits": self.limits.as_dict() if self.limits else None,
            "steps": [step.as_dict() for step in self.steps],
            "notes": list(self.notes),
        }


def usage_of_row(row: RunRow) -> Usage:
    return Usage(
        model_calls=row.model_calls,
        tool_calls=row.tool_calls,
        tool_errors=row.tool_errors,
        denied_calls=row.denied_calls,
        total_tokens=row.total_tokens,
        cost_usd=row.cost_usd,
        model_cost_usd=row.model_cost_usd,
        tool_fees_usd=row.tool_fees_usd,
        elapsed_seconds=row.elapsed_seconds,
        unreadable=row.unreadable,
    )


def settles(effect: ToolCallStep, call: ToolCallStep) -> bool:
    """Whether ``effect`` settles ``call``: a send or discard of that deferred call (the same
    tool and arguments), or a compensation of that write (its rule names the write's tool),
    made under the same step.

    The step alone is not trusted: an effect recorded before its step named it carried the
    model's tool-call id there, which may be a number that is some other call's step.
    """
    if effect.step is None or effect.step != call.step or call.phase != "call":
        return False
    if effect.phase in ("send", "discard"):
        return (
            call.outcome == "deferred"
            and effect.tool == call.tool
            and effect.arguments_sha256 == call.arguments_sha256
        )
    if effect.phase == "compensate":
        return call.outcome == "executed" and effect.rule_id == f"tools.{call.tool}.compensate"
    return False


def usage_so_far(steps: Sequence[Step], spans_stored: bool) -> Usage:
    """What a run that has not ended has used, counted from its timeline (see ``Usage``).

    One source for both: the header can then never disagree with the steps below it. The
    row's totals are not an option (written only at the end), nor is counting on every call
    (a database write per model and tool call on the hot path, and one a replayed durable
    step must not count twice). Tool fees are what each call's audit record says the ledger
    charged for it (``ToolResult.fee_usd``), the figure the run reports when it ends; None
    (unknown) when a call was recorded before fees were audited.

    A step recorded twice (a durable step run again after a crash, ending differently this
    time) counts once, as its last record: the ledger that goes on is the one that ran it.
    """
    models = [s for s in steps if isinstance(s, ModelCallStep)]
    calls = _last_per_step([s for s in steps if isinstance(s, ToolCallStep)])
    model_cost: Decimal | None = None
    if spans_stored and all(m.cost_usd is not None for m in models):
        model_cost = sum((m.cost_usd for m in models if m.cost_usd is not None), Decimal(0))
    fees: Decimal | None = None
    if all(c.fee_usd is not None for c in calls):
        fees = sum((c.fee_usd for c in calls if c.fee_usd is not None), Decimal(0))
    tokens = sum(m.input_tokens + m.output_tokens for m in models)
    return Usage(
        model_calls=len(models) if spans_stored else None,
        tool_calls=sum(1 for c in calls if c.phase == "call" and _reached_budget(c)),
        tool_errors=sum(1 for c in calls if c.outcome in ("error", "timeout")),
        denied_calls=sum(1 for c in calls if c.outcome == "denied"),
        total_tokens=tokens if spans_stored else None,
        cost_usd=None if model_cost is None or fees is None else model_cost + fees,
        model_cost_usd=model_cost,
        tool_fees_usd=fees,
        elapsed_seconds=None,
        final=False,
    )


def _last_per_step(calls: Sequence[ToolCallStep]) -> list[ToolCallStep]:
    """Each (phase, step)'s last record; records that name no step each count."""
    last: dict[object, ToolCallStep] = {}
    for index, call in enumerate(calls):
        last[(call.phase, call.step) if call.step is not None else index] = call
    return list(last.values())


def _reached_budget(call: ToolCallStep) -> bool:
    """Whether the ledger counted this call: it got past the kill switch, the allowlist and
    the argument schema, and its tool-call slot was reserved (a budget refusal was not)."""
    return call.stage not in _BEFORE_BUDGET and call.outcome != "budget_exceeded"


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
