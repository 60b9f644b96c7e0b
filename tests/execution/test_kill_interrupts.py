"""A kill reaches calls already running: async tools are cancelled, sync tools are told.

Every test pulls the switch from another thread while the tool is blocked, and waits on
events, never on sleeps: the only bound on time is a generous no-hang limit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from charter.contract.loader import Charter
from charter.contract.tool import ToolContext, tool
from charter.core.errors import KillSignal
from charter.execution.agent import run_agent
from charter.execution.kill_switch import KillSwitches
from charter.execution.kill_watch import KILL_WATCH
from charter.execution.run import Run
from charter.identity.principal import Principal
from charter.runtime import Runtime
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.harness import (
    SCOPE,
    call,
    memory_kill,
    other_process_kill,
    tool_records,
    write_charter,
)
from tests.execution.test_steps import RecordingSteps, ReplayingSteps

REASON = "card fraud ring"
NO_HANG = 20.0  # seconds; a kill is seen within ~50 ms, this only stops a broken build hanging


@dataclass
class Gate:
    """What a tool and the test share: the tool says it started, the test says go on."""

    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    contexts: list[ToolContext] = field(default_factory=list)
    paid: list[int] = field(default_factory=list)
    calls: int = 0


def entered(ctx: ToolContext) -> Gate:
    """The call's gate, told that one more call started (with ``ctx``)."""
    gate = ctx.resource(Gate)
    gate.calls += 1
    gate.contexts.append(ctx)
    gate.started.set()
    return gate


@tool
async def pay_async(amount: int, *, ctx: ToolContext) -> str:
    """Pay, waiting on a provider that never answers until the call is cancelled.

    Args:
        amount: how much.
    """
    gate = entered(ctx)
    try:
        await asyncio.Event().wait()  # no one sets it: only a cancellation ends the wait
    except asyncio.CancelledError:
        gate.cancelled.set()
        raise
    gate.paid.append(amount)  # pragma: no cover - unreachable by design
    return "paid"


@tool
def pay_polling(amount: int, *, ctx: ToolContext) -> str:
    """Pay in small pieces, checking for a kill between them (what a long sync job should do).

    Args:
        amount: how much.
    """
    gate = entered(ctx)
    for _ in range(int(NO_HANG / 0.01)):
        ctx.raise_if_cancelled()
        if gate.release.wait(0.01):  # one piece of the job
            break
    gate.paid.append(amount)
    return "paid"


@tool
def pay_ignoring(amount: int, *, ctx: ToolContext) -> str:
    """Pay without ever looking at the cancellation signal.

    Args:
        amount: how much.
    """
    gate = entered(ctx)
    gate.release.wait(NO_HANG)
    gate.paid.append(amount)
    return "paid"


@tool
def note(text: str, *, ctx: ToolContext) -> str:
    """Write a note (a write that can be taken back).

    Args:
        text: the note.
    """
    return f"noted {text}"


@tool
def unnote(text: str, *, ctx: ToolContext) -> str:
    """Take a note back; slow, as an undo against a remote system can be.

    Args:
        text: the note.
    """
    gate = ctx.resource(Undo)
    gate.contexts.append(ctx)
    gate.started.set()
    gate.release.wait(NO_HANG)
    gate.undone.append(text)
    return f"unnoted {text}"


@dataclass
class Undo:
    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    contexts: list[ToolContext] = field(default_factory=list)
    undone: list[str] = field(default_factory=list)


TOOLS = [pay_async, pay_polling, pay_ignoring, note, unnote]


def charter_for(tmp_path: Path, *, timeout: bool) -> Charter:
    """Every tool of this file; with ``timeout`` sync tools run in a worker thread, without
    it they run inline on the event loop (which the kill must reach from another thread)."""
    limit = "timeout_seconds: 60, " if timeout else ""
    return write_charter(
        tmp_path,
        f"""\
        tools:
          pay_async: {{effect: irreversible, fee_usd: 0.05}}
          pay_polling: {{effect: irreversible, {limit}fee_usd: 0.05}}
          pay_ignoring: {{effect: irreversible, {limit}fee_usd: 0.05}}
          note: {{effect: write, compensate: unnote}}
          unnote: {{effect: write, {limit}}}
        """,
        tools=TOOLS,
    )


