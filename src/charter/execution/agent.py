"""The built-in agent loop: model proposes, Charter disposes, until a stop condition.

Stop conditions, each a run outcome:
    succeeded          the model gave a final answer
    escalated          the model called ``escalate_to_human``, or a budget ran out with
                       ``on_exceed: escalate``
    denied             a call was denied and the charter says ``on_deny: stop``
    approval_required  a call needs a human's approval and the run cannot wait for it (an
                       in-process run: nothing is filed; a durable run files a request and
                       waits, then goes on)
    budget_exceeded    a budget ran out with ``on_exceed: fail``
    killed             the kill switch fired (checked before each step; a tool or model
                       call running when it lands is stopped: see ``kill_watch.py``), or
                       refused or stopped a deferred effect when the run settled
    failed             the model errored, timed out, or used up ``max_steps``; or a tool could
                       not run for a reason the operator must fix (a credential or resource
                       missing: ``ToolResult.failure == "configuration"``), or a deferred
                       effect failed when the run settled
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

from charter.core.cancellation import Cancellation
from charter.core.canonical import sha256_hex
from charter.core.decision import Decision, Stage, Verdict
from charter.core.errors import KillSignal, ModelResponseInvalid
from charter.core.events import ModelCalled, RunFinished, RunStarted
from charter.core.money import format_usd
from charter.execution.approvals import ApprovalRequest
from charter.execution.call import ToolResult
from charter.execution.kill_watch import KILL_WATCH
from charter.execution.model import (
    Message,
    Model,
    ModelResponse,
    ToolCallRequest,
    checked_response,
    message_to_dict,
    response_from_dict,
    response_to_dict,
)
from charter.execution.run import Run
from charter.execution.steps import ApprovalOutcome, InProcessSteps, Steps
from charter.policy.budget import Reservation
from charter.policy.pricing import ModelPrice

__all__ = ["ESCALATE_TOOL", "RunOutcome", "RunResult", "run_agent"]

RunOutcome = Literal[
    "succeeded", "failed", "escalated", "denied", "budget_exceeded", "approval_required", "killed"
]

ESCALATE_TOOL = "escalate_to_human"
_ESCALATE_SPEC: dict[str, Any] = {
    "name": ESCALATE_TOOL,
    "description": "Hand the case to a human when you cannot or should not finish it yourself.",
    "parameters": {
        "type": "object",
        "properties": {"reason": {"type": "string", "description": "why a human is needed"}},
        "required": ["reason"],
        "additionalProperties": False,
    },
}
_CHARS_PER_TOKEN = 4
_DONE = frozenset({"executed", "deferred"})
# The rule a run fails under when a tool could not run for the operator to fix.
_CONFIGURATION = "execute.configuration"
_MAX_REASON = 2000


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended, with everything needed to explain it."""

    run_id: str
    charter: str
    tenant: str
    user: str
    outcome: RunOutcome
    reason: str
    final_text: str
    tool_calls: tuple[ToolResult, ...]
    model_calls: int
    total_tokens: int
    cost_usd: Decimal
    trace_id: str
    decision: Decision | None = None
    approval: ApprovalRequest | None = None
    messages: tuple[Message, ...] = field(default=(), repr=False)
    # The user's input held a credential the run knows: the model saw ``[REDACTED]`` there.
    input_redacted: bool = False

    def count(self, outcome: str) -> int:
        return sum(1 for call in self.tool_calls if call.outcome == outcome)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "charter": self.charter,
            "tenant": self.tenant,
            "user": self.user,
            "outcome": self.outcome,
            "reason": self.reason,
            "final_text": self.final_text,
            "input_redacted": self.input_redacted,
            "model_calls": self.model_calls,
            "total_tokens": self.total_tokens,
            "cost_usd": str(self.cost_usd),
            "trace_id": self.trace_id,
            "decision": self.decision.as_dict() if self.decision else None,
            "approval": self.approval.as_dict() if self.approval else None,
            "tool_calls": [
                {
                    "call_id": c.call_id,
                    "tool": c.tool,
                    "arguments": c.arguments,
                    "outcome": c.outcome,
                    "decision": c.decision.as_dict(),
                    "duration_ms": round(c.duration_ms, 3),
                    "failure": c.failure,
                    # Why it did not run (an error, a refusal), as the model was told.
                    "detail": "" if c.outcome in _DONE else c.model_text,
                }
                for c in self.tool_calls
            ],
        }


