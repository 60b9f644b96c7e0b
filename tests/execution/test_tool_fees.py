"""One rule for a run's tool fees: whatever the budget ledger charged as a tool fee is
reported as a tool fee, and nothing else is.

With an unpriced model every dollar a run spends is a tool fee, so each test checks that the
run's reported tool fees equal its whole cost, and that its model cost is zero.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from charter.contract.loader import Charter
from charter.contract.tool import ToolContext, tool
from charter.core.decision import Decision, Stage, Verdict
from charter.execution.agent import RunResult, run_agent
from charter.execution.call import ToolResult
from charter.identity.principal import Principal
from charter.runtime import Runtime
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.harness import runtime_fixture, write_charter

FEE = Decimal("0.05")
NO_HANG = 20.0


@dataclass
class Desk:
    sent: list[str] = field(default_factory=list)


@tool
def fails(x: int) -> str:
    """A tool that raises.

    Args:
        x: anything.
    """
    raise ConnectionError("upstream down")


@tool
async def hangs(x: int) -> str:
    """A tool that never answers within its time limit.

    Args:
        x: anything.
    """
    await asyncio.Event().wait()
    return "never"


@tool
def keyed(x: int, *, ctx: ToolContext) -> str:
    """A tool that needs a credential nobody provided.

    Args:
        x: anything.
    """
    return "never"


@tool
def needs_desk(x: int, *, ctx: ToolContext) -> str:
    """A tool that asks for a resource the run was not given.

    Args:
        x: anything.
    """
    ctx.resource(Desk).sent.append("never")
    return "never"


@tool
def send(to: str, *, ctx: ToolContext) -> str:
    """A deferred send.

    Args:
        to: whom.
    """
    ctx.resource(Desk).sent.append(to)
    return "sent"


@tool
def write(row: str) -> str:
    """A write with an undo.

    Args:
        row: which.
    """
    return "written"


@tool
def unwrite(row: str) -> str:
    """The undo, which declares a fee of its own.

    Args:
        row: which.
    """
    return "unwritten"


@tool
def ok(x: int) -> str:
    """A tool that works.

    Args:
        x: anything.
    """
    return "ok"


TOOLS = [fails, hangs, keyed, needs_desk, send, write, unwrite, ok]


FEE_CHARTER = """\
tools:
  fails: {effect: read, fee_usd: 0.05}
  hangs: {effect: read, fee_usd: 0.05, timeout_seconds: 0.05}
  keyed: {effect: read, fee_usd: 0.05, credential: nowhere_key}
  needs_desk: {effect: read, fee_usd: 0.05}
  send: {effect: irreversible, defer: until_run_succeeds, fee_usd: 0.05}
  write: {effect: write, compensate: unwrite, fee_usd: 0.05}
  unwrite: {effect: write, fee_usd: 0.05}
  ok: {effect: read, fee_usd: 0.05}
policies:
  on_deny: continue
  deny:
    - {action: ok, when: "args.x == 13"}
