"""A run's state survives a round trip through plain JSON, as a durable run needs."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
from charter_examples.support_desk.desk import SupportDesk

from charter import Runtime
from charter.execution.approvals import InMemoryGrants
from charter.testing import FakeClock

from .harness import call, start_example_run


def test_snapshot_restores_budgets_taint_effects_and_results(runtime: Runtime) -> None:
    desk = SupportDesk.default()
    run = start_example_run(runtime, desk=desk)
    call(run, "read_inbox", {"ticket_id": "T-1005"})  # untrusted text is now remembered
    call(run, "update_ticket", {"ticket_id": "T-1001", "status": "pending"})  # compensable
    call(
        run,
        "send_email",
        {"to": "dana@example.com", "template": "ticket_update", "ticket_id": "T-1001"},
    )  # fmt: skip  (deferred)
    call(run, "issue_refund", {"ticket_id": "T-1001", "amount_usd": "45.5",
                               "account": "acct-C-01"})  # fmt: skip
    snapshot = json.loads(json.dumps(run.snapshot()))  # as DBOS stores a step's output

    twin = start_example_run(runtime, desk=desk)
    twin.restore(snapshot)

    assert twin.snapshot() == snapshot
    assert twin.ledger.totals().tool_calls == 4
    assert twin.ledger.totals().cost_usd == Decimal("0.01")  # the refund's fee
    assert [r.outcome for r in twin.results] == ["executed", "executed", "deferred", "executed"]
    tainted = twin.provenance.report({"account": "ACCT-EVIL-9"})
    assert tainted.tainted == {"account": True}
    # The restored outbox still sends, exactly once, with typed arguments.
    assert asyncio.run(twin.settle_effects(succeeded=True)).failure is None
    assert [e.to for e in desk.outbox] == ["dana@example.com"]


def test_elapsed_time_continues_from_the_snapshot_not_from_the_pause(runtime: Runtime) -> None:
    clock = runtime.services.clock
    assert isinstance(clock, FakeClock)
    run = start_example_run(runtime)
    clock.advance(10)
    snapshot = run.snapshot()
    clock.advance(3600)  # an hour waiting for an approver
    run.restore(snapshot)
    assert run.ledger.totals().elapsed_seconds == pytest.approx(10)


def test_a_snapshot_cannot_be_taken_while_a_call_holds_a_reservation(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    run.ledger.reserve(tool_calls=1, usd=Decimal("0.01"))
    with pytest.raises(RuntimeError, match="reservation"):
        run.snapshot()


def test_a_call_rerun_from_its_snapshot_reuses_the_approval_it_used(runtime: Runtime) -> None:
    # A durable step killed after using its approval, before recording the step, runs the
    # same call again from the same snapshot: it must find its approval, not park again.
    desk = SupportDesk.default()
    run = start_example_run(runtime, desk=desk, environment="prod")
    refund = {"ticket_id": "T-1002", "amount_usd": "350", "account": "acct-C-02"}
    asked = call(run, "issue_refund", refund)
    assert asked.outcome == "approval_required"
    assert asked.approval is not None
    assert isinstance(runtime.grants, InMemoryGrants)  # the store has its own test of this
    runtime.grants.grant(asked.approval, "apr_granted")
    before = json.loads(json.dumps(run.snapshot()))

    first = call(run, "issue_refund", refund)
    run.restore(before)
    again = call(run, "issue_refund", refund)

    assert (first.outcome, again.outcome) == ("executed", "executed")
    assert "apr_granted" in first.decision.reason
    executed = [r.entry for r in runtime.audit.records("acme") if r.entry.outcome == "executed"]
    assert executed[-1].approval_request_id == "apr_granted"  # the record names its approval
    assert first.decision.reason == again.decision.reason  # the same approval, named
    assert len(desk.refunds) == 1  # the idempotency key made the second call a no-op
    other = call(run, "issue_refund", refund)  # a new call: the approval is spent
    assert other.outcome == "approval_required"