class Killer(threading.Thread):
    """Waits for the tool to start, pulls the switch, then runs ``after`` (if any)."""

    def __init__(
        self, gate: Gate | Undo, pull: Callable[[], None], after: Callable[[], None] = lambda: None
    ) -> None:
        super().__init__(daemon=True)
        self.gate, self.pull, self.after = gate, pull, after
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            assert self.gate.started.wait(NO_HANG), "the tool never started"
            self.pull()
            self.after()
        except BaseException as exc:  # reported by the test thread
            self.error = exc
            self.gate.release.set()  # do not leave the tool waiting for nothing

    def finish(self) -> None:
        self.join(NO_HANG)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error


def start(runtime: Runtime, charter: Charter, *resources: object) -> Run:
    return runtime.start_run(charter, Principal("alice", "acme"), resources=resources)


def bounded(run: Run, name: str, arguments: dict[str, Any]) -> Any:
    """``call_tool`` under a no-hang bound (a call the kill never reaches fails the test)."""

    async def go() -> Any:
        return await asyncio.wait_for(run.call_tool(name, arguments), NO_HANG)

    return asyncio.run(go())


def test_an_async_tool_is_cancelled_by_a_kill_from_another_process(
    store_runtime: Runtime, tmp_path: Path
) -> None:
    runtime = store_runtime
    gate = Gate()
    run = start(runtime, charter_for(tmp_path, timeout=False), gate)
    killer = Killer(gate, other_process_kill(runtime, REASON))
    killer.start()

    with pytest.raises(KillSignal) as raised:
        bounded(run, "pay_async", {"amount": 5})
    killer.finish()

    assert (raised.value.scope, raised.value.reason) == (SCOPE, REASON)
    assert gate.cancelled.is_set()  # the tool's await was cancelled, not left running
    assert gate.contexts[0].cancelled
    assert gate.paid == []
    [record] = tool_records(runtime)
    entry = record.entry
    # The policy allowed it and it started: the decision stays the allow; the outcome and
    # the detail say the kill stopped it, and which kill.
    assert (entry.outcome, entry.verdict, entry.rule_id, entry.stage) == (
        "interrupted",
        "allow",
        "tools.pay_async",
        "execute",
    )
    assert entry.detail.startswith(f"INTERRUPTED: the kill switch ({SCOPE}) stopped pay_async")
    assert REASON in entry.detail
    assert f"{run.id}:1" in entry.detail  # the idempotency key, to reconcile a partial effect
    assert run.ledger.totals().cost_usd == Decimal("0.05")  # it had started: charged
    assert run.results[-1].outcome == "interrupted"
    # No later call executes: the next one is refused before it starts.
    with pytest.raises(KillSignal):
        call(run, "pay_async", {"amount": 6})
    assert [r.entry.outcome for r in tool_records(runtime)] == ["interrupted", "killed"]
    assert gate.calls == 1


def test_an_async_tool_is_cancelled_by_an_in_memory_kill(
    memory_runtime: Runtime, tmp_path: Path
) -> None:
    gate = Gate()
    run = start(memory_runtime, charter_for(tmp_path, timeout=False), gate)
    killer = Killer(gate, memory_kill(memory_runtime, REASON))
    killer.start()

    with pytest.raises(KillSignal):
        bounded(run, "pay_async", {"amount": 5})
    killer.finish()

    assert gate.cancelled.is_set()
    assert [r.entry.outcome for r in tool_records(memory_runtime)] == ["interrupted"]


@pytest.mark.parametrize("timeout", [False, True], ids=["inline", "in-thread"])
def test_a_sync_tool_that_polls_the_signal_is_interrupted(
    store_runtime: Runtime, tmp_path: Path, timeout: bool
) -> None:
    runtime = store_runtime
    gate = Gate()
    run = start(runtime, charter_for(tmp_path, timeout=timeout), gate)
    killer = Killer(gate, other_process_kill(runtime, REASON))
    killer.start()

    with pytest.raises(KillSignal) as raised:
        bounded(run, "pay_polling", {"amount": 5})
    killer.finish()

    assert raised.value.scope == SCOPE
    assert gate.paid == []  # it stopped where it checked
    [record] = tool_records(runtime)
    assert (record.entry.outcome, record.entry.verdict) == ("interrupted", "allow")
    assert SCOPE in record.entry.detail
    assert run.ledger.totals().cost_usd == Decimal("0.05")


