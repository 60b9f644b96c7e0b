"""A run, and the guarded path every one of its tool calls takes.

    kill switch -> allowlist -> arguments -> budget reserve -> policy (Cedar) -> approval
      -> execute (credential, idempotency key, time limit) -> budget settle
      -> ToolCallFinished event (the audit log and tracing subscribe to it)

Stages are small units in ``execution/stages``; this module only composes them, in that
fixed order, and turns their decisions into outcomes. ``Run.decide`` runs the same guards as a
dry run (no kill switch; nothing executed, filed or recorded), for policy what-if.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from charter.contract.loader import Charter
from charter.core.canonical import sha256_hex
from charter.core.clock import Clock
from charter.core.decision import Decision, Stage, Verdict
from charter.core.errors import KillSignal
from charter.core.events import EventBus, RunIdentity, ToolCallFinished, ToolCallOutcome
from charter.core.ids import new_id
from charter.execution.approvals import (
    ApprovalGrants,
    ApprovalInbox,
    ApprovalRequest,
)
from charter.execution.call import FailureKind, PendingCall, ToolResult
from charter.execution.effects import CompensableWrite, DeferredEffect, RunEffects, Settlement
from charter.execution.kill_switch import ActiveKill, KillSwitchView
from charter.execution.stages.allowlist import AllowlistStage
from charter.execution.stages.approval import ApprovalStage
from charter.execution.stages.arguments import ArgumentsStage
from charter.execution.stages.base import GuardStage
from charter.execution.stages.budget import BudgetStage
from charter.execution.stages.execute import execute
from charter.execution.stages.kill_switch import KillSwitchStage
from charter.execution.stages.policy import PolicyStage
from charter.identity.principal import Environment, Principal
from charter.identity.secrets import (
    ChainSecretProvider,
    Redactor,
)
from charter.policy.budget import BudgetLedger, BudgetLimits
from charter.policy.cedar_engine import CedarEngine
from charter.policy.taint import ProvenanceTracker

__all__ = ["Run", "RunServices"]

_GUARDS: tuple[GuardStage, ...] = (
    KillSwitchStage(),
    AllowlistStage(),
    ArgumentsStage(),
    BudgetStage(),
    PolicyStage(),
)
# A dry decision (``Run.decide``) judges the charter alone: no kill switch.
_DRY_GUARDS: tuple[GuardStage, ...] = _GUARDS[1:]
_APPROVAL = ApprovalStage()
_NOT_FILED = "this run cannot wait for a decision, so no request was filed"

_OUTCOME_BY_STAGE: dict[Stage, ToolCallOutcome] = {
    Stage.KILL_SWITCH: "killed",
    Stage.BUDGET: "budget_exceeded",
}


@dataclass(slots=True)
class RunServices:
    """What runs share within a process: events, secrets, kill switches, grants, time."""

    bus: EventBus
    secrets: ChainSecretProvider
    redactor: Redactor
    kill_switches: KillSwitchView
    grants: ApprovalGrants
    inbox: ApprovalInbox
    clock: Clock
    record_content: bool = False  # traces record prompts and results (CHARTER_TRACE_CONTENT)


class Run:
    """One governed execution of a charter for one principal.

    Create it with ``Run.start``; call tools with ``await run.call_tool(name, arguments)``.
    """

    def __init__(
        self,
        *,
        charter: Charter,
        principal: Principal,
        environment: Environment,
        services: RunServices,
        engine: CedarEngine,
        model_name: str,
        resources: Sequence[object] = (),
        run_id: str | None = None,
    ) -> None:
        self.id = run_id or new_id("run")
        self.charter = charter
        self.principal = principal.for_agent(charter.name)
        self.environment = environment
        self.services = services
        self.engine = engine
        self.resources = tuple(resources)
        budgets = charter.spec.budgets
        self.ledger = BudgetLedger(
            BudgetLimits(
                max_total_tokens=budgets.max_total_tokens,
                max_tool_calls=budgets.max_tool_calls,
                max_usd=budgets.max_usd_per_run,
                overall_seconds=budgets.timeouts.overall_seconds,
            ),
            services.clock,
        )
        # The charter is trusted input: its prompt, allowed domains, templates, tool schemas.
        self.provenance = ProvenanceTracker(baseline=(charter.content,))
        self.principal_context: dict[str, Any] = {
            "user": self.principal.user,
            "tenant": self.principal.tenant,
            "service_principal": self.principal.service_principal,
            "roles": list(self.principal.roles),
        }
        self.identity = RunIdentity(
            run_id=self.id,
            charter_name=charter.name,
            charter_sha256=charter.content_sha256,
            tenant=self.principal.tenant,
            user=self.principal.user,
            service_principal=self.principal.service_principal,
            roles=self.principal.roles,
            environment=environment,
            model=model_name,
            prompt_sha256=charter.prompt_sha256,
            # Derived from the run id, so a durable run recovered in another process keeps it.
            trace_id=sha256_hex(self.id)[:32],
        )
        self.results: list[ToolResult] = []
        self.effects = RunEffects()
        self._step = 0
        # Model calls sent, answered or not (the agent loop counts them; see run_agent).
        self.model_calls = 0
        # Whether anything will act on an approval decision for this run: a runner that waits
        # for it (durable execution), or host code that retries a call once it is approved.
        # Only then does a call that needs approval file a request in the inbox. Whoever
        # drives the run sets it: the agent loop copies its runner's ``Steps.can_wait``.
        self.can_wait = True

    def snapshot(self) -> dict[str, Any]:
        """Everything a run has accumulated, as plain JSON data, between calls.

        A durable run (DBOS) returns this from each step and restores it after: a step
        replayed from its recorded output then leaves the run exactly as running it did.
        """
        return {
            "step": self._step,
            "model_calls": self.model_calls,
            "ledger": self.ledger.snapshot(),
            "provenance": self.provenance.snapshot(),
            "effects": self.effects.snapshot(),
            "results": [result.as_dict() for result in self.results],
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Become exactly the run ``snapshot`` was taken of (see ``snapshot``)."""
        self._step = int(snapshot["step"])
        # Not kept before unanswered calls were counted: the agent loop then counts replies.
        self.model_calls = int(snapshot.get("model_calls", 0))
        self.ledger.restore(snapshot["ledger"])
        self.provenance.restore(snapshot["provenance"])
        self.effects.restore(snapshot["effects"], self._validated)
        self.results = [ToolResult.from_dict(result) for result in snapshot["results"]]

    def _validated(self, tool: str, canonical: dict[str, Any]) -> dict[str, Any]:
        # As the arguments stage validated them: canonical JSON is JSON (a datetime is text).
        model = self.charter.tools[tool].parse_arguments(json.dumps(canonical))
        return {name: getattr(model, name) for name in type(model).model_fields}

    def redact(self, value: Any) -> Any:
        return self.services.redactor.redact(value)

    def redact_text(self, text: str) -> str:
        return self.services.redactor.redact_text(text)

    async def invoke(self, name: str, arguments: Any) -> Any:
        """Call a tool the way host code and SDK adapters want: its value, or an exception.

        A deferred call returns None (accepted; it runs when the run settles its effects).

        Raises:
            ApprovalRequired, PermissionDenied, BudgetExceeded, ToolTimeout, ToolFailed: the
                governed outcome, after it is audited (see ``ToolResult.unwrap``); a call
                that could not run for a reason the operator must fix is
                ``ToolMisconfigured``, a ``ToolFailed`` that is also a ``UserError``.
            KillSignal: the kill switch is active for this run.
        """
        result = await self.call_tool(name, arguments)
        return result.unwrap()

    async def call_tool(
        self, name: str, arguments: Any, *, call_id: str | None = None
    ) -> ToolResult:
        """Take one tool call through the whole pipeline. Never raises for governed outcomes.

        Raises:
            KillSignal: the kill switch is active for this run (after the refusal is audited).
        """
        clock = self.services.clock
        call = PendingCall(
            self.redact_text(_shown_name(name)),  # a name is model text like any other
            arguments,
            call_id or new_id("call"),
            os.urandom(8).hex(),
            clock.monotonic(),
        )
        self._step += 1
        # Read from the call from here on, not from the run: another call of this run may
        # take the next step while this one's tool is running.
        call.step = self._step
        call.event_id = f"{self.id}/call/{call.step}"
        call.idempotency_key = f"{self.id}:{call.step}"
        decision = self._guard(call, _GUARDS)
        if decision.verdict is Verdict.DENY:
            return self._refuse(call, decision)
        # Require-approval goes on to the approval stage (a grant for these exact arguments
        # turns it into allow).
        decision = _APPROVAL.check(self, call, decision)
        if decision.verdict is Verdict.REQUIRE_APPROVAL:
            return self._refuse(call, decision)
        key = call.idempotency_key
        assert call.reservation is not None
        assert call.decl is not None
        if call.decl.defer == "until_run_succeeds":
            return self._defer(call, decision, key)
        execution = await execute(self, call, key)
        fee = Decimal(0)
        if execution.started:
            fee = call.reservation.usd
            self.ledger.settle(call.reservation, tokens=0, usd=fee)
        else:  # e.g. its credential could not be resolved: nothing ran, nothing to charge
            self.ledger.release(call.reservation)
        if execution.outcome == "executed":
            decl = call.decl
            if decl.effect == "write" and decl.compensate is not None:
                self.effects.writes.append(
                    CompensableWrite(
                        call.step,
                        call.call_id,
                        call.tool,
                        decl.compensate,
                        call.canonical_arguments,
                        key,
                    )
                )
            value = self.redact(execution.value)
            fields = decl.untrusted_fields
            # A field-level output is remembered value by value; one that cannot be split
            # (not JSON-like data, too large) falls through to untrusted as a whole.
            if fields is None or not self.provenance.add_fields(value, fields, _MAX_FIELD_TEXT):
                untrusted = decl.output_untrusted
                remember = (
                    self.provenance.add_untrusted if untrusted else self.provenance.add_trusted
                )
                remember(execution.text)
                # The text is JSON, where quotes, newlines and backslashes are escaped; a value
                # copied verbatim from the output must match too, so remember its strings as is.
                for text in _strings_in(value, _MAX_REMEMBERED):
                    remember(text)
        final = decision
        if execution.outcome != "executed":
            final = Decision(Verdict.ALLOW, decision.reason, decision.rule_id, Stage.EXECUTE)
        result = self._finish(call, final, execution.outcome, execution.text, execution.value,
                              failure=execution.failure, note=execution.note,
                              fee=fee)  # fmt: skip
        if execution.cancelled is not None:
            # The host cancelled the task running the run while the tool ran: recorded and
            # charged above, as it had started; the cancellation is the host's, so it goes on.
            raise execution.cancelled
        if execution.kill is not None:
            # A kill stopped the running tool (outcome interrupted; the policy had allowed
            # it, the detail names the kill): recorded and charged, as it had started, and
            # then the signal goes on up and ends the run.
            raise KillSignal(execution.kill.scope, execution.kill.reason)
        return result

    def decide(self, name: str, arguments: Any) -> Decision:
        """What ``call_tool`` would decide for this call, without acting on it (a dry run).

        Runs the allowlist, arguments, budget and policy stages and returns the first deny,
        else the policy's verdict: a require-approval verdict is the answer, as no grant is
        consulted and no approval request filed. Nothing executes, no event is published and
        the step counter does not move. The kill switch is not consulted: a dry decision
        judges the charter, not today's switches. The run's budget is used as if the call
        went ahead: an allowed call commits its tool-call slot and fee (so later decisions
        see them), a refused one keeps its slot and gives its fee back, as in ``call_tool``.
        """
        call = PendingCall(
            self.redact_text(_shown_name(name)), arguments, "", "", self.services.clock.monotonic()
        )
        decision = self._guard(call, _DRY_GUARDS)
        if call.reservation is not None:
            if decision.verdict is Verdict.ALLOW:
                self.ledger.settle(call.reservation, tokens=0, usd=call.reservation.usd)
            else:
                self.ledger.release(call.reservation)
        return replace(decision, reason=self.redact_text(decision.reason))

    def _guard(self, call: PendingCall, guards: tuple[GuardStage, ...]) -> Decision:
        """The guard stages in order: the first deny, else the policy stage's decision."""
        decision: Decision | None = None
        for guard in guards:
            decision = guard.check(self, call)
            if decision is not None and decision.verdict is Verdict.DENY:
                return decision
        assert decision is not None  # the policy stage always decides
        return decision

    def _defer(self, call: PendingCall, decision: Decision, key: str) -> ToolResult:
        """Queue a decided call until the run succeeds (see ``execution/effects.py``)."""
        assert call.reservation is not None
        # Its fee is committed now: a budget must cover what the run has decided to spend.
        self.ledger.settle(call.reservation, tokens=0, usd=call.reservation.usd)
        self.effects.deferred.append(
            DeferredEffect(
                call.step,
                call.call_id,
                call.tool,
                call.arguments,
                call.canonical_arguments,
                call.arguments_sha256,
                key,
                decision,
            )
        )
        # A result, not an error: the call was accepted and will happen.
        text = json.dumps({"status": "queued", "detail": f"{call.tool} runs once the whole "
                           "run has succeeded"})  # fmt: skip
        return self._finish(call, decision, "deferred", text, None, fee=call.reservation.usd)

    async def settle_effects(self, *, succeeded: bool) -> Settlement:
        """Send the outbox (run succeeded) or discard it and compensate writes (run did not).

        Returns what stopped a send, if anything did (a kill, or a deferred effect that
        failed): then the rest of the outbox is discarded and the writes are compensated.
        """
        deferred, writes = self.effects.take()
        failure: str | None = None
        kill: ActiveKill | None = None
        for index, effect in enumerate(deferred):
            if not succeeded or failure is not None:
                self._discard(effect, failure)
                continue
            try:
                problem, kill = await self._send(effect)
            except asyncio.CancelledError:
                # The host cancelled the run while it sent (that send is recorded): what it
                # had not sent yet never will be, and the record says so before it goes on.
                for rest in deferred[index + 1 :]:
                    self._discard(rest, "the run was cancelled by its host while it settled")
                raise
            if kill is not None:
                failure = (
                    f"the kill switch ({kill.scope}) stopped deferred {effect.tool} "
                    f"#{effect.step}: {kill.reason}"
                )
            elif problem is not None:
                failure = f"deferred {effect.tool} #{effect.step} failed: {problem}"
        if not succeeded or failure is not None:
            for write in reversed(writes):
                await self._compensate(write)
        return Settlement(failure, kill)

    async def _send(self, effect: DeferredEffect) -> tuple[str | None, ActiveKill | None]:
        """Run one deferred effect: (None, None) when it executed, else what went wrong and,
        when a kill stopped it (refused or interrupted it), the kill."""
        call = self._effect_call(effect.tool, effect.call_id, "send", effect.step)
        call.arguments = effect.arguments
        call.canonical_arguments = effect.canonical_arguments
        call.arguments_sha256 = effect.arguments_sha256
        # The run decided to send it before it ended; a kill pulled since still stops it.
        killed = _GUARDS[0].check(self, call)
        if killed is not None:
            killed = replace(killed, reason=self.redact_text(killed.reason))
            text = f"DENIED: {killed.reason} [rule {killed.rule_id}]"
            self._finish(call, killed, "killed", text, None)
            return text, _kill_of(killed)
        execution = await execute(self, call, effect.idempotency_key, within_run_time=False)
        decision = Decision(
            Verdict.ALLOW,
            f"sent after the run succeeded: {effect.decision.reason}",
            effect.decision.rule_id,
            Stage.EXECUTE,
        )
        self._finish(call, decision, execution.outcome, execution.text, execution.value,
                     failure=execution.failure, note=execution.note)  # fmt: skip
        if execution.cancelled is not None:
            raise execution.cancelled  # recorded; the host's cancellation goes on up
        if execution.outcome == "executed":
            return None, None
        return execution.text, execution.kill

    def _discard(self, effect: DeferredEffect, failure: str | None) -> None:
        call = self._effect_call(effect.tool, effect.call_id, "discard", effect.step)
        call.canonical_arguments = effect.canonical_arguments
        call.arguments_sha256 = effect.arguments_sha256
        why = failure or "the run did not succeed"
        decision = Decision.deny(Stage.EXECUTE, f"discarded: {why}", "effects.discard")
        self._finish(call, decision, "discarded", f"DISCARDED: {why}", None)

    async def _compensate(self, write: CompensableWrite) -> None:
        call = self._effect_call(
            write.compensation, f"{write.call_id}:compensate", "compensate", write.step
        )
        assert call.spec is not None
        accepted = call.spec.json_schema.get("properties", {})
        call.raw_arguments = {k: v for k, v in write.arguments.items() if k in accepted}
        rule = f"tools.{write.tool}.compensate"
        invalid = ArgumentsStage().check(self, call)
        if invalid is not None:
            # Named like every compensation (the write it takes back); why, in the text.
            decision = replace(invalid, reason=f"compensating {write.tool} #{write.step}",
                               rule_id=rule, stage=Stage.EXECUTE)  # fmt: skip
            self._finish(call, decision, "error", invalid.reason, None)
            return
        # Not interruptible: taking a write back is what a kill wants, even one in force.
        execution = await execute(
            self,
            call,
            f"{write.idempotency_key}:compensate",
            within_run_time=False,
            interruptible=False,
        )
        decision = Decision(
            # Named by the run's step (as `runs show` numbers calls), never by the model's
            # call id, which it may reuse.
            Verdict.ALLOW,
            f"compensating {write.tool} #{write.step}",
            rule,
            Stage.EXECUTE,
        )
        self._finish(call, decision, execution.outcome, execution.text, execution.value,
                     failure=execution.failure)  # fmt: skip
        if execution.cancelled is not None:
            raise execution.cancelled  # recorded; the host's cancellation goes on up

    def _effect_call(self, tool: str, call_id: str, kind: str, step: int) -> PendingCall:
        clock = self.services.clock
        call = PendingCall(tool, {}, call_id, os.urandom(8).hex(), clock.monotonic())
        # Named by the step of the call it settles: unique within the run and the same when
        # a durable run settles again after a crash. Never by ``call_id``: the model wrote
        # it, may reuse it, and a reused one would make the audit log drop the second record
        # as a duplicate of the first.
        call.event_id = f"{self.id}/{kind}/{step}"
        call.spec = self.charter.tools[tool]
        call.decl = self.charter.spec.tools[tool]
        return call

    def _refuse(self, call: PendingCall, decision: Decision) -> ToolResult:
        # Reasons can quote what the model sent (an unknown argument's name, say).
        decision = replace(decision, reason=self.redact_text(decision.reason))
        if call.reservation is not None:
            self.ledger.release(call.reservation)
        if decision.verdict is Verdict.REQUIRE_APPROVAL and not self.can_wait:
            # Nothing would act on a decision (see ``can_wait``): a request would wait in the
            # inbox forever. The call, its verdict and its rule are audited all the same.
            text = f"APPROVAL REQUIRED: {decision.reason}; {_NOT_FILED}"
            return self._finish(call, decision, "approval_required", text, None)
        approval: ApprovalRequest | None = None
        if decision.verdict is Verdict.REQUIRE_APPROVAL:
            outcome: ToolCallOutcome = "approval_required"
            approval = ApprovalRequest(
                # Derived, not random: a step re-run after a crash files the same request.
                id=f"apr_{sha256_hex(f'{self.id}:{call.step}')[:32]}",
                run_id=self.id,
                tenant=self.principal.tenant,
                requested_by=self.principal.user,
                tool=call.tool,
                arguments=self.redact(call.canonical_arguments),
                arguments_sha256=call.arguments_sha256,
                reason=decision.reason,
                rule_id=decision.rule_id,
                requested_at=self.services.clock.now(),
            )
            filed = self.services.inbox.request(approval, charter_name=self.charter.name)
            text = f"APPROVAL REQUIRED: {decision.reason} (request {filed.id})"
            if filed.id != approval.id:
                # The same call of this run already waits for a decision: one request, so
                # the human decides it once and the run can use it once.
                approval = replace(approval, id=filed.id)
                text += "; the same call is already waiting for this decision"
        else:
            outcome = _OUTCOME_BY_STAGE.get(decision.stage, "denied")
            text = f"DENIED: {decision.reason} [rule {decision.rule_id}]"
        result = self._finish(call, decision, outcome, text, None, approval)
        if outcome == "killed":
            kill = _kill_of(decision)
            raise KillSignal(kill.scope, kill.reason)
        return result

    def _finish(
        self,
        call: PendingCall,
        decision: Decision,
        outcome: ToolCallOutcome,
        text: str,
        value: Any,
        approval: ApprovalRequest | None = None,
        *,
        failure: FailureKind | None = None,
        note: str = "",
        fee: Decimal = Decimal(0),  # what the ledger charged for it (ToolResult.fee_usd)
    ) -> ToolResult:
        clock = self.services.clock
        duration_ms = (clock.monotonic() - call.started) * 1000
        # A validated call (its hash is set) shows its canonical arguments, even when empty.
        arguments = (
            call.canonical_arguments if call.arguments_sha256 else _shown_raw(call.raw_arguments)
        )
        redacted = self.redact(arguments)
        self.services.bus.publish(
            ToolCallFinished(
                run=self.identity,
                at=clock.now(),
                call_id=call.call_id,
                span_id=call.span_id,
                tool=call.tool,
                arguments=redacted,
                arguments_sha256=call.arguments_sha256,
                decision=decision,
                outcome=outcome,
                duration_ms=duration_ms,
                # An executed call's detail is a remark (a kill it outran), its result aside.
                detail=text if outcome != "executed" else note,
                # The request this call filed, or the approval it ran under.
                approval_request_id=approval.id if approval else call.approval_id,
                # One fact per id: a step re-run after a crash that ends the same way is not
                # recorded twice, and one that ends differently (an approval granted while
                # the worker was down) is recorded too rather than lost.
                event_id=f"{call.event_id}/{outcome}",
                result=text if outcome == "executed" else "",
                fee_usd=fee,
            )
        )
        result = ToolResult(
            call_id=call.call_id,
            tool=call.tool,
            decision=decision,
            outcome=outcome,
            model_text=text,
            value=value,
            duration_ms=duration_ms,
            arguments=redacted,
            approval=approval,
            failure=failure,
            untrusted_read=self.provenance.untrusted_read,
            fee_usd=fee,
        )
        self.results.append(result)
        return result


