"""The agent loop through a ``Steps`` runner: data in, data out, replayable, resumable."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from charter_examples.support_desk.desk import SupportDesk
from charter_examples.support_desk.model import GullibleSupportModel
from charter_examples.support_desk.scenarios import DEMO_TICKETS

from charter import Principal, Runtime
from charter.execution.agent import RunResult, run_agent
from charter.execution.approvals import ApprovalRequest, InMemoryGrants
from charter.execution.run import Run
from charter.execution.steps import ApprovalOutcome, Work

from .harness import example_charter


@dataclass
class RecordingSteps:
    """Runs each unit, then round-trips its output and the run's state through JSON, as a
    durable runner records them; keeps the records for a replay."""

    can_wait = True  # it stands for the durable runner: approval requests are filed

    records: list[tuple[str, str]] = field(default_factory=list)
    decision: ApprovalOutcome | None = None
    grants: InMemoryGrants | None = None

    async def step(self, run: Run, name: str, work: Work) -> dict[str, Any]:
        out = await work()
        record = json.dumps({"out": out, "snapshot": run.snapshot()})
        self.records.append((name, record))
        stored = json.loads(record)
        run.restore(stored["snapshot"])
        return dict(stored["out"])

    async def await_approval(self, run: Run, request: ApprovalRequest) -> ApprovalOutcome | None:
        if self.decision is not None and self.decision.verdict == "approve":
            assert self.grants is not None
            self.grants.grant(request, "apr-granted")
        return self.decision


@dataclass
class ReplayingSteps:
    """Returns recorded outputs without running anything: recovery after a crash."""

    can_wait = True

    records: list[tuple[str, str]]
    decision: ApprovalOutcome | None = None

    async def step(self, run: Run, name: str, work: Work) -> dict[str, Any]:
        recorded_name, record = self.records.pop(0)
        assert recorded_name == name  # the loop is deterministic given the records
        stored = json.loads(record)
        run.restore(stored["snapshot"])
        return dict(stored["out"])

    async def await_approval(self, run: Run, request: ApprovalRequest) -> ApprovalOutcome | None:
        return self.decision


def start(runtime: Runtime, desk: SupportDesk) -> Run:
    return runtime.start_run(
        example_charter(), Principal("alice", "acme", roles=("support",)),
        environment="prod", resources=(desk,), model_name="scripted:gullible",
    )  # fmt: skip


def drive(runtime: Runtime, run: Run, text: str, steps: Any) -> RunResult:
    price = runtime.price_for(run.charter)
    return asyncio.run(run_agent(run, GullibleSupportModel(), text, price=price, steps=steps))


@pytest.mark.parametrize("case", DEMO_TICKETS, ids=lambda c: c.ticket_id)
def test_every_demo_ticket_ends_the_same_through_recorded_steps(
    runtime: Runtime, case: Any
) -> None:
    desk = SupportDesk.default()
    result = drive(runtime, start(runtime, desk), case.input, RecordingSteps())
    assert result.outcome == case.expected_outcome


def test_a_replay_from_the_records_reaches_the_same_end_and_does_nothing(
    runtime: Runtime,
) -> None:
    desk = SupportDesk.default()
    recording = RecordingSteps()
    first = drive(runtime, start(runtime, desk), "Please handle ticket T-1001.", recording)
    assert first.outcome == "succeeded"
    assert len(desk.refunds) == 1
    assert len(desk.outbox) == 1
    before = desk.snapshot()

    replayed = drive(runtime, start(runtime, desk), "Please handle ticket T-1001.",
                     ReplayingSteps(list(recording.records)))  # fmt: skip

    assert desk.snapshot() == before  # no refund, no e-mail, no write happened twice
    assert replayed.outcome == first.outcome
    assert [(c.tool, c.outcome) for c in replayed.tool_calls] == [
        (c.tool, c.outcome) for c in first.tool_calls
    ]
    assert replayed.total_tokens == first.total_tokens
    assert replayed.cost_usd == first.cost_usd


@pytest.mark.parametrize(
    ("verdict", "outcome", "rule"),
    [
        ("terminate", "denied", "approval.terminate"),
        ("escalate", "escalated", "approval.escalate"),
    ],
)
def test_a_decision_that_ends_the_run(
    runtime: Runtime, verdict: Any, outcome: str, rule: str
) -> None:
    desk = SupportDesk.default()
    steps = RecordingSteps(decision=ApprovalOutcome(verdict, "lead", "not this one"))
    result = drive(runtime, start(runtime, desk), "Please handle ticket T-1002.", steps)
    assert result.outcome == outcome
    assert result.decision is not None
    assert result.decision.rule_id == rule
    assert "lead" in result.reason
    assert desk.refunds == []
    assert desk.outbox == []  # the run did not succeed: nothing deferred was sent


def test_approve_runs_the_call_and_the_run_succeeds(runtime: Runtime) -> None:
    grants = runtime.grants
    assert isinstance(grants, InMemoryGrants)
    desk = SupportDesk.default()
    steps = RecordingSteps(decision=ApprovalOutcome("approve", "lead", ""), grants=grants)
    result = drive(runtime, start(runtime, desk), "Please handle ticket T-1002.", steps)
    assert result.outcome == "succeeded"
    [refund] = desk.refunds
    assert refund.amount_usd == 350
    refunds = [c for c in result.tool_calls if c.tool == "issue_refund"]
    assert [c.outcome for c in refunds] == ["approval_required", "executed"]
    assert refunds[1].decision.stage.value == "approval"
    assert len(desk.outbox) == 1  # the confirmation, sent once the run succeeded


@pytest.mark.parametrize("verdict", ["reject", "expire"])
def test_reject_or_expiry_is_a_denial_the_model_is_told_about(
    runtime: Runtime, verdict: Any
) -> None:
    desk = SupportDesk.default()
    steps = RecordingSteps(decision=ApprovalOutcome(verdict, "lead", "too much"))
    result = drive(runtime, start(runtime, desk), "Please handle ticket T-1002.", steps)
    assert desk.refunds == []
    # The example charter says on_deny: stop, so a human's "no" ends the run as denied.
    assert result.outcome == "denied"
    assert result.decision is not None
    assert result.decision.rule_id == f"approval.{verdict}"
    told = [m.content for m in result.messages if m.role == "tool" and "REJECTED" in m.content]
    assert len(told) == 1
    assert ("expired" in told[0]) == (verdict == "expire")
    assert desk.outbox == []


@dataclass
class TwiceSteps:
    """Runs every step twice from the same starting state, as DBOS does with a step that was
    running when its process died (at least once)."""

    can_wait = False

    async def step(self, run: Run, name: str, work: Work) -> dict[str, Any]:
        before = run.snapshot()
        await work()
        run.restore(before)
        return await work()

    async def await_approval(self, run: Run, request: ApprovalRequest) -> ApprovalOutcome | None:
        return None


def test_a_step_run_twice_is_audited_once(runtime: Runtime) -> None:
    desk = SupportDesk.default()
    result = drive(runtime, start(runtime, desk), "Please handle ticket T-1001.", TwiceSteps())
    assert result.outcome == "succeeded"
    records = [r.entry for r in runtime.audit.records("acme") if r.entry.run_id == result.run_id]
    event_ids = [r.event_id for r in records]
    assert len(event_ids) == len(set(event_ids))  # nothing recorded twice
    assert [r.kind for r in records].count("run_started") == 1
    assert [r.kind for r in records].count("run_finished") == 1
    # The desk dedupes by idempotency key, so the refund and e-mail happened once too.
    assert len(desk.refunds) == 1
    assert len(desk.outbox) == 1
    assert runtime.audit.verify().ok
