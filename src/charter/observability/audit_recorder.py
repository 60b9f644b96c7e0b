"""Subscribes the audit log to run events: every decision becomes an audit record."""

from __future__ import annotations

from dataclasses import replace

from charter.core.events import (
    ApprovalDecided,
    Event,
    GovernanceChanged,
    KillSwitchChanged,
    RunFinished,
    RunIdentity,
    RunStarted,
    ToolCallFinished,
)
from charter.observability.audit import AuditEntry, AuditLog
from charter.observability.audit_record import fee_text

__all__ = ["AuditRecorder"]


# Kills of a charter or of everything belong to no tenant; they join this chain.
GOVERNANCE_TENANT = "_governance"


class AuditRecorder:
    """Turns run events, approval decisions and kill-switch changes into audit entries.

    Model calls are not decisions, so they go to traces, not here.
    """

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    def __call__(self, event: Event) -> None:
        if isinstance(event, ApprovalDecided):
            actor = _actor(
                event.tenant, event.decided_by, run_id=event.run_id, charter_name=event.charter_name
            )
            self._log.append(_entry(
                actor, "approval_decision", event, tool=event.tool,
                arguments_sha256=event.arguments_sha256, verdict=event.verdict,
                reason=event.reason, rule_id=f"approval.{event.verdict}",
                outcome=event.verdict, detail=f"approval request {event.request_id}",
                approval_request_id=event.request_id,
            ))  # fmt: skip
            return
        if isinstance(event, KillSwitchChanged):
            kind, _, value = event.scope.partition(":")
            actor = _actor(
                value if kind == "tenant" else GOVERNANCE_TENANT,
                event.by,
                charter_name=value if kind == "charter" else "",
            )
            self._log.append(_entry(
                actor, "kill_switch", event, reason=event.reason,
                rule_id=f"kill-switch:{event.scope}",
                outcome=event.action, detail=f"scope {event.scope}",
            ))  # fmt: skip
            return
        if isinstance(event, GovernanceChanged):
            actor = _actor(GOVERNANCE_TENANT, event.actor, charter_name=event.charter_name)
            actor = replace(actor, charter_sha256=event.release_id, environment=event.environment)
            self._log.append(_entry(
                actor, "governance", event, reason=event.reason,
                rule_id=f"governance:{event.action}", outcome=event.action, detail=event.detail,
            ))  # fmt: skip
            return
        if isinstance(event, ToolCallFinished):
            d = event.decision
            self._log.append(
                _entry(
                    event.run,
                    "tool_call",
                    event,
                    tool=event.tool,
                    arguments=event.arguments,
                    arguments_sha256=event.arguments_sha256 or None,
                    verdict=d.verdict.value,
                    reason=d.reason,
                    rule_id=d.rule_id,
                    stage=d.stage.value,
                    outcome=event.outcome,
                    span_id=event.span_id,
                    detail=event.detail,
                    approval_request_id=event.approval_request_id,
                    fee_usd=None if event.fee_usd is None else fee_text(event.fee_usd),
                )
            )
        elif isinstance(event, RunStarted):
            self._log.append(
                _entry(
                    event.run,
                    "run_started",
                    event,
                    reason="run started",
                    outcome="started",
                    detail=f"input sha256 {event.input_sha256}",
                )
            )
        elif isinstance(event, RunFinished):
            final = event.decision
            self._log.append(
                _entry(
                    event.run,
                    "run_finished",
                    event,
                    verdict=final.verdict.value if final else None,
                    reason=event.reason,
                    rule_id=final.rule_id if final else None,
                    stage=final.stage.value if final else None,
                    outcome=event.outcome,
                    detail=", ".join(f"{k}={v}" for k, v in sorted(event.totals.items())),
                )
            )


def _entry(
    run: RunIdentity,
    kind: str,
    event: Event,
    *,
    tool: str | None = None,
    arguments: dict[str, object] | None = None,
    arguments_sha256: str | None = None,
    verdict: str | None = None,
    reason: str,
    rule_id: str | None = None,
    stage: str | None = None,
    outcome: str,
    span_id: str = "",
    detail: str = "",
    approval_request_id: str | None = None,
    fee_usd: str | None = None,
) -> AuditEntry:
    return AuditEntry(
        kind=kind,  # type: ignore[arg-type]
        at=event.at,
        tenant=run.tenant,
        user=run.user,
        service_principal=run.service_principal,
        roles=run.roles,
        environment=run.environment,
        run_id=run.run_id,
        charter_name=run.charter_name,
        charter_sha256=run.charter_sha256,
        model=run.model,
        prompt_sha256=run.prompt_sha256,
        tool=tool,
        arguments=arguments,
        arguments_sha256=arguments_sha256,
        verdict=verdict,
        reason=reason,
        rule_id=rule_id,
        stage=stage,
        outcome=outcome,
        trace_id=run.trace_id,
        span_id=span_id,
        detail=detail,
        approval_request_id=approval_request_id,
        # A durable step that runs again after a crash re-publishes its event with the same
        # id; the audit log then returns the stored record instead of writing a second one.
        event_id=getattr(event, "event_id", "") or None,
        fee_usd=fee_usd,
    )


def _actor(tenant: str, user: str, *, run_id: str = "", charter_name: str = "") -> RunIdentity:
    """Who a governance action is recorded for: the human who took it, outside any run."""
    return RunIdentity(
        run_id=run_id,
        charter_name=charter_name,
        charter_sha256="",
        tenant=tenant,
        user=user,
        service_principal="",
        roles=(),
        environment="",
        model="",
        prompt_sha256="",
        trace_id="",
    )