"""


def fee_charter(tmp_path: Path, more_policies: str = "") -> Charter:
    """Every tool of this file at a fee of 0.05; ``more_policies``: more lines of ``policies``."""
    return write_charter(tmp_path, FEE_CHARTER + more_policies, tools=TOOLS)


@pytest.fixture
def charter(tmp_path: Path) -> Charter:
    return fee_charter(tmp_path)


runtime = runtime_fixture()


def drive(runtime: Runtime, charter: Charter, *turns: Any, desk: Desk | None = None) -> RunResult:
    run = runtime.start_run(charter, Principal("alice", "acme"), resources=(desk,) if desk else ())
    model = ScriptedModel(list(turns))
    return asyncio.run(asyncio.wait_for(run_agent(run, model, "go", price=None), NO_HANG))


def fees(runtime: Runtime, result: RunResult) -> tuple[Decimal, Decimal, Decimal]:
    """(cost, tool fees, model cost) of the run, as the runs table keeps them."""
    row = runtime.runs.get(result.run_id)
    return row.cost_usd, row.tool_fees_usd, row.model_cost_usd


def test_a_call_that_raised_was_charged_and_its_fee_is_a_tool_fee(
    runtime: Runtime, charter: Charter
) -> None:
    result = drive(runtime, charter, reply("", tool_call("fails", x=1)), reply("done"))

    assert [c.outcome for c in result.tool_calls] == ["error"]
    assert result.tool_calls[0].fee_usd == FEE
    assert fees(runtime, result) == (FEE, FEE, Decimal(0))


def test_a_call_that_timed_out_was_charged_and_its_fee_is_a_tool_fee(
    runtime: Runtime, charter: Charter
) -> None:
    result = drive(runtime, charter, reply("", tool_call("hangs", x=1)), reply("done"))

    assert [c.outcome for c in result.tool_calls] == ["timeout"]
    assert fees(runtime, result) == (FEE, FEE, Decimal(0))


def test_a_tool_asking_for_a_missing_resource_had_started_and_is_charged(
    runtime: Runtime, charter: Charter
) -> None:
    result = drive(runtime, charter, reply("", tool_call("needs_desk", x=1)))

    [only] = result.tool_calls
    assert (only.outcome, only.failure) == ("error", "configuration")
    assert result.outcome == "failed"
    assert fees(runtime, result) == (FEE, FEE, Decimal(0))


def test_a_call_whose_credential_is_missing_never_started_and_costs_nothing(
    runtime: Runtime, charter: Charter
) -> None:
    result = drive(runtime, charter, reply("", tool_call("keyed", x=1)))

    [only] = result.tool_calls
    assert (only.outcome, only.failure, only.fee_usd) == ("error", "configuration", Decimal(0))
    assert fees(runtime, result) == (Decimal(0), Decimal(0), Decimal(0))


def test_refused_calls_cost_nothing(runtime: Runtime, charter: Charter) -> None:
    result = drive(
        runtime,
        charter,
        reply("", tool_call("ok", x=13)),  # denied by policy
        reply("", tool_call("ok", x="not a number")),  # denied by the schema
        reply("", tool_call("nope", x=1)),  # not declared
        reply("done"),
    )

    assert [c.outcome for c in result.tool_calls] == ["denied"] * 3
    assert [c.fee_usd for c in result.tool_calls] == [Decimal(0)] * 3
    assert fees(runtime, result) == (Decimal(0), Decimal(0), Decimal(0))


def test_a_deferred_send_is_charged_once_when_decided_and_sent(
    runtime: Runtime, charter: Charter
) -> None:
    desk = Desk()
    result = drive(runtime, charter, reply("", tool_call("send", to="a")), reply("done"), desk=desk)

    assert desk.sent == ["a"]
    assert [(c.outcome, c.fee_usd) for c in result.tool_calls] == [
        ("deferred", FEE),  # charged when the run decided it
        ("executed", Decimal(0)),  # sending it charges nothing more
    ]
    assert fees(runtime, result) == (FEE, FEE, Decimal(0))


def test_a_discarded_send_was_charged_when_decided_and_its_fee_is_reported(
    runtime: Runtime, charter: Charter
) -> None:
    desk = Desk()
    result = drive(
        runtime,
        charter,
        reply("", tool_call("send", to="a")),
        reply("", tool_call("ok", x=13)),
        reply("", tool_call("fails", x=1)),
        desk=desk,
    )  # the model runs out of turns: the run fails, the outbox is discarded

    assert result.outcome == "failed"
    assert desk.sent == []
    assert [(c.outcome, c.fee_usd) for c in result.tool_calls] == [
        ("deferred", FEE),
        ("denied", Decimal(0)),
        ("error", FEE),
        ("discarded", Decimal(0)),
    ]
    assert fees(runtime, result) == (2 * FEE, 2 * FEE, Decimal(0))


def test_a_compensation_is_not_charged_and_not_reported(runtime: Runtime, charter: Charter) -> None:
    result = drive(runtime, charter, reply("", tool_call("write", row="r")))  # then fails

    assert [(c.tool, c.outcome, c.fee_usd) for c in result.tool_calls] == [
        ("write", "executed", FEE),
        ("unwrite", "executed", Decimal(0)),  # the ledger does not charge an undo
    ]
    assert fees(runtime, result) == (FEE, FEE, Decimal(0))


def test_the_fee_survives_a_durable_round_trip() -> None:
    decision = Decision(Verdict.ALLOW, "ok", "tools.ok", Stage.EXECUTE)
    result = ToolResult("c1", "ok", decision, "error", "boom", fee_usd=Decimal("0.0501"))
    assert ToolResult.from_dict(result.as_dict()).fee_usd == Decimal("0.0501")
    # A result recorded before fees were kept has no fee to read: unknown, not zero.
    older = {k: v for k, v in result.as_dict().items() if k != "fee_usd"}
    assert ToolResult.from_dict(older).fee_usd is None
    assert ToolResult.from_dict({**older, "fee_usd": None}).fee_usd is None
    for bad in ("-1", "NaN", "Infinity", "abc", "", 5, 0.05, True, [1]):
        with pytest.raises(ValueError, match="fee"):
            ToolResult.from_dict({**result.as_dict(), "fee_usd": bad})
