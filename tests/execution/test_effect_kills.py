"""A kill that stops a run's deferred sends ends the run ``killed``, not ``failed``: the
outcome says what stopped it, whether the kill refused a send or interrupted one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from charter.contract.loader import Charter
from charter.execution.agent import RunResult, run_agent
from charter.execution.kill_switch import KillSwitches
from charter.execution.run import Run
from charter.identity.principal import Principal
from charter.runtime import Runtime
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.harness import SCOPE, runtime_fixture, tool_records, write_charter
from tests.execution.test_kill_interrupts import NO_HANG, TOOLS, Gate, Killer, Undo
from tests.execution.test_steps import RecordingSteps, ReplayingSteps

REASON = "stop everything"


runtime = runtime_fixture()


def charter(tmp_path: Path) -> Charter:
    return write_charter(
        tmp_path,
        """\
        tools:
          pay_async: {effect: irreversible, defer: until_run_succeeds, fee_usd: 0.05}
          pay_ignoring: {effect: irreversible, defer: until_run_succeeds, fee_usd: 0.05}
          note: {effect: write, compensate: unnote}
          unnote: {effect: write}
        """,
        tools=TOOLS,
    )


def switches(runtime: Runtime) -> KillSwitches:
    found = runtime.kill_switches
    assert isinstance(found, KillSwitches)
    return found


def start(runtime: Runtime, tmp_path: Path, *resources: object) -> Run:
    return runtime.start_run(charter(tmp_path), Principal("alice", "acme"), resources=resources)


def drive(run: Run, model: ScriptedModel, steps: Any = None) -> RunResult:
    return asyncio.run(
        asyncio.wait_for(run_agent(run, model, "go", price=None, steps=steps), NO_HANG)
    )


def assert_killed(runtime: Runtime, result: RunResult) -> None:
    assert result.outcome == "killed"
    assert result.decision is not None
    assert result.decision.rule_id == f"kill-switch:{SCOPE}"
    assert result.decision.stage.value == "kill_switch"
    assert REASON in result.reason
    finished = [r.entry for r in runtime.audit.records() if r.entry.kind == "run_finished"]
    assert [(f.outcome, f.rule_id) for f in finished] == [("killed", f"kill-switch:{SCOPE}")]


def test_a_kill_before_the_outbox_is_sent_ends_the_run_killed(
    runtime: Runtime, tmp_path: Path
) -> None:
    gate = Gate()
    undo = _undo()

    def kill_then_finish(_messages: object) -> object:
        switches(runtime).kill(SCOPE, REASON)
        return reply("all done")

    model = ScriptedModel([
        reply("", tool_call("note", "c1", text="hello")),
        reply("", tool_call("pay_async", "c2", amount=5)),
        reply("", tool_call("pay_async", "c3", amount=6)),
        kill_then_finish,  # type: ignore[list-item]
    ])  # fmt: skip
    run = start(runtime, tmp_path, gate, undo)
    result = drive(run, model)

    assert_killed(runtime, result)
    assert "deferred pay_async #2" in result.reason  # what the kill stopped (its step)
    assert gate.calls == 0  # nothing was paid
    assert [(c.tool, c.outcome) for c in result.tool_calls] == [
        ("note", "executed"),
        ("pay_async", "deferred"),
        ("pay_async", "deferred"),
        ("pay_async", "killed"),  # the send the kill refused
        ("pay_async", "discarded"),  # the one after it
        ("unnote", "executed"),  # the write taken back: the run did not succeed
    ]
    assert undo.undone == ["hello"]


def test_a_kill_interrupting_a_send_ends_the_run_killed(runtime: Runtime, tmp_path: Path) -> None:
    gate = Gate()
    undo = _undo()
    model = ScriptedModel([
        reply("", tool_call("note", "c1", text="hello")),
        reply("", tool_call("pay_async", "c2", amount=5)),
        reply("", tool_call("pay_async", "c3", amount=6)),
        reply("all done"),
    ])  # fmt: skip
    run = start(runtime, tmp_path, gate, undo)
    killer = Killer(gate, lambda: switches(runtime).kill(SCOPE, REASON))
    killer.start()
    result = drive(run, model)
    killer.finish()

    assert_killed(runtime, result)
    assert gate.cancelled.is_set()
    assert gate.paid == []
    assert [(c.tool, c.outcome) for c in result.tool_calls][3:] == [
        ("pay_async", "interrupted"),
        ("pay_async", "discarded"),
        ("unnote", "executed"),
    ]
    records = [r.entry for r in tool_records(runtime)]
    assert [r.outcome for r in records][3:] == ["interrupted", "discarded", "executed"]


def test_a_replayed_settlement_stopped_by_a_kill_ends_killed_again(
    runtime: Runtime, tmp_path: Path
) -> None:
    def kill_then_finish(_messages: object) -> object:
        switches(runtime).kill(SCOPE, REASON)
        return reply("all done")

    turns: list[Any] = [reply("", tool_call("pay_async", "c1", amount=5)), kill_then_finish]
    recording = RecordingSteps()
    run = start(runtime, tmp_path, Gate())
    first = drive(run, ScriptedModel(list(turns)), recording)
    again = runtime.start_run(run.charter, Principal("alice", "acme"), run_id=run.id)
    replay = ReplayingSteps(list(recording.records))
    second = drive(again, ScriptedModel(list(turns)), replay)

    assert first.outcome == second.outcome == "killed"
    assert first.reason == second.reason
    assert second.decision == first.decision


def test_a_send_that_fails_on_its_own_still_fails_the_run(runtime: Runtime, tmp_path: Path) -> None:
    """Only a kill makes a stopped send ``killed``: a tool's own error is a failure."""
    model = ScriptedModel([
        reply("", tool_call("pay_async", "c1", amount=5)),
        reply("all done"),
    ])  # fmt: skip
    run = start(runtime, tmp_path)  # no Gate given: the tool raises ResourceMissing
    result = drive(run, model)

    assert result.outcome == "failed"
    assert result.decision is not None
    assert result.decision.rule_id == "effects.send"


def _undo() -> Undo:
    undo = Undo()
    undo.release.set()  # the undo need not wait for anything here
    return undo
