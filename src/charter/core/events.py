"""Typed events and a synchronous bus.

Enforcement code publishes what happened; the audit log, tracing and metrics subscribe.
Delivery is synchronous and in subscription order, so when ``publish`` returns, the audit
record is durable. A subscriber that raises stops the publisher: an unaudited action must
not look successful.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from charter.core.decision import Decision

__all__ = [
    "ApprovalDecided",
    "Event",
    "EventBus",
    "GovernanceChanged",
    "KillSwitchChanged",
    "ModelCalled",
    "RunFinished",
    "RunStarted",
    "ToolCallFinished",
]

ToolCallOutcome = Literal[
    "executed",
    "denied",
    "approval_required",
    "budget_exceeded",
    "timeout",
    "error",
    "killed",  # refused by a kill switch before it started
    "interrupted",  # started, then stopped by a kill switch pulled while it ran
    "deferred",  # decided and queued until the run succeeds (see execution/effects.py)
    "discarded",  # a deferred effect dropped because the run did not succeed
]


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """Who and what a run is: copied onto every event so subscribers need no lookups."""

    run_id: str
    charter_name: str
    charter_sha256: str
    tenant: str
    user: str
    service_principal: str
    roles: tuple[str, ...]
    environment: str
    model: str
    prompt_sha256: str
    trace_id: str


@dataclass(frozen=True, slots=True)
class RunStarted:
    run: RunIdentity
    at: datetime
    input_sha256: str
    event_id: str = ""  # names the event for idempotent recording ("" when it has none)


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """One tool call went through the pipeline, whatever the outcome."""

    run: RunIdentity
    at: datetime
    call_id: str
    span_id: str
    tool: str
    arguments: dict[str, Any]  # canonical, secrets already redacted
    arguments_sha256: str
    decision: Decision
    outcome: ToolCallOutcome
    duration_ms: float
    detail: str = ""  # error text or result summary, redacted
    approval_request_id: str | None = None
    event_id: str = ""  # names the event for idempotent recording ("" when it has none)
    result: str = ""  # an executed call's result as the model sees it, redacted (for traces)
    # What the run's budget charged for this call as its tool's fee (``ToolResult.fee_usd``),
    # audited with it; None from a publisher that does not know.
    fee_usd: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ModelCalled:
    """One model call. The messages are for traces that record content (off by default)."""

    run: RunIdentity
    at: datetime
    span_id: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: str
    duration_ms: float
    # Plain data, redacted: {"role", "content", "tool_calls": [{"id", "name", "arguments"}],
    # "tool_call_id", "name"} per message sent, and the same for the reply.
    input_messages: tuple[dict[str, Any], ...] = ()
    output_message: dict[str, Any] | None = None
    # Why the call gave the run no reply it could use (a kill or the host stopped it, the
    # run's time ran out, the reply broke the protocol), redacted; "" when it answered. The
    # tokens and cost are then the reserved worst case the run was charged, not usage.
    error: str = ""


@dataclass(frozen=True, slots=True)
class RunFinished:
    run: RunIdentity
    at: datetime
    outcome: str
    reason: str
    decision: Decision | None = None
    totals: dict[str, Any] = field(default_factory=dict)
    event_id: str = ""  # names the event for idempotent recording ("" when it has none)


ApprovalVerdict = Literal["approve", "reject", "terminate", "escalate", "expire"]


@dataclass(frozen=True, slots=True)
class ApprovalDecided:
    """A human (or expiry) decided an approval request."""

    at: datetime
    request_id: str
    run_id: str
    tenant: str
    charter_name: str
    tool: str
    arguments_sha256: str
    verdict: ApprovalVerdict
    decided_by: str
    reason: str


@dataclass(frozen=True, slots=True)
class KillSwitchChanged:
    """An operator killed or revived a scope."""

    at: datetime
    scope: str
    action: Literal["kill", "revive"]
    reason: str
    by: str


@dataclass(frozen=True, slots=True)
class GovernanceChanged:
    """A release was created, promoted, rolled out or rolled back (by a person or a guard).

    ``action`` is one of ``governance.changelog.ACTIONS``; ``release_id`` and
    ``environment`` are "" when the action has none.
    """

    at: datetime
    charter_name: str
    environment: str
    action: str
    actor: str
    release_id: str
    reason: str
    detail: str = ""


Event = (
    RunStarted
    | ToolCallFinished
    | ModelCalled
    | RunFinished
    | ApprovalDecided
    | KillSwitchChanged
    | GovernanceChanged
)


class EventBus:
    """Synchronous publish/subscribe for the typed events above."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Event], None]] = []

    def subscribe(self, handler: Callable[[Event], None]) -> None:
        self._subscribers.append(handler)

    def publish(self, event: Event) -> None:
        for handler in self._subscribers:
            handler(event)