@dataclass(slots=True)
class _Stop:
    outcome: RunOutcome
    reason: str
    decision: Decision | None = None
    final_text: str = ""
    approval: ApprovalRequest | None = None


async def run_agent(
    run: Run,
    model: Model,
    user_input: str,
    *,
    price: ModelPrice | None,
    max_steps: int = 24,
    steps: Steps | None = None,
) -> RunResult:
    """Drive ``model`` through ``run`` until a stop condition; never raises for outcomes.

    ``steps`` decides how each unit of work runs: here and now (the default), or as a
    durable step that survives a crash (see ``execution/steps.py``).
    """
    steps = steps or InProcessSteps()
    run.can_wait = steps.can_wait  # only a run that can wait files approval requests
    services = run.services

    # A credential the user typed is redacted like one a tool returned: the model, the
    # provenance record and the audit's input hash all see the redacted text (the run goes on).
    shown_input = run.redact_text(user_input)

    async def started() -> dict[str, Any]:
        started_at = services.clock.now()
        event = RunStarted(run.identity, started_at, sha256_hex(shown_input), f"{run.id}/started")
        services.bus.publish(event)
        return {}

    run.provenance.add_trusted(shown_input)
    await steps.step(run, "run_started", started)
    messages: list[Message] = [
        Message("system", run.charter.prompt_text),
        Message("user", shown_input),
    ]
    tools = [spec.model_view() for spec in run.charter.tools.values()] + [_ESCALATE_SPEC]
    try:
        stop = await _loop(run, model, messages, tools, price, max_steps, steps)
    except KillSignal as signal:
        stop = _Stop(
            "killed",
            str(signal),
            Decision.deny(Stage.KILL_SWITCH, signal.reason, f"kill-switch:{signal.scope}"),
        )
    except ModelResponseInvalid as refused:  # a recorded reply that does not read back
        reason = run.redact_text(refused.decision.reason)
        stop = _Stop("failed", reason, replace(refused.decision, reason=reason))
    stop = await _settle(run, stop, steps)
    # Every reply was a call; a call that never answered (stopped by a kill, out of time, a
    # reply refused) is counted by the run. Replies alone are a lower bound, for a durable
    # run recorded before the run counted its calls.
    model_calls = max(run.model_calls, sum(1 for m in messages if m.role == "assistant"))

    async def finished() -> dict[str, Any]:
        totals = run.ledger.totals()
        services.bus.publish(
            RunFinished(
                run.identity,
                services.clock.now(),
                stop.outcome,
                stop.reason,
                stop.decision,
                {
                    "tool_calls": totals.tool_calls,
                    "total_tokens": totals.total_tokens,
                    "cost_usd": str(totals.cost_usd),
                    "model_calls": model_calls,
                    **_call_counts(run),
                    "elapsed_seconds": round(totals.elapsed_seconds, 6),
                },
                event_id=f"{run.id}/finished",
            )
        )
        return {}

    await steps.step(run, "run_finished", finished)
    totals = run.ledger.totals()
    return RunResult(
        run_id=run.id,
        charter=run.charter.name,
        tenant=run.principal.tenant,
        user=run.principal.user,
        outcome=stop.outcome,
        reason=stop.reason,
        final_text=stop.final_text,
        tool_calls=tuple(run.results),
        model_calls=model_calls,
        total_tokens=totals.total_tokens,
        cost_usd=totals.cost_usd,
        trace_id=run.identity.trace_id,
        decision=stop.decision,
        approval=stop.approval,
        messages=tuple(_as_shown(run, messages)),  # the model's own turns redacted too
        input_redacted=shown_input != user_input,
    )


