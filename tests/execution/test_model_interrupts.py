"""A model call in flight is stopped by a kill, by its host, or by the run's time, and charged
its reserved worst case: the request reached the provider, which may finish and bill it, and
what it used is unknown. ``ModelCalled`` says it gave no reply and why.

Kills are pulled from another thread while the model waits; every wait is on an event,
bounded only by a generous no-hang limit.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from charter.contract.loader import Charter
from charter.contract.tool import tool
from charter.core.events import Event, ModelCalled, RunFinished
from charter.execution.agent import RunResult, run_agent
from charter.execution.kill_switch import KillSwitches
from charter.execution.kill_watch import KILL_WATCH
from charter.execution.model import Message, ModelResponse
from charter.execution.run import Run
from charter.identity.principal import Principal
from charter.policy.pricing import ModelPrice
from charter.runtime import Runtime
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.harness import (
    SCOPE,
    make_traced,
    memory_kill,
    other_process_kill,
    write_charter,
)
from tests.execution.test_steps import RecordingSteps, ReplayingSteps

REASON = "runaway prompt"
NO_HANG = 20.0
MAX_OUTPUT = 64  # write_charter's max_output_tokens
PRICE = ModelPrice("openai", "gpt-4o-mini", Decimal("0.000001"), Decimal("0.000004"))


class Hangs:
    """A model whose call never answers until it is cancelled (a provider that is stuck)."""

    provider = "openai"
    name = "gpt-4o-mini"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.calls = 0

    async def chat(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], *,
        max_output_tokens: int,
    ) -> ModelResponse:  # fmt: skip
        self.calls += 1
        self.started.set()
        try:
            await asyncio.Event().wait()  # no one sets it: only a cancellation ends the wait
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("unreachable")  # pragma: no cover


class Events:
    def __init__(self, runtime: Runtime) -> None:
        self.seen: list[Event] = []
        runtime.services.bus.subscribe(self.seen.append)

    def model_calls(self) -> list[ModelCalled]:
        return [e for e in self.seen if isinstance(e, ModelCalled)]

    def finished(self) -> list[RunFinished]:
        return [e for e in self.seen if isinstance(e, RunFinished)]


@tool
def lookup(key: str) -> str:
    """Look something up (never called: the model never gets that far).

    Args:
        key: what.
    """
    return key


def charter(tmp_path: Path, budgets: str = "") -> Charter:
    return write_charter(
        tmp_path, f"tools: {{lookup: {{effect: read}}}}\n{budgets}", tools=[lookup]
    )


def start(runtime: Runtime, tmp_path: Path, budgets: str = "") -> Run:
    return runtime.start_run(charter(tmp_path, budgets), Principal("alice", "acme"))


def kill_once_started(model: Hangs, pull: Any) -> threading.Thread:
    def go() -> None:
        if model.started.wait(NO_HANG):
            pull()

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def drive(run: Run, model: Any, *, steps: Any = None) -> RunResult:
    return asyncio.run(
        asyncio.wait_for(run_agent(run, model, "hello", price=PRICE, steps=steps), NO_HANG)
    )


def killed_in_flight(
    runtime: Runtime, tmp_path: Path, pull: Any, *, steps: Any = None
) -> tuple[Run, Hangs, RunResult]:
    """A run whose model call hangs until ``pull`` (a kill) is pulled, once the call started."""
    run = start(runtime, tmp_path)
    model = Hangs()
    killer = kill_once_started(model, pull)
    result = drive(run, model, steps=steps)
    killer.join(NO_HANG)
    return run, model, result


def worst_case(model_call: ModelCalled) -> tuple[int, Decimal]:
    """The call's reserved worst case: its estimated prompt and the charter's output limit."""
    assert model_call.output_tokens == MAX_OUTPUT
    tokens = model_call.input_tokens + MAX_OUTPUT
    return tokens, PRICE.cost(model_call.input_tokens, MAX_OUTPUT)


def assert_killed_and_charged(
    runtime: Runtime, run: Run, result: RunResult, events: Events
) -> None:
    assert result.outcome == "killed"
    assert result.decision is not None
    assert result.decision.rule_id == f"kill-switch:{SCOPE}"
    assert REASON in result.reason
    [called] = events.model_calls()
    assert f"the kill switch ({SCOPE}) stopped the model call" in called.error
    assert REASON in called.error
    tokens, usd = worst_case(called)
    assert called.cost_usd == str(usd)
    assert (result.total_tokens, result.cost_usd) == (tokens, usd)
    assert usd > 0
    run.ledger.snapshot()  # raises while a reservation is outstanding
    [finished] = events.finished()
    assert finished.outcome == "killed"
    assert finished.totals["model_calls"] == 1  # it was made, though it never answered
    assert finished.totals["cost_usd"] == str(usd)


def test_a_kill_in_this_process_stops_a_model_call_in_flight(
    memory_runtime: Runtime, tmp_path: Path
) -> None:
    events = Events(memory_runtime)
    pull = memory_kill(memory_runtime, REASON)

    run, model, result = killed_in_flight(memory_runtime, tmp_path, pull)

    assert model.cancelled.is_set()  # the provider call was cancelled, not left running
    assert model.calls == 1
    assert_killed_and_charged(memory_runtime, run, result, events)


def test_a_kill_from_another_process_stops_a_model_call_in_flight(
    store_runtime: Runtime, tmp_path: Path
) -> None:
    events = Events(store_runtime)
    pull = other_process_kill(store_runtime, REASON)

    run, model, result = killed_in_flight(store_runtime, tmp_path, pull)

    assert model.cancelled.is_set()
    assert_killed_and_charged(store_runtime, run, result, events)
    rows = [r.entry for r in store_runtime.audit.records() if r.entry.kind == "run_finished"]
    assert [(r.outcome, r.rule_id) for r in rows] == [("killed", f"kill-switch:{SCOPE}")]


def test_a_kill_of_another_charter_does_not_stop_the_model_call(
    memory_runtime: Runtime, tmp_path: Path
) -> None:
    switches = memory_runtime.kill_switches
    assert isinstance(switches, KillSwitches)
    run = start(memory_runtime, tmp_path)
    model = Hangs()

    async def scenario() -> None:
        task = asyncio.create_task(run_agent(run, model, "hello", price=PRICE))
        await asyncio.to_thread(model.started.wait, NO_HANG)
        switches.kill("charter:someone-else", "not yours")
        switches.kill("tenant:other-tenant", "not yours either")
        assert KILL_WATCH.poll() == 0  # nothing in flight is covered
        assert not model.cancelled.is_set()
        task.cancel()  # end the test's stuck call the host's way
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(scenario(), NO_HANG))


def test_a_host_cancelling_the_run_mid_model_call_is_charged_and_propagates(
    memory_runtime: Runtime, tmp_path: Path
) -> None:
    events = Events(memory_runtime)
    run = start(memory_runtime, tmp_path)
    model = Hangs()

    async def scenario() -> None:
        task = asyncio.create_task(run_agent(run, model, "hello", price=PRICE))
        await asyncio.to_thread(model.started.wait, NO_HANG)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(asyncio.wait_for(scenario(), NO_HANG))
    assert model.cancelled.is_set()
    [called] = events.model_calls()
    assert "cancelled by its host" in called.error
    tokens, usd = worst_case(called)
    totals = run.ledger.totals()
    assert (totals.total_tokens, totals.cost_usd) == (tokens, usd)
    run.ledger.snapshot()  # nothing left reserved
    assert events.finished() == []  # the host stopped the run: it did not end


def test_a_model_call_that_runs_out_of_the_runs_time_is_charged(
    memory_runtime: Runtime, tmp_path: Path
) -> None:
    events = Events(memory_runtime)
    # Real seconds: the fake clock does not move, so the run has all of its 0.2 s left when
    # the call starts, and the event loop's own clock ends the wait.
    run = start(memory_runtime, tmp_path, "budgets: {timeouts: {overall_seconds: 0.2}}\n")
    model = Hangs()

    result = drive(run, model)

    assert result.outcome == "budget_exceeded"
    assert "ran out of time waiting for the model" in result.reason
    assert model.cancelled.is_set()
    [called] = events.model_calls()
    assert "ran out of time" in called.error
    tokens, usd = worst_case(called)
    assert (result.total_tokens, result.cost_usd) == (tokens, usd)


class RaisesTimeout:
    """A provider client that raises its own TimeoutError (a read timeout), at once."""

    provider = "openai"
    name = "gpt-4o-mini"

    async def chat(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], *,
        max_output_tokens: int,
    ) -> ModelResponse:  # fmt: skip
        raise TimeoutError("read timed out")


def test_a_models_own_timeout_error_is_a_failed_call_not_the_runs_time(
    memory_runtime: Runtime, tmp_path: Path
) -> None:
    events = Events(memory_runtime)
    run = start(memory_runtime, tmp_path, "budgets: {timeouts: {overall_seconds: 600}}\n")

    result = drive(run, RaisesTimeout())

    assert result.outcome == "failed"
    assert result.reason == "model call failed: TimeoutError: read timed out"
    # The provider answered with an error: nothing was generated, nothing is charged.
    assert (result.total_tokens, result.cost_usd) == (0, Decimal(0))
    assert events.model_calls() == []


def test_a_replay_of_a_killed_model_turn_does_not_call_the_model_again(
    memory_runtime: Runtime, tmp_path: Path
) -> None:
    recording = RecordingSteps()
    pull = memory_kill(memory_runtime, REASON)
    run, model, first = killed_in_flight(memory_runtime, tmp_path, pull, steps=recording)

    again = memory_runtime.start_run(run.charter, Principal("alice", "acme"), run_id=run.id)
    second = drive(again, model, steps=ReplayingSteps(list(recording.records)))

    assert first.outcome == second.outcome == "killed"
    assert (second.total_tokens, second.cost_usd) == (first.total_tokens, first.cost_usd)
    assert model.calls == 1


def test_the_chat_span_of_a_killed_model_call_is_an_error_saying_why(tmp_path: Path) -> None:
    traced = make_traced(tmp_path)
    with traced.runtime as runtime:
        _, _, result = killed_in_flight(runtime, tmp_path, memory_kill(runtime, REASON))
        spans = traced.spans()

    assert result.outcome == "killed"
    [chat] = [s for s in spans if s.name.startswith("chat ")]
    assert chat.status.status_code is StatusCode.ERROR
    assert chat.status.description is not None
    assert f"the kill switch ({SCOPE}) stopped the model call" in chat.status.description
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.usage.output_tokens"] == MAX_OUTPUT  # the worst case charged


def test_a_run_recorded_before_calls_were_counted_reports_its_replies(
    memory_runtime: Runtime, tmp_path: Path
) -> None:
    """An older version's durable records keep no count of model calls: a replay counts the
    replies, which every call that answered gave."""
    events = Events(memory_runtime)
    run = start(memory_runtime, tmp_path)
    turns = [reply("", tool_call("lookup", key="a")), reply("done")]
    recording = RecordingSteps()
    drive(run, ScriptedModel(list(turns)), steps=recording)
    old = []
    for name, record in recording.records:
        data = json.loads(record)
        del data["snapshot"]["model_calls"]
        old.append((name, json.dumps(data)))

    again = memory_runtime.start_run(run.charter, Principal("alice", "acme"), run_id=run.id)
    result = drive(again, ScriptedModel(list(turns)), steps=ReplayingSteps(old))

    assert result.outcome == "succeeded"
    assert again.model_calls == 0  # nothing recorded it
    assert result.model_calls == 2
    assert [f.totals["model_calls"] for f in events.finished()] == [2]  # the recorded run's
