"""A host cancelling the task that runs a run: the running call is recorded and charged (it
had started), then the cancellation goes on up. Nothing is left reserved, nothing unrecorded.

The tools and their gates are those of ``test_kill_interrupts.py``; every wait is on an event,
bounded only by a generous no-hang limit.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from charter.contract.loader import Charter
from charter.execution.agent import run_agent
from charter.execution.run import Run
from charter.execution.stages.execute import HOST_SCOPE
from charter.observability.audit import AuditEntry
from charter.runtime import Runtime
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.harness import SCOPE, runtime_fixture, tool_records, write_charter
from tests.execution.test_kill_interrupts import (
    NO_HANG,
    TOOLS,
    Gate,
    Undo,
    cancelled_with_a_kill,
    charter_for,
    start,
)

HOST = "cancelled by its host"

runtime = runtime_fixture()


async def cancel_once_started(work: Any, started: Any) -> None:
    """Run ``work`` in a task, cancel the task once ``started`` is set, and await it."""
    task = asyncio.create_task(work)
    assert await asyncio.to_thread(started.wait, NO_HANG), "the tool never started"
    task.cancel()
    await task


def host_cancels(work: Any, started: Any) -> None:
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(asyncio.wait_for(cancel_once_started(work, started), NO_HANG))


def entries(runtime: Runtime) -> list[AuditEntry]:
    return [record.entry for record in tool_records(runtime)]


def assert_nothing_reserved(run: Run) -> None:
    run.ledger.snapshot()  # raises while a call holds a reservation


def test_an_async_tool_is_recorded_and_charged_when_the_host_cancels_the_run(
    runtime: Runtime, tmp_path: Path
) -> None:
    gate = Gate()
    run = start(runtime, charter_for(tmp_path, timeout=False), gate)

    host_cancels(run.call_tool("pay_async", {"amount": 5}), gate.started)

    assert gate.cancelled.is_set()  # the tool's own await was cancelled
    assert gate.paid == []
    [entry] = entries(runtime)
    assert (entry.outcome, entry.verdict, entry.rule_id, entry.stage) == (
        "interrupted",
        "allow",
        "tools.pay_async",
        "execute",
    )
    assert HOST in entry.detail
    assert "kill switch" not in entry.detail  # nothing here was a kill
    assert f"{run.id}:1" in entry.detail  # the idempotency key, to reconcile a partial effect
    assert entry.event_id == f"{run.id}/call/1/interrupted"
    assert run.results[-1].outcome == "interrupted"
    totals = run.ledger.totals()
    assert (totals.tool_calls, totals.cost_usd) == (1, Decimal("0.05"))  # it had started
    assert_nothing_reserved(run)
    assert gate.contexts[0].cancellation.scope == HOST_SCOPE


def test_a_sync_tool_in_its_thread_is_told_and_the_record_says_it_may_go_on(
    runtime: Runtime, tmp_path: Path
) -> None:
    gate = Gate()
    # With a time limit a sync tool runs in a worker thread: the await on it can be cancelled.
    run = start(runtime, charter_for(tmp_path, timeout=True), gate)

    host_cancels(run.call_tool("pay_polling", {"amount": 5}), gate.started)

    # The tool was told through its signal, so one that polls stops where it checks.
    assert gate.contexts[0].cancellation.wait(NO_HANG)
    assert gate.contexts[0].cancellation.scope == HOST_SCOPE
    [entry] = entries(runtime)
    assert (entry.outcome, entry.verdict) == ("interrupted", "allow")
    assert HOST in entry.detail
    assert "may still finish in its worker thread" in entry.detail
    assert run.ledger.totals().cost_usd == Decimal("0.05")
    assert_nothing_reserved(run)


def test_an_outer_cancellation_and_a_kill_together_are_recorded_and_propagate(
    runtime: Runtime, tmp_path: Path
) -> None:
    _, run = cancelled_with_a_kill(runtime, tmp_path)
    [entry] = entries(runtime)
    assert entry.outcome == "interrupted"
    assert HOST in entry.detail
    assert f"the kill switch ({SCOPE}) was pulled while it ran" in entry.detail
    assert run.ledger.totals().cost_usd == Decimal("0.05")
    assert_nothing_reserved(run)


def test_a_host_cancelling_the_agent_loop_mid_call_records_the_call(
    runtime: Runtime, tmp_path: Path
) -> None:
    gate = Gate()
    run = start(runtime, charter_for(tmp_path, timeout=False), gate)
    model = ScriptedModel([reply("paying", tool_call("pay_async", amount=5)), reply("done")])

    host_cancels(run_agent(run, model, "pay", price=None), gate.started)

    assert [(e.tool, e.outcome) for e in entries(runtime)] == [("pay_async", "interrupted")]
    assert_nothing_reserved(run)


def deferred_charter(tmp_path: Path) -> Charter:
    return write_charter(
        tmp_path,
        """\
        tools:
          pay_async: {effect: irreversible, defer: until_run_succeeds, fee_usd: 0.05}
          note: {effect: write}
        """,
        tools=TOOLS,
    )


def test_a_deferred_send_the_host_cancels_is_recorded_and_the_rest_discarded(
    runtime: Runtime, tmp_path: Path
) -> None:
    gate = Gate()
    run = start(runtime, deferred_charter(tmp_path), gate)
    model = ScriptedModel([
        reply("", tool_call("pay_async", "c1", amount=5)),
        reply("", tool_call("pay_async", "c2", amount=6)),
        reply("all done"),
    ])  # fmt: skip

    host_cancels(run_agent(run, model, "pay twice", price=None), gate.started)

    assert gate.calls == 1
    assert gate.paid == []
    outcomes = [(str(e.event_id).split("/", 1)[1], e.outcome) for e in entries(runtime)]
    assert outcomes == [
        ("call/1/deferred", "deferred"),
        ("call/2/deferred", "deferred"),
        ("send/1/interrupted", "interrupted"),  # the send the host cancelled
        ("discard/2/discarded", "discarded"),  # the one it never reached
    ]
    send, discard = entries(runtime)[2:]
    assert HOST in send.detail
    assert "cancelled by its host" in discard.detail


def test_a_compensation_the_host_cancels_is_recorded(runtime: Runtime, tmp_path: Path) -> None:
    undo = Undo()
    run = start(runtime, charter_for(tmp_path, timeout=True), undo)
    model = ScriptedModel([
        reply("", tool_call("note", text="hello")),
        reply("", tool_call("no_such_tool")),
        reply("", tool_call("no_such_tool")),
        reply("", tool_call("no_such_tool")),
    ])  # fmt: skip
    # The model runs out of turns: the run fails, and its write is taken back, slowly.

    host_cancels(run_agent(run, model, "note", price=None, max_steps=2), undo.started)

    assert [(e.tool, e.outcome) for e in entries(runtime)][-1] == ("unnote", "interrupted")
    entry = entries(runtime)[-1]
    assert HOST in entry.detail
    assert entry.rule_id == "tools.note.compensate"
    assert undo.contexts[0].cancellation.scope == HOST_SCOPE
    undo.release.set()