def _call_counts(run: Run) -> dict[str, Any]:
    """What the run's calls came to, from its results (which survive a crash and replay)."""
    declared = run.charter.spec.tools
    # What the ledger charged as each call's fee (ToolResult.fee_usd), so the run's tool
    # fees and model cost add up to what it was charged. A result recorded before fees were
    # kept (a durable run from an older version) counts as that version did.
    fees = sum(
        (
            r.fee_usd
            if r.fee_usd is not None
            else declared[r.tool].fee_usd
            if r.outcome in ("executed", "interrupted") and r.tool in declared
            else Decimal(0)
            for r in run.results
        ),
        Decimal(0),
    )
    return {
        "tool_errors": sum(1 for r in run.results if r.outcome in ("error", "timeout")),
        "denied_calls": sum(1 for r in run.results if r.outcome == "denied"),
        # What the refusals say about the agent (ToolResult.refusal), for SLOs and guards.
        "violations": sum(1 for r in run.results if r.refusal == "violation"),
        "blocked_attacks": sum(1 for r in run.results if r.refusal == "blocked_attack"),
        "tool_fees_usd": str(fees),
    }


async def _settle(run: Run, stop: _Stop, steps: Steps) -> _Stop:
    """Send or discard the run's deferred effects and compensate its writes (effects.py).

    A run waiting for approval has not ended: its effects wait with it.
    """
    if stop.outcome == "approval_required":
        return stop

    async def settle() -> dict[str, Any]:
        before = len(run.results)
        settled = await run.settle_effects(succeeded=stop.outcome == "succeeded")
        out: dict[str, Any] = {
            "failure": settled.failure,
            "not_undone": _not_undone(run.results[before:]),
        }
        if settled.kill is not None:  # only then: a step's "killed" means a kill stopped it
            out["killed"] = {"scope": settled.kill.scope, "reason": settled.kill.reason}
        return out

    settled = await steps.step(run, "settle_effects", settle)
    failure, not_undone = settled["failure"], settled.get("not_undone", [])
    killed = settled.get("killed")
    if killed is not None:
        # A kill stopped a send: the run ends as any run a kill stopped, saying which send.
        rule = f"kill-switch:{killed['scope']}"
        stop = _Stop("killed", failure, Decision.deny(Stage.KILL_SWITCH, killed["reason"], rule))
    elif failure is not None:
        stop = _Stop("failed", failure, Decision.deny(Stage.EXECUTE, failure, "effects.send"))
    if not_undone:
        # The outcome stays what ended the run; its reason must not let a reader believe
        # every write was taken back.
        stop = replace(stop, reason=f"{stop.reason}; NOT UNDONE: {'; '.join(not_undone)}")
    return stop


def _not_undone(settled: list[ToolResult]) -> list[str]:
    """The writes whose compensation did not execute (it raised, timed out, could not run)."""
    return [
        # The reason is "compensating <the write's tool> #<its step>" (Run._compensate).
        f"{r.decision.reason.removeprefix('compensating ')} could not be compensated: "
        f"{r.tool} {r.outcome}: {r.model_text}"
        for r in settled
        if r.decision.rule_id.endswith(".compensate") and r.outcome != "executed"
    ]


async def _loop(
    run: Run,
    model: Model,
    messages: list[Message],
    tools: list[dict[str, Any]],
    price: ModelPrice | None,
    max_steps: int,
    steps: Steps,
) -> _Stop:
    for _ in range(max_steps):
        turn = await steps.step(
            run, "model", lambda: _as_data(_model_turn(run, model, messages, tools, price))
        )
        _raise_if_killed(turn)
        if "stop" in turn:
            return _stop_from_dict(turn["stop"])
        response = response_from_dict(turn["response"])
        messages.append(response.message)
        if not response.message.tool_calls:
            return _Stop("succeeded", "the agent finished", final_text=response.message.content)
        for request in response.message.tool_calls:
            if request.name == ESCALATE_TOOL:
                reason = _escalation_reason(run, request.arguments)
                return _Stop(
                    "escalated",
                    reason,
                    Decision(Verdict.ALLOW, reason, "builtin.escalate_to_human", Stage.POLICY),
                )
            result = await _tool_step(run, steps, request)
            if result.outcome == "approval_required" and result.approval is not None:
                decided = await steps.await_approval(run, result.approval)
                if decided is not None:
                    result, stop = await _after_approval(run, steps, request, result, decided)
                    if stop is not None:
                        return stop
            messages.append(
                Message("tool", result.model_text, tool_call_id=request.id, name=request.name)
            )
            stop = _stop_for(run, result)
            if stop is not None:
                return stop
    return _Stop("failed", f"the agent did not finish within {max_steps} steps")


