"""The state of one tool call as it moves through the pipeline, and what comes out."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from charter.contract.schema import ToolDecl
from charter.contract.tool import ToolSpec
from charter.core.decision import Decision, Stage
from charter.core.errors import (
    ApprovalRequired,
    BudgetExceeded,
    GovernedOutcome,
    PermissionDenied,
    ToolFailed,
    ToolMisconfigured,
    ToolTimeout,
)
from charter.core.events import ToolCallOutcome
from charter.policy.budget import Reservation

if TYPE_CHECKING:
    from charter.execution.approvals import ApprovalRequest

__all__ = ["FailureKind", "PendingCall", "RefusalKind", "ToolResult"]

FailureKind = Literal["tool", "configuration"]
"""Why a call that went ahead did not execute (outcome ``error`` or ``timeout``).

``tool``: the tool raised or ran out of time; the model is told and may try something else.
``configuration``: the call could not run for a reason only the operator can fix (a
credential missing or unsafe, a resource the run was not given: any ``UserError``); no model
can work around it, so the agent loop fails the run at once with it as the reason.
"""

RefusalKind = Literal["violation", "blocked_attack", "human"]
"""What a ``denied`` call says about the agent (see ``ToolResult.refusal``)."""


@dataclass(slots=True)
class PendingCall:
    """Mutable scratch state of one call; stages fill it in order."""

    tool: str
    raw_arguments: Any
    call_id: str
    span_id: str
    started: float
    spec: ToolSpec | None = None
    decl: ToolDecl | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    canonical_arguments: dict[str, Any] = field(default_factory=dict)
    arguments_sha256: str = ""
    reservation: Reservation | None = None
    approval_id: str | None = None
    # The run's step this call is (0 for a dry decision and for settling effects).
    step: int = 0
    # Names this call's audit record so a durable step run twice records it once.
    event_id: str = ""
    # ``run_id:step``: handed to the tool, and what a used approval is bound to.
    idempotency_key: str = ""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of one governed tool call.

    ``model_text`` is what the model is shown: the redacted result, or why the call did not
    happen. ``value`` is the tool's raw return value (host code only; never shown as is).
    ``failure`` says why a call that went ahead did not execute (None when it executed or
    was refused: see ``FailureKind``). ``fee_usd`` is what the run's budget charged for this
    call as the tool's fee: its declared fee for a call that started (whether it executed,
    raised, timed out or was interrupted) and for a deferred one when it was decided; zero
    when nothing was charged (a refusal, a call that never started, sending or discarding a
    deferred effect, a compensation). None only for a result recorded before fees were kept.
    """

    call_id: str
    tool: str
    decision: Decision
    outcome: ToolCallOutcome
    model_text: str
    value: Any = None
    duration_ms: float = 0.0
    arguments: dict[str, Any] = field(default_factory=dict)
    approval: ApprovalRequest | None = None
    failure: FailureKind | None = None
    # The run had read untrusted content (a tool output the charter marks untrusted) by the
    # time this call ended: for a refusal, before the call was made.
    untrusted_read: bool = False
    fee_usd: Decimal | None = Decimal(0)

    @property
    def refusal(self) -> RefusalKind | None:
        """What a refused (``denied``) call says about the agent; None for other outcomes.

        ``human``: an approver rejected it, or its request expired (the approval gate worked).
        ``blocked_attack``: a rule of the charter (a constraint, a ``deny`` or untrusted-content
        rule, a Cedar policy, no permit) refused it after the run had read untrusted content.
        That is what an injected instruction looks like, stopped by the policy; Charter cannot
        tell it from a model misreading ordinary customer text, and either way the policy
        did its work. ``violation``: anything else refused: a rule refusing a call made with
        no untrusted content in sight (the agent's own idea, or its user's), a tool the
        charter does not declare, arguments that break the schema, a policy that could not
        be evaluated (``policy-error``).
        """
        if self.outcome != "denied":
            return None
        stage = self.decision.stage
        if stage is Stage.APPROVAL:
            return "human"
        if (
            stage is Stage.POLICY
            and self.untrusted_read
            and self.decision.rule_id != "policy-error"
        ):
            return "blocked_attack"
        return "violation"

    @property
    def executed(self) -> bool:
        return self.outcome == "executed"

    def as_dict(self) -> dict[str, Any]:
        """Plain data (the raw ``value`` is host-only and not kept)."""
        return {
            "call_id": self.call_id,
            "tool": self.tool,
            "decision": self.decision.as_dict(),
            "outcome": self.outcome,
            "model_text": self.model_text,
            "duration_ms": self.duration_ms,
            "arguments": self.arguments,
            "approval": self.approval.as_dict() if self.approval else None,
            "failure": self.failure,
            "untrusted_read": self.untrusted_read,
            "fee_usd": None if self.fee_usd is None else str(self.fee_usd),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolResult:
        """The inverse of ``as_dict``."""
        from charter.execution.approvals import ApprovalRequest

        approval = data.get("approval")
        return cls(
            call_id=data["call_id"],
            tool=data["tool"],
            decision=Decision.from_dict(data["decision"]),
            outcome=data["outcome"],
            model_text=data["model_text"],
            duration_ms=float(data["duration_ms"]),
            arguments=data["arguments"],
            approval=ApprovalRequest.from_dict(approval) if approval else None,
            failure=_failure(data),
            untrusted_read=bool(data.get("untrusted_read", False)),
            fee_usd=_fee(data.get("fee_usd")),
        )

    def unwrap(self) -> Any:
        """The tool's value if it executed; otherwise raise the governed outcome.

        A deferred call (``defer: until_run_succeeds``) returns None: it was accepted and has
        no value yet; it runs when the run settles its effects (``Run.settle_effects``).

        Raises:
            ApprovalRequired: a human must approve these exact arguments first (its
                ``request_id`` is ``""`` when the run cannot wait and none was filed).
            PermissionDenied: the allowlist, the argument schema or a policy refused the call.
            BudgetExceeded: a budget of the run would have been overspent.
            ToolTimeout: the tool ran past its time limit.
            ToolMisconfigured: the call could not run for a reason the operator must fix (a
                credential or resource missing; ``failure == "configuration"``). It is a
                ``ToolFailed`` and a ``UserError``.
            ToolFailed: the tool raised (its error text, redacted, is the message).
        """
        if self.outcome == "executed":
            return self.value
        if self.outcome == "deferred":
            return None
        if self.failure == "configuration":
            raise ToolMisconfigured(self.decision, self.model_text)
        if self.outcome == "approval_required":
            if self.approval is None:  # the run cannot wait (``Run.can_wait``): none filed
                raise ApprovalRequired(self.decision, "", "")
            raise ApprovalRequired(self.decision, self.approval.id, self.approval.arguments_sha256)
        error = _OUTCOME_ERRORS.get(self.outcome, PermissionDenied)
        raise error(self.decision, self.model_text)


_OUTCOME_ERRORS: dict[str, type[GovernedOutcome]] = {
    "denied": PermissionDenied,
    "budget_exceeded": BudgetExceeded,
    "timeout": ToolTimeout,
    "error": ToolFailed,
}


def _failure(data: dict[str, Any]) -> FailureKind | None:
    """The failure of a stored result; one recorded before failures were typed (a durable
    run's step from an older version) that errored or timed out was the tool's."""
    failure = data.get("failure")
    if failure in ("tool", "configuration"):
        return failure  # type: ignore[no-any-return]
    return "tool" if data["outcome"] in ("error", "timeout") else None


def _fee(stored: Any) -> Decimal | None:
    """A stored result's fee: exact decimal text from 0. None (or absent) is a result
    recorded before fees were kept; anything else is not a fee this code wrote.

    Raises:
        ValueError: the stored fee is not decimal text of a finite amount from 0.
    """
    if stored is None:
        return None
    fee: Decimal | None = None
    if isinstance(stored, str):
        with contextlib.suppress(ArithmeticError):
            fee = Decimal(stored)
    if fee is None or not fee.is_finite() or fee < 0:
        raise ValueError(f"a stored tool result's fee {stored!r} is not an amount from 0")
    return fee