@pytest.mark.parametrize("timeout", [False, True], ids=["inline", "in-thread"])
def test_a_sync_tool_that_ignores_the_signal_finishes_and_is_recorded_as_executed(
    store_runtime: Runtime, tmp_path: Path, timeout: bool
) -> None:
    runtime = store_runtime
    gate = Gate()
    run = start(runtime, charter_for(tmp_path, timeout=timeout), gate)

    def once_the_call_is_told() -> None:
        # The kill has reached the running call when its signal is set; then let it finish.
        assert gate.contexts[0].cancellation.wait(NO_HANG), "the kill never reached the call"
        gate.release.set()

    killer = Killer(gate, other_process_kill(runtime, REASON), once_the_call_is_told)
    killer.start()

    result = bounded(run, "pay_ignoring", {"amount": 5})
    killer.finish()

    # Python cannot stop a thread: the payment happened, and the record says so.
    assert gate.paid == [5]
    assert result.outcome == "executed"
    assert result.value == "paid"
    [record] = tool_records(runtime)
    assert record.entry.outcome == "executed"
    assert f"the kill switch ({SCOPE}) was pulled while pay_ignoring ran" in record.entry.detail
    assert "did not stop" in record.entry.detail
    with pytest.raises(KillSignal):  # and nothing runs after it
        call(run, "pay_ignoring", {"amount": 6})
    assert gate.paid == [5]


def test_an_outer_cancellation_is_not_taken_for_a_kill(
    memory_runtime: Runtime, tmp_path: Path
) -> None:
    gate = Gate()
    run = start(memory_runtime, charter_for(tmp_path, timeout=False), gate)

    async def scenario() -> None:
        task = asyncio.create_task(run.call_tool("pay_async", {"amount": 5}))
        await asyncio.to_thread(gate.started.wait, NO_HANG)
        task.cancel()  # the host stops the whole run: that must still propagate
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(scenario())
    assert gate.cancelled.is_set()
    # The tool is told it was the host, not a kill (test_host_cancellation.py has the rest).
    assert gate.contexts[0].cancellation.scope == "host"
    [record] = tool_records(memory_runtime)
    assert record.entry.outcome == "interrupted"
    assert "cancelled by its host" in record.entry.detail
    assert "kill switch" not in record.entry.detail


def cancelled_with_a_kill(runtime: Runtime, tmp_path: Path) -> tuple[Gate, Run]:
    """An async call that a kill and its host cancel together: the host's cancellation
    still propagates (``runtime`` is on in-memory kill switches)."""
    gate = Gate()
    run = start(runtime, charter_for(tmp_path, timeout=False), gate)
    pull = memory_kill(runtime, REASON)

    async def scenario() -> None:
        task = asyncio.create_task(run.call_tool("pay_async", {"amount": 5}))
        await asyncio.to_thread(gate.started.wait, NO_HANG)
        pull()
        KILL_WATCH.poll()  # the kill's cancellation is queued for the call's task...
        task.cancel()  # ...and the host cancels the whole run in the same breath
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(asyncio.wait_for(scenario(), NO_HANG))
    return gate, run


def test_an_outer_cancellation_at_the_same_time_as_a_kill_still_propagates(
    memory_runtime: Runtime, tmp_path: Path
) -> None:
    gate, _ = cancelled_with_a_kill(memory_runtime, tmp_path)
    assert gate.cancelled.is_set()
    # Recorded as the host's cancellation, the kill that landed with it noted.
    [record] = tool_records(memory_runtime)
    assert record.entry.outcome == "interrupted"
    assert "cancelled by its host" in record.entry.detail
    assert f"the kill switch ({SCOPE}) was pulled" in record.entry.detail