async def _tool_step(run: Run, steps: Steps, request: ToolCallRequest) -> ToolResult:
    async def work() -> dict[str, Any]:
        try:
            result = await run.call_tool(request.name, request.arguments, call_id=request.id)
        except KillSignal as signal:
            return {"killed": {"scope": signal.scope, "reason": signal.reason}}
        return {"result": result.as_dict()}

    out = await steps.step(run, f"tool {request.name}", work)
    _raise_if_killed(out)
    return ToolResult.from_dict(out["result"])


async def _after_approval(
    run: Run,
    steps: Steps,
    request: ToolCallRequest,
    pending: ToolResult,
    decided: ApprovalOutcome,
) -> tuple[ToolResult, _Stop | None]:
    """Act on a human's decision: run the approved call, or tell the model, or stop."""
    if decided.verdict == "kill":
        # Recorded by the wait itself, so a replay after a crash stops here the same way.
        raise KillSignal(decided.scope or "unknown", decided.reason)
    # The approver's words reach the model, the run's reason and the audit: redacted first.
    who = run.redact_text(f"{decided.by}: {decided.reason}" if decided.reason else decided.by)
    if decided.verdict == "approve":
        # The same call again: the approval stage finds the grant for these exact arguments.
        return await _tool_step(run, steps, request), None
    if decided.verdict == "terminate":
        decision = Decision.deny(Stage.APPROVAL, f"terminated by {who}", "approval.terminate")
        return pending, _Stop("denied", decision.reason, decision)
    if decided.verdict == "escalate":
        decision = Decision.deny(Stage.APPROVAL, f"escalated by {who}", "approval.escalate")
        return pending, _Stop("escalated", decision.reason, decision)
    # Rejected, or expired (which counts as rejected): a denial of this call, by a human.
    # The model is told; whether the run goes on is the charter's on_deny, as for any denial.
    word = "expired unanswered" if decided.verdict == "expire" else f"rejected by {who}"
    decision = Decision.deny(Stage.APPROVAL, f"{request.name} was {word}",
                             f"approval.{decided.verdict}")  # fmt: skip
    rejected = replace(
        pending, outcome="denied", decision=decision, model_text=f"REJECTED: {decision.reason}"
    )
    return rejected, None


async def _as_data(turn: Awaitable[ModelResponse | _Stop]) -> dict[str, Any]:
    """A model turn as plain data; a kill switch found on the way is data too."""
    try:
        result = await turn
    except KillSignal as signal:
        return {"killed": {"scope": signal.scope, "reason": signal.reason}}
    if isinstance(result, _Stop):
        return {"stop": _stop_to_dict(result)}
    return {"response": response_to_dict(result)}


def _content(run: Run, messages: list[Message], response: ModelResponse | None) -> dict[str, Any]:
    """The redacted conversation for ``ModelCalled``, only when traces record content: copying
    and redacting every message on every turn is not free, and nothing else reads it. A reply
    that was refused (``None``) is not recorded: it may not even be data."""
    if not run.services.record_content:
        return {}
    return {
        "input_messages": tuple(run.redact([message_to_dict(m) for m in messages])),
        "output_message": None
        if response is None
        else run.redact(message_to_dict(response.message)),
    }


def _raise_if_killed(out: dict[str, Any]) -> None:
    killed = out.get("killed")
    if killed is not None:
        raise KillSignal(killed["scope"], killed["reason"])


def _stop_to_dict(stop: _Stop) -> dict[str, Any]:
    return {
        "outcome": stop.outcome,
        "reason": stop.reason,
        "decision": stop.decision.as_dict() if stop.decision else None,
        "final_text": stop.final_text,
        "approval": stop.approval.as_dict() if stop.approval else None,
    }


