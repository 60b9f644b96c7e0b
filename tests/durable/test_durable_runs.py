"""Durable runs on DBOS: the same governance, and approvals as waits that survive."""

from __future__ import annotations

import asyncio

from charter.durable import DurableEngine, notify_decision
from tests.durable.support import spec


def test_a_durable_run_is_governed_like_any_other(engine: DurableEngine) -> None:
    result = asyncio.run(engine.run(spec("T-1001")))
    assert result["outcome"] == "succeeded"
    tools = [(c["tool"], c["outcome"]) for c in result["tool_calls"]]
    assert ("issue_refund", "executed") in tools
    assert ("send_email", "deferred") in tools
    assert ("send_email", "executed") in tools
    assert engine.runtime.audit.verify().ok


def test_injected_exfiltration_is_denied_in_a_durable_run_too(engine: DurableEngine) -> None:
    result = asyncio.run(engine.run(spec("T-1003", user="bob")))
    assert result["outcome"] == "denied"
    assert result["decision"]["rule_id"] == "constraints.send_email.to.domain_in"


def test_a_run_parked_for_approval_resumes_when_an_approver_decides(
    engine: DurableEngine,
) -> None:
    runtime = engine.runtime
    runtime.roles.grant("acme", "lead", "approver", by="admin")

    async def scenario() -> dict[str, object]:
        task = asyncio.create_task(engine.run(spec("T-1002"), run_id="run_parked_1"))
        request = None
        for _ in range(200):  # the run files its request, then waits durably
            pending = runtime.approvals.list(tenant="acme", status="pending")
            if pending:
                request = pending[0]
                break
            await asyncio.sleep(0.05)
        assert request is not None, "the run never asked for approval"
        assert request.run_id == "run_parked_1"
        assert not task.done()
        runtime.approvals.decide(request.id, "approve", by="lead", reason="checked the order")
        sent = notify_decision(
            runtime.settings,
            run_id=request.run_id,
            request_id=request.id,
            verdict="approve",
            by="lead",
            reason="checked the order",
        )
        assert sent
        return await asyncio.wait_for(task, 30)

    result = asyncio.run(scenario())
    assert result["outcome"] == "succeeded"
    refunds = [c for c in result["tool_calls"] if c["tool"] == "issue_refund"]
    assert [c["outcome"] for c in refunds] == ["approval_required", "executed"]
    assert refunds[1]["decision"]["stage"] == "approval"
    kinds = [(r.entry.kind, r.entry.outcome) for r in runtime.audit.records("acme")]
    assert ("approval_decision", "approve") in kinds
    assert runtime.audit.verify().ok


def test_a_decision_for_a_run_that_is_not_durable_reaches_no_one(
    engine: DurableEngine,
) -> None:
    assert not notify_decision(
        engine.runtime.settings,
        run_id="run_never_started",
        request_id="apr_x",
        verdict="approve",
        by="lead",
        reason="",
    )
