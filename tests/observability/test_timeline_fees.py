"""One rule for tool fees, so far and at the end: what the run's budget ledger charged.

A finished run reports as tool fees what its ledger charged (``ToolResult.fee_usd``: a
started call's fee whether it executed, raised, timed out or was interrupted; a deferred
one's when decided; nothing for refusals, calls that never started, sends, discards and
compensations). ``runs show`` of a run that has not ended counts its usage from its
timeline; its tool fees must be the same figure, read from what each call's audit record
says it was charged, never worked out again from the charter by a rule of its own.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from charter.cli import runs
from charter.contract.loader import Charter
from charter.execution.agent import RunResult, run_agent
from charter.execution.run import Run
from charter.identity.principal import Principal
from charter.observability.audit import AuditLog
from charter.observability.timeline import Timeline, TimelineReader, ToolCallStep
from charter.observability.timeline_model import usage_so_far
from charter.runtime import Runtime
from charter.storage import Database, upgrade
from charter.testing import FakeClock, ScriptedModel, reply, tool_call
from tests.execution.harness import runtime_fixture
from tests.execution.test_tool_fees import FEE, NO_HANG, Desk, fee_charter
from tests.observability.test_audit import make_entry
from tests.observability.test_cost import add_run
from tests.observability.test_timeline import T0
from tests.parking import Parked, StopAtApproval


@pytest.fixture
def charter(tmp_path: Path) -> Charter:
    return fee_charter(
        tmp_path,
        "  require_approval_for:\n"
        '    - {action: ok, when: "args.x == 7", reason: "seven needs a human"}\n',
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


runtime = runtime_fixture(start=T0)  # its home is ``home``


def start(runtime: Runtime, charter: Charter) -> Run:
    return runtime.start_run(charter, Principal("alice", "acme"), resources=(Desk(),))


def drive(runtime: Runtime, charter: Charter, *turns: Any) -> RunResult:
    run = start(runtime, charter)
    model = ScriptedModel(list(turns))
    return asyncio.run(asyncio.wait_for(run_agent(run, model, "go", price=None), NO_HANG))


def timeline(runtime: Runtime, run_id: str, charter: Charter | None = None) -> Timeline:
    found = TimelineReader(runtime.database, FakeClock(T0)).find(run_id, charter=charter)
    assert found is not None
    return found


SCENARIOS: dict[str, tuple[Any, ...]] = {
    "raised": (reply("", tool_call("fails", x=1)), reply("done")),
    "timed out": (reply("", tool_call("hangs", x=1)), reply("done")),
    "credential missing": (reply("", tool_call("keyed", x=1)),),
    "resource missing": (reply("", tool_call("needs_desk", x=1)),),
    "refused": (
        reply("", tool_call("ok", x=13)),
        reply("", tool_call("ok", x="not a number")),
        reply("", tool_call("nope", x=1)),
        reply("done"),
    ),
    "sent": (reply("", tool_call("send", to="a")), reply("done")),
    "discarded": (
        reply("", tool_call("send", to="a")),
        reply("", tool_call("ok", x=13)),
        reply("", tool_call("fails", x=1)),
    ),
    "compensated": (reply("", tool_call("write", row="r")),),
    "everything": (
        reply("", tool_call("ok", x=1)),
        reply("", tool_call("write", row="r")),
        reply("", tool_call("send", to="a")),
        reply("", tool_call("send", to="b")),
        reply("", tool_call("fails", x=1)),
        reply("", tool_call("ok", x=13)),
        reply("", tool_call("keyed", x=1)),  # never started; the run fails on it
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_fees_counted_from_the_timeline_are_what_the_ledger_charged(
    runtime: Runtime, charter: Charter, scenario: str
) -> None:
    result = drive(runtime, charter, *SCENARIOS[scenario])
    t = timeline(runtime, result.run_id)
    row = runtime.runs.get(result.run_id)

    # Each call's record carries the fee its result says the ledger charged.
    calls = [s for s in t.steps if isinstance(s, ToolCallStep)]
    assert [(c.tool, c.outcome, c.fee_usd) for c in calls] == [
        (r.tool, r.outcome, r.fee_usd) for r in result.tool_calls
    ]
    # Counted from the timeline, as for a run that has not ended: the ledger's figure.
    so_far = usage_so_far(t.steps, spans_stored=False)
    assert so_far.tool_fees_usd == row.tool_fees_usd
    assert t.usage is not None
    assert t.usage.final
    assert so_far.tool_fees_usd == t.usage.tool_fees_usd
    assert (so_far.tool_errors, so_far.denied_calls) == (row.tool_errors, row.denied_calls)


def test_a_started_call_and_a_deferred_one_cost_what_they_were_charged_in_everything(
    runtime: Runtime, charter: Charter
) -> None:
    # The figure the test above compares against, spelled out once: ok, write, two sends
    # (discarded, as the run failed) and the call that raised were charged; the refusal,
    # the call without its credential, the discards and the compensation were not.
    result = drive(runtime, charter, *SCENARIOS["everything"])
    assert runtime.runs.get(result.run_id).tool_fees_usd == 5 * FEE


def test_a_parked_run_shows_the_fees_its_ledger_charged_so_far(
    runtime: Runtime, charter: Charter, home: Path
) -> None:
    run = start(runtime, charter)
    model = ScriptedModel([
        reply("", tool_call("fails", x=1)),  # raised after it started: charged
        reply("", tool_call("send", to="a")),  # deferred: charged when decided
        reply("", tool_call("ok", x=13)),  # denied: nothing
        reply("", tool_call("ok", x=7)),  # waits for a human: nothing yet
    ])  # fmt: skip
    with pytest.raises(Parked):
        asyncio.run(run_agent(run, model, "go", price=None, steps=StopAtApproval()))
    charged = sum((r.fee_usd or Decimal(0) for r in run.results), Decimal(0))
    assert charged == 2 * FEE

    for given in (None, charter):  # the charter is not needed to know them, nor changes them
        usage = timeline(runtime, run.id, given).usage
        assert usage is not None
        assert usage.final is False
        assert usage.tool_fees_usd == charged

    cli = typer.Typer()
    cli.add_typer(runs.app, name="runs")
    env = {"CHARTER_HOME": str(home), "COLUMNS": "300"}
    result = CliRunner().invoke(cli, ["runs", "show", run.id, "--json"], env=env)
    assert result.exit_code == 3, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["usage"]["tool_fees_usd"] == str(charged)
    fees = [s["fee_usd"] for s in data["steps"] if s["kind"] == "tool_call"]
    assert fees == [str(FEE), str(FEE), "0", "0"]
    result = CliRunner().invoke(cli, ["runs", "show", run.id], env=env)
    text = " ".join(result.stdout.split())
    assert "tool fees $0.10" in text
    assert "count tool fees" not in text  # no charter needed for them any more


def step(n: int | None, outcome: str, fee: str | None, *, phase: str = "call",
         stage: str = "execute") -> ToolCallStep:  # fmt: skip
    """A tool call as the timeline reads it from its audit record."""
    return ToolCallStep(
        at=T0, tool="ok", phase=phase, arguments={}, arguments_sha256="a" * 64,  # type: ignore[arg-type]
        verdict="allow", rule_id="tools.ok", stage=stage, reason="", outcome=outcome,
        detail="", duration_ms=None, span_id="", approval=None, step=n,
        fee_usd=None if fee is None else Decimal(fee),
    )  # fmt: skip


def test_a_step_recorded_twice_counts_once_as_its_last_record() -> None:
    # A durable step that ran again after a crash and ended differently has two records;
    # the ledger that went on charged and counted it once, as it ended the second time.
    usage = usage_so_far(
        [
            step(1, "error", "0.05"),
            step(1, "executed", "0.05"),
            step(2, "approval_required", "0", stage="approval"),
            step(3, "executed", "0.05"),  # the same call again, under its approval
            step(None, "executed", "0.05"),  # no step named: counted as it is
            step(None, "executed", "0.05"),
        ],
        spans_stored=False,
    )
    assert usage.tool_fees_usd == Decimal("0.20")
    assert (usage.tool_calls, usage.tool_errors) == (5, 0)


def test_calls_recorded_before_fees_were_audited_leave_the_fees_unknown() -> None:
    usage = usage_so_far([step(1, "executed", "0.05"), step(2, "executed", None)], False)
    assert usage.tool_fees_usd is None  # unknown, never the known part passed off as all
    assert usage.cost_usd is None


def test_runs_show_says_why_fees_so_far_are_unknown(home: Path) -> None:
    database = Database(f"sqlite:///{home / 'charter.sqlite3'}")
    upgrade(database)
    add_run(database, "run_old", charter="c", tenant="acme", started=T0, outcome="running")
    log = AuditLog(database)
    try:
        log.append(make_entry(0, run_id="run_old", outcome="executed", verdict="allow"))
    finally:
        log.close()
    try:
        t = TimelineReader(database, FakeClock(T0)).find("run_old")
    finally:
        database.dispose()
    assert t is not None
    assert t.usage is not None
    assert t.usage.tool_fees_usd is None
    assert any("tool fees so far are unknown" in note for note in t.notes)
    cli = typer.Typer()
    cli.add_typer(runs.app, name="runs")
    env = {"CHARTER_HOME": str(home), "COLUMNS": "300"}
    result = CliRunner().invoke(cli, ["runs", "show", "run_old"], env=env)
    assert result.exit_code == 3, result.stdout + result.stderr
    text = " ".join(result.stdout.split())
    assert "tool fees ?" in text
    assert "tool fees: a call was recorded before fees were audited" in text