def _stop_from_dict(data: dict[str, Any]) -> _Stop:
    return _Stop(
        data["outcome"],
        data["reason"],
        Decision.from_dict(data["decision"]) if data["decision"] else None,
        data["final_text"],
        ApprovalRequest.from_dict(data["approval"]) if data["approval"] else None,
    )


def _escalation_reason(run: Run, arguments: Any) -> str:
    """The model's reason for escalating, as the audit log may keep it: redacted, bounded."""
    raw = arguments.get("reason", "") if isinstance(arguments, dict) else ""
    text = run.redact_text(str(raw)).encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > _MAX_REASON:
        text = text[:_MAX_REASON] + f"... [{len(text) - _MAX_REASON} more chars]"
    return text if text.strip() else "the agent asked for a human"


def _stop_for(run: Run, result: ToolResult) -> _Stop | None:
    spec = run.charter.spec
    if result.outcome == "approval_required":
        return _Stop(
            "approval_required", result.decision.reason, result.decision, approval=result.approval
        )
    if result.outcome == "budget_exceeded":
        return _budget_stop(run, result.decision)
    if result.outcome == "denied" and spec.policies.on_deny == "stop":
        return _Stop("denied", result.decision.reason, result.decision)
    if result.failure == "configuration":
        # Nothing the model does can fix a missing credential or resource: letting it go on
        # would end in a final answer that reads as success although the effect never ran.
        reason = f"{result.tool} could not run: {result.model_text}"
        return _Stop("failed", reason, Decision.deny(Stage.EXECUTE, reason, _CONFIGURATION))
    return None


def _budget_stop(run: Run, decision: Decision) -> _Stop:
    if run.charter.spec.budgets.on_exceed == "escalate":
        return _Stop("escalated", f"escalated to a human: {decision.reason}", decision)
    return _Stop("budget_exceeded", decision.reason, decision)


async def _model_turn(
    run: Run,
    model: Model,
    messages: list[Message],
    tools: list[dict[str, Any]],
    price: ModelPrice | None,
) -> ModelResponse | _Stop:
    """One model call inside the token, USD and time budgets (reserved before, settled after)."""
    kill = run.services.kill_switches.active_for(run.charter.name, run.principal.tenant)
    if kill is not None:
        raise KillSignal(kill.scope, kill.reason)
    clock = run.services.clock
    max_output = run.charter.spec.model.max_output_tokens
    estimated_input = _estimate_tokens(messages, tools)
    worst_usd = price.cost(estimated_input, max_output) if price else Decimal(0)
    reservation = run.ledger.reserve(tokens=estimated_input + max_output, usd=worst_usd)
    if not isinstance(reservation, Reservation):
        return _budget_stop(run, reservation)
    shown = _as_shown(run, messages)
    name = f"{model.provider}:{model.name}"
    started = clock.monotonic()
    run.model_calls += 1  # sent: it counts whether or not it answers
    unanswered = _Unanswered(run, reservation, name, started, shown)
    # The call is in flight like a running tool: the process's kill watch cancels this task
    # when a kill covering the run lands, instead of the kill waiting for the next step.
    cancellation = Cancellation()
    flight = KILL_WATCH.enter(
        run.services.kill_switches,
        run.charter.name,
        run.principal.tenant,
        cancellation,
        asyncio.current_task(),
    )
    deadline = asyncio.timeout(run.ledger.seconds_left())
    try:
        async with deadline:
            reply = await model.chat(shown, tools, max_output_tokens=max_output)
    except asyncio.CancelledError:
        if not flight.stopped_by_kill():
            unanswered.charge("the run was cancelled by its host while the model call ran")
            raise  # the host's: it goes on up
        scope, reason = cancellation.scope or "unknown", cancellation.reason
        unanswered.charge(f"the kill switch ({scope}) stopped the model call: {reason}")
        raise KillSignal(scope, reason) from None
    except TimeoutError as exc:
        if not deadline.expired():  # the provider client's own timeout: a failed call
            run.ledger.release(reservation)
            return _Stop("failed", run.redact_text(f"model call failed: TimeoutError: {exc}"))
        why = "budget exceeded: the run ran out of time waiting for the model"
        unanswered.charge(why)
        return _budget_stop(
            run, Decision.deny(Stage.BUDGET, why, "budget.timeouts.overall_seconds")
        )
    except Exception as exc:
        # The provider answered with an error: nothing was generated, nothing to charge.
        run.ledger.release(reservation)
        return _Stop("failed", run.redact_text(f"model call failed: {type(exc).__name__}: {exc}"))
    finally:
        KILL_WATCH.leave(flight)
    try:
        response = checked_response(reply, name)
    except ModelResponseInvalid as refused:
        # The model ran and its provider may bill it, but what it used is unknown: the run is
        # charged the worst case it reserved (never less, never a refill), and it ends.
        unanswered.charge(refused.decision.reason)
        reason = run.redact_text(
            f"{refused.decision.reason}; the run was charged the call's reserved worst case "
            f"({reservation.tokens} tokens, {format_usd(worst_usd)})"
        )
        return _Stop("failed", reason, replace(refused.decision, reason=reason))
    usage = response.usage
    cost = price.cost(usage.input_tokens, usage.output_tokens) if price else Decimal(0)
    breach = run.ledger.settle(reservation, tokens=usage.total_tokens, usd=cost)
    used = (usage.input_tokens, usage.output_tokens, cost)
    _publish_model_called(run, name, used, started, _content(run, shown, response))
    if breach is not None:
        return _budget_stop(run, breach)
    return response