_MAX_REMEMBERED = 65_536  # characters of a tool's strings kept for provenance (as the model sees)
# A field-level output keeps about what an untrusted one does: its text and its strings.
_MAX_FIELD_TEXT = 2 * _MAX_REMEMBERED


def _kill_of(decision: Decision) -> ActiveKill:
    """The kill a kill switch stage's refusal stands for: its scope, and the operator's
    reason, not the decision's sentence around it."""
    scope = decision.rule_id.removeprefix("kill-switch:")
    return ActiveKill(scope, decision.reason.removeprefix(f"kill switch active ({scope}): "))


def _strings_in(value: Any, budget: int) -> list[str]:
    """The strings inside a JSON-like value (keys too), up to ``budget`` characters."""
    found: list[str] = []
    stack = [value]
    while stack and budget > 0:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item[:budget])
            budget -= len(item)
        elif isinstance(item, dict):
            stack.extend(reversed([v for pair in item.items() for v in pair]))
        elif isinstance(item, list | tuple):
            stack.extend(reversed(item))
    return found


def _shown_name(name: Any) -> str:
    """The tool name as recorded. A name that could not be declared is shown as its repr.

    Declared names are short identifiers; anything else (not a str, not UTF-8, very long)
    becomes a bounded repr, which starts with a quote or ``<`` and so never equals a
    declared name, and which the audit log and traces can store.
    """
    if isinstance(name, str):
        if len(name) <= 128 and name.isprintable() and name.isascii():
            return name
        return _bounded(repr(name), 128)
    return _bounded(f"<{type(name).__name__}: {_safe_repr(name)}>", 128)


def _shown_raw(raw: Any) -> dict[str, Any]:
    """Arguments that failed validation, kept for the audit log but bounded in size."""
    return {"_unvalidated": _bounded(_safe_repr(raw), 2048)}


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # too deep (RecursionError), too many digits (ValueError), hostile
        return f"<{type(value).__name__} that cannot be shown>"


def _bounded(text: str, limit: int) -> str:
    if len(text) > limit:
        return text[:limit] + f"... [{len(text) - limit} more chars]"
    return text
