"""Stage 4 and the agent loop's budgets: calls, fees, wall time and model tokens fail closed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from charter_examples.support_desk.desk import SupportDesk

from charter.contract.loader import Charter
from charter.contract.tool import ToolContext, tool
from charter.core.events import Event, ToolCallFinished
from charter.execution.model import Message, ModelResponse, Usage
from charter.identity.principal import Principal
from charter.runtime import Runtime
from charter.testing import FakeClock, ScriptedModel, reply, tool_call
from tests.execution.harness import (
    call,
    example_charter,
    make_runtime,
    start_example_run,
    tool_records,
    write_charter,
)

TICKET = {"ticket_id": "T-1001"}
REFUND = {"ticket_id": "T-1001", "amount_usd": "45", "account": "acct-C-01"}


def test_the_call_after_max_tool_calls_is_refused(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    outcomes = [call(run, "get_ticket", TICKET).outcome for _ in range(8)]

    ninth = call(run, "get_ticket", TICKET)

    assert outcomes == ["executed"] * 8
    assert ninth.outcome == "budget_exceeded"
    assert ninth.decision.rule_id == "budget.max_tool_calls"
    assert ninth.decision.stage == "budget"
    assert "all 8 tool calls of this run are used" in ninth.decision.reason
    assert tool_records(runtime)[-1].entry.rule_id == "budget.max_tool_calls"


def test_calls_refused_after_the_budget_stage_still_use_a_slot(runtime: Runtime) -> None:
    # A hijacked model looping on forbidden calls must run out of attempts.
    run = start_example_run(runtime)
    delete = {"kind": "ticket", "record_id": "T-1001"}
    rules = [call(run, "delete_record", delete).decision.rule_id for _ in range(8)]

    assert rules == ["deny[0]"] * 8
    assert call(run, "delete_record", delete).decision.rule_id == "budget.max_tool_calls"
    assert run.ledger.totals().cost_usd == 0


def test_calls_refused_before_the_budget_stage_use_no_slot(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    for _ in range(10):
        assert call(run, "no_such_tool", {}).decision.rule_id == "allowlist"
        assert call(run, "get_ticket", {"ticket": "T-1"}).decision.rule_id == "schema.get_ticket"
    assert run.ledger.totals().tool_calls == 0
    assert call(run, "get_ticket", TICKET).executed


def test_tool_fee_is_charged_once_per_executed_call_only(runtime: Runtime) -> None:
    run = start_example_run(runtime)

    assert call(run, "issue_refund", REFUND).executed
    assert run.ledger.totals().cost_usd == Decimal("0.01")
    over_max = call(run, "issue_refund", {**REFUND, "amount_usd": "6000"})
    assert over_max.decision.rule_id == "constraints.issue_refund.amount_usd.max"
    needs_human = call(run, "issue_refund", {**REFUND, "amount_usd": "350"})
    assert needs_human.outcome == "approval_required"

    assert run.ledger.totals().cost_usd == Decimal("0.01")  # refusals gave their fee back
    assert call(run, "issue_refund", {**REFUND, "amount_usd": "46"}).executed
    assert run.ledger.totals().cost_usd == Decimal("0.02")
    assert run.ledger.totals().tool_calls == 4


def test_fees_count_against_max_usd_per_run(runtime: Runtime, tmp_path: Path) -> None:
    @tool
    def paid() -> str:
        """A paid lookup."""
        return "ok"

    charter = write_charter(
        tmp_path,
        "tools:\n  paid: {effect: read, fee_usd: 0.25}\nbudgets: {max_usd_per_run: 0.60}\n",
        tools=[paid],
    )
    run = runtime.start_run(charter, Principal("alice", "acme"))

    outcomes = [call(run, "paid", {}).outcome for _ in range(3)]

    assert outcomes == ["executed", "executed", "budget_exceeded"]
    third = run.results[-1]
    assert third.decision.rule_id == "budget.max_usd_per_run"
    assert "$0.25 more would pass the run's limit of $0.6" in third.decision.reason
    assert run.ledger.totals().cost_usd == Decimal("0.50")


def test_fifty_concurrent_calls_never_spend_past_max_usd_per_run(
    runtime: Runtime, tmp_path: Path
) -> None:
    entered: list[str] = []
    refused: list[str] = []
    gate = asyncio.Event()

    def open_gate_when_all_decided() -> None:
        # Every executed call is parked at the gate until all fifty have been decided, so
        # all their reservations coexist: the worst case for overspending.
        if len(entered) + len(refused) == 50:
            gate.set()

    @tool
    async def paid_async(*, ctx: ToolContext) -> str:
        """A paid call that waits at a gate, so all callers overlap."""
        entered.append(ctx.call_id)
        open_gate_when_all_decided()
        await gate.wait()
        return "ok"

    def on_event(event: Event) -> None:
        if isinstance(event, ToolCallFinished) and event.outcome == "budget_exceeded":
            refused.append(event.call_id)
            open_gate_when_all_decided()

    charter = write_charter(
        tmp_path,
        """\
        tools:
          paid_async: {effect: write, fee_usd: 0.07}
        budgets: {max_usd_per_run: 1.00, max_tool_calls: 1000}
        """,
        tools=[paid_async],
    )
    run = runtime.start_run(charter, Principal("alice", "acme"))
    runtime.services.bus.subscribe(on_event)

    async def scenario() -> list[str]:
        tasks = [run.call_tool("paid_async", {}) for _ in range(50)]
        results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)  # a limit only
        return [r.outcome for r in results]

    outcomes = asyncio.run(scenario())

    executed = outcomes.count("executed")
    assert executed == len(entered) == 14  # 14 * 0.07 = 0.98; a 15th would make 1.05
    assert outcomes.count("budget_exceeded") == len(refused) == 36
    assert run.ledger.totals().cost_usd == Decimal("0.98")
    assert run.ledger.totals().cost_usd <= Decimal("1.00")
    rules = {r.entry.rule_id for r in tool_records(runtime) if r.entry.outcome != "executed"}
    assert rules == {"budget.max_usd_per_run"}


def test_overall_time_budget_refuses_calls_once_time_is_up(tmp_path: Path) -> None:
    clock = FakeClock()
    with make_runtime(tmp_path, clock=clock) as runtime:
        run = start_example_run(runtime)
        assert call(run, "get_ticket", TICKET).executed
        clock.advance(24.9)
        assert call(run, "get_ticket", TICKET).executed
        clock.advance(0.1)

        late = call(run, "get_ticket", TICKET)

        assert late.outcome == "budget_exceeded"
        assert late.decision.rule_id == "budget.timeouts.overall_seconds"
        assert "25" in late.decision.reason


def test_time_running_out_mid_run_escalates_with_the_example_on_exceed(tmp_path: Path) -> None:
    clock = FakeClock()

    def slow_thinking(_messages: Sequence[Message]) -> ModelResponse:
        clock.advance(30)
        return reply("", tool_call("get_ticket", ticket_id="T-1001"))

    with make_runtime(tmp_path, clock=clock) as runtime:
        result = asyncio.run(
            runtime.run_agent(
                example_charter(),
                ScriptedModel([slow_thinking]),
                "Please handle ticket T-1001.",
                principal=Principal("alice", "acme", roles=("support",)),
                resources=(SupportDesk.default(),),
            )
        )

    assert result.outcome == "escalated"  # the example says on_exceed: escalate
    assert result.decision is not None
    assert result.decision.rule_id == "budget.timeouts.overall_seconds"
    assert result.tool_calls[0].outcome == "budget_exceeded"


def _token_charter(tmp_path: Path, on_exceed: str, limit: int = 2000) -> Charter:
    @tool
    def noop() -> str:
        """Does nothing."""
        return "ok"

    return write_charter(
        tmp_path,
        f"tools:\n  noop: {{effect: read}}\n"
        f"budgets: {{max_total_tokens: {limit}, on_exceed: {on_exceed}}}\n",
        tools=[noop],
    )


def _greedy_model() -> ScriptedModel:
    # The provider ignored max_output_tokens (64) and billed 5000 tokens.
    return ScriptedModel([reply("a very long answer", usage=Usage(100, 5000))])


@pytest.mark.parametrize(
    ("on_exceed", "outcome"), [("fail", "budget_exceeded"), ("escalate", "escalated")]
)
def test_model_usage_over_max_total_tokens_follows_on_exceed(
    runtime: Runtime, tmp_path: Path, on_exceed: str, outcome: str
) -> None:
    charter = _token_charter(tmp_path, on_exceed)

    result = asyncio.run(
        runtime.run_agent(charter, _greedy_model(), "hi", principal=Principal("alice", "acme"))
    )

    assert result.outcome == outcome
    assert result.decision is not None
    assert result.decision.rule_id == "budget.max_total_tokens"
    assert result.total_tokens == 5100  # the overspend is recorded, not hidden
    finished = [r for r in runtime.audit.records() if r.entry.kind == "run_finished"]
    assert [(r.entry.outcome, r.entry.rule_id) for r in finished] == [
        (outcome, "budget.max_total_tokens")
    ]


def test_model_call_that_cannot_fit_is_never_made(runtime: Runtime, tmp_path: Path) -> None:
    charter = _token_charter(tmp_path, "fail", limit=50)  # prompt + 64 output tokens > 50
    model = ScriptedModel([reply("unreachable")])

    result = asyncio.run(runtime.run_agent(charter, model, "hi", principal=Principal("a", "b")))

    assert result.outcome == "budget_exceeded"
    assert result.decision is not None
    assert result.decision.rule_id == "budget.max_total_tokens"
    assert model.calls == []
    assert result.total_tokens == 0


def test_model_cost_over_max_usd_per_run_is_a_budget_stop(runtime: Runtime, tmp_path: Path) -> None:
    @tool
    def noop() -> str:
        """Does nothing."""
        return "ok"

    charter = write_charter(
        tmp_path,
        "tools:\n  noop: {effect: read}\nbudgets: {max_usd_per_run: 0.01}\n",
        tools=[noop],
    )
    # gpt-4o-mini output costs $0.60 per million tokens: 100k tokens are $0.06.
    model = ScriptedModel([reply("long", usage=Usage(10, 100_000))])

    result = asyncio.run(runtime.run_agent(charter, model, "hi", principal=Principal("a", "b")))

    assert result.outcome == "budget_exceeded"
    assert result.decision is not None
    assert result.decision.rule_id == "budget.max_usd_per_run"
    assert result.cost_usd > Decimal("0.01")