@dataclass(frozen=True, slots=True)
class _Unanswered:
    """A model call that was sent and gave the run no reply it can use."""

    run: Run
    reservation: Reservation
    name: str
    started: float
    shown: list[Message]

    def charge(self, why: str) -> None:
        """Charge the reserved worst case and publish ``ModelCalled`` saying ``why``.

        The request reached the provider, which may finish and bill it whatever happens
        here; what it used is unknown, so the run is charged the most it could have cost
        (its estimated prompt and ``max_output_tokens``), never less and never a refill.
        """
        run, reservation = self.run, self.reservation
        run.ledger.settle(reservation, tokens=reservation.tokens, usd=reservation.usd)
        output = run.charter.spec.model.max_output_tokens
        charged = (reservation.tokens - output, output, reservation.usd)
        content = _content(run, self.shown, None)
        _publish_model_called(run, self.name, charged, self.started, content,
                              error=run.redact_text(why))  # fmt: skip


def _publish_model_called(
    run: Run,
    name: str,
    used: tuple[int, int, Decimal],
    started: float,
    content: dict[str, Any],
    *,
    error: str = "",
) -> None:
    clock = run.services.clock
    input_tokens, output_tokens, cost = used
    run.services.bus.publish(
        ModelCalled(
            run.identity,
            clock.now(),
            os.urandom(8).hex(),
            name,
            input_tokens,
            output_tokens,
            str(cost),
            (clock.monotonic() - started) * 1000,
            **content,
            error=error,
        )
    )


def _as_shown(run: Run, messages: list[Message]) -> list[Message]:
    """The conversation as the model may see it: every text redacted once more here, the one
    place all of it passes whichever code wrote it (a tool result, a refusal, an approver's
    reason, the prompt). Messages with nothing to redact are passed on as they are."""
    shown: list[Message] = []
    for message in messages:
        content = run.redact_text(message.content)
        calls = message.tool_calls
        if calls:
            calls = tuple(
                replace(call, arguments=arguments)
                if (arguments := run.redact(call.arguments)) != call.arguments
                else call
                for call in calls
            )
        if content != message.content or calls != message.tool_calls:
            message = replace(message, content=content, tool_calls=calls)
        shown.append(message)
    return shown


def _estimate_tokens(messages: list[Message], tools: list[dict[str, Any]]) -> int:
    chars = sum(len(m.content) for m in messages) + len(json.dumps(tools))
    chars += sum(len(json.dumps(c.arguments, default=str)) for m in messages for c in m.tool_calls)
    return chars // _CHARS_PER_TOKEN + 1
