"""A kill that lands while a durable run's tool runs: the call is interrupted, the run ends
killed and compensates, and the step records the interruption, so a replay repeats it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from dbos import DBOS

from charter.core.clock import SystemClock
from charter.durable import DurableEngine, RunSpec
from charter.execution.kill_store import KillSwitchStore
from charter.storage import Database
from tests.durable import kill_toolkit
from tests.durable.support import written_spec

NO_HANG = 30.0  # seconds; the kill reaches the call in ~50 ms, this only stops a hang

CHARTER = """\
charter: kill-durable
model: {provider: scripted, name: scripted, factory: "tests.durable.kill_toolkit:model"}
prompt: prompt.md
toolkit: [tests.durable.kill_toolkit]
tools:
  note: {effect: write, compensate: unnote}
  unnote: {effect: write}
  pay: {effect: irreversible, fee_usd: 0.25}
"""


def _spec(tmp_path: Path) -> RunSpec:
    return written_spec(
        tmp_path / "charter", CHARTER, prompt="Note, then pay.\n", task="Note it, then pay."
    )


def test_a_kill_interrupts_the_running_tool_of_a_durable_run(
    engine: DurableEngine, tmp_path: Path
) -> None:
    kill_toolkit.reset()
    spec = _spec(tmp_path)
    failures: list[BaseException] = []

    def operator() -> None:
        # Another process's view of the same database: its own store and connection.
        try:
            assert kill_toolkit.PAY_STARTED.wait(NO_HANG), "the payment never started"
            database = Database(engine.runtime.settings.database)
            try:
                with KillSwitchStore(database, SystemClock()) as store:
                    store.kill("charter:kill-durable", "provider outage", by="oncall")
            finally:
                database.dispose()
        except BaseException as exc:  # reported below
            failures.append(exc)

    thread = threading.Thread(target=operator, daemon=True)
    thread.start()
    result = asyncio.run(asyncio.wait_for(engine.run(spec, run_id="run_kill_durable"), NO_HANG))
    thread.join(NO_HANG)
    assert failures == []

    assert result["outcome"] == "killed"
    assert result["decision"]["rule_id"] == "kill-switch:charter:kill-durable"
    calls = [(c["tool"], c["outcome"]) for c in result["tool_calls"]]
    assert calls == [("note", "executed"), ("pay", "interrupted"), ("unnote", "executed")]
    assert kill_toolkit.PAY_CALLS == ["run_kill_durable:2"]
    assert kill_toolkit.UNDONE == ["refund promised"]  # the killed run took its write back
    assert result["cost_usd"] == "0.25"  # the payment had started: charged

    runtime = engine.runtime
    records = [r.entry for r in runtime.audit.records("acme") if r.entry.kind == "tool_call"]
    assert [(e.tool, e.outcome) for e in records] == calls
    assert runtime.audit.verify().ok

    # What a replay after a crash reads back: the tool step recorded the kill, so the
    # recovered run raises it again from the record instead of paying again.
    steps = DBOS.list_workflow_steps("run_kill_durable")
    outputs = [s["output"] for s in steps if isinstance(s["output"], dict)]
    [record] = [out for out in outputs if "killed" in out.get("out", {})]
    assert record["out"] == {
        "killed": {"scope": "charter:kill-durable", "reason": "provider outage"}
    }
    paid = record["snapshot"]["results"][-1]
    assert (paid["tool"], paid["outcome"]) == ("pay", "interrupted")