def test_a_killed_run_compensates_and_the_kill_does_not_interrupt_the_undo(
    memory_runtime: Runtime, tmp_path: Path
) -> None:
    gate, undo = Gate(), Undo()
    run = start(memory_runtime, charter_for(tmp_path, timeout=True), gate, undo)
    model = ScriptedModel([
        reply("noting", tool_call("note", text="hello")),
        reply("paying", tool_call("pay_async", amount=5)),
        reply("never reached"),
    ])  # fmt: skip
    killer = Killer(gate, memory_kill(memory_runtime, REASON))

    def poll_during_the_undo() -> None:
        assert undo.started.wait(NO_HANG), "the write was never compensated"
        KILL_WATCH.poll()  # what the watcher does every 50 ms, now, while the undo runs
        undo.release.set()

    undoer = threading.Thread(target=poll_during_the_undo, daemon=True)
    killer.start()
    undoer.start()
    result = asyncio.run(
        asyncio.wait_for(run_agent(run, model, "note then pay", price=None), NO_HANG)
    )
    killer.finish()
    undoer.join(NO_HANG)

    assert result.outcome == "killed"
    assert result.decision is not None
    assert result.decision.rule_id == f"kill-switch:{SCOPE}"
    assert [(c.tool, c.outcome) for c in result.tool_calls] == [
        ("note", "executed"),
        ("pay_async", "interrupted"),
        ("unnote", "executed"),
    ]
    assert undo.undone == ["hello"]
    assert not undo.contexts[0].cancelled  # an undo is what a kill wants: never interrupted
    finished = [r for r in memory_runtime.audit.records() if r.entry.kind == "run_finished"]
    assert [r.entry.outcome for r in finished] == ["killed"]
    # The interrupted payment had started: its fee is charged, and counted as a tool fee,
    # not as model cost (this model is unpriced).
    row = memory_runtime.runs.get(run.id)
    assert (row.cost_usd, row.tool_fees_usd, row.model_cost_usd) == (
        Decimal("0.05"),
        Decimal("0.05"),
        Decimal(0),
    )


def test_a_replay_of_an_interrupted_run_does_not_call_the_tool_again(
    memory_runtime: Runtime, tmp_path: Path
) -> None:
    gate = Gate()
    charter = charter_for(tmp_path, timeout=False)
    model = [reply("paying", tool_call("pay_async", amount=5)), reply("never reached")]
    recording = RecordingSteps()
    run = start(memory_runtime, charter, gate)
    killer = Killer(gate, memory_kill(memory_runtime, REASON))
    killer.start()
    first = asyncio.run(
        asyncio.wait_for(
            run_agent(run, ScriptedModel(list(model)), "pay", price=None, steps=recording),
            NO_HANG,
        )
    )
    killer.finish()
    records_before = len(list(memory_runtime.audit.records()))

    again = memory_runtime.start_run(charter, Principal("alice", "acme"), resources=(gate,),
                                     run_id=run.id)  # fmt: skip
    replay = ReplayingSteps(list(recording.records))
    second = asyncio.run(
        run_agent(again, ScriptedModel(list(model)), "pay", price=None, steps=replay)
    )

    assert first.outcome == second.outcome == "killed"
    assert [(c.tool, c.outcome) for c in second.tool_calls] == [("pay_async", "interrupted")]
    assert second.cost_usd == first.cost_usd == Decimal("0.05")
    assert gate.calls == 1  # the replay took the recorded interruption, it did not pay again
    assert len(list(memory_runtime.audit.records())) == records_before


def test_a_deferred_effect_is_not_sent_once_a_kill_lands(
    memory_runtime: Runtime, tmp_path: Path
) -> None:
    charter = write_charter(
        tmp_path,
        """\
        tools:
          note: {effect: write, defer: until_run_succeeds}
        """,
        tools=[note],
    )
    switches = memory_runtime.kill_switches
    assert isinstance(switches, KillSwitches)

    def kill_then_finish(_messages: object) -> object:
        # The run has decided its outbox and now ends; the operator pulls the switch.
        switches.kill(SCOPE, "stop everything")
        return reply("all done")

    model = ScriptedModel(
        [reply("noting", tool_call("note", text="hello")), kill_then_finish]  # type: ignore[list-item]
    )
    run = start(memory_runtime, charter)
    result = asyncio.run(run_agent(run, model, "note it", price=None))

    assert result.outcome == "killed"  # what stopped it (test_effect_kills.py has more)
    assert SCOPE in result.reason
    outcomes = [(c.tool, c.outcome) for c in result.tool_calls]
    assert outcomes == [("note", "deferred"), ("note", "killed")]
