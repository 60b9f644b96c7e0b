"""Every deferred send, discard and compensation has its own audit record, whatever ids the
model gave its calls: their event ids come from the run's steps, never from model text."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from charter import Charter, Principal, Runtime, ToolContext, tool
from charter.execution.agent import RunResult, run_agent
from charter.execution.approvals import ApprovalRequest
from charter.execution.run import Run
from charter.execution.steps import ApprovalOutcome, Work
from charter.observability.audit import AuditEntry
from charter.observability.audit_reader import call_phase
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.test_effects import effects_charter, effects_text, forbidden
from tests.execution.test_steps import RecordingSteps


@dataclass
class Desk:
    events: list[str] = field(default_factory=list)


@tool
def write_row(row_id: str, *, ctx: ToolContext) -> str:
    """Write a row.

    Args:
        row_id: which row.
    """
    ctx.resource(Desk).events.append(f"write {row_id}")
    return "ok"


@tool
def undo_row(row_id: str, *, ctx: ToolContext) -> str:
    """Undo a row write.

    Args:
        row_id: which row.
    """
    ctx.resource(Desk).events.append(f"undo {row_id}")
    return "ok"


@tool
def send_email(to: str, *, ctx: ToolContext) -> str:
    """Send an e-mail.

    Args:
        to: to whom.
    """
    ctx.resource(Desk).events.append(f"send {to} key={ctx.idempotency_key}")
    return "sent"


CHARTER = effects_text(
    "  undo_row: {effect: write}\n  send_email: {effect: irreversible, defer: until_run_succeeds}\n"
)
# The scripted model's default id is call_<tool>: the same id on both turns, as a real model
# may reuse one.
TWO_SENDS = (
    reply("", tool_call("send_email", to="a@example.com")),
    reply("", tool_call("send_email", to="b@example.com")),
    reply("done"),
)
# Two writes and two sends all under one id, then a call policy denies: the sends are
# discarded and the writes compensated.
ONE_ID_THEN_DENIED = (
    reply("", tool_call("write_row", "same", row_id="r1")),
    reply("", tool_call("send_email", "same", to="a@example.com")),
    reply("", tool_call("write_row", "same", row_id="r2")),
    reply("", tool_call("send_email", "same", to="b@example.com")),
    reply("", tool_call("forbidden", "same", reason="x")),
)


def records_charter(tmp_path: Path) -> Charter:
    return effects_charter(tmp_path, CHARTER, [write_row, undo_row, send_email, forbidden])


@pytest.fixture
def charter(tmp_path: Path) -> Charter:
    return records_charter(tmp_path)


def start(runtime: Runtime, charter: Charter, desk: Desk) -> Run:
    return runtime.start_run(charter, Principal("alice", "acme"), resources=(desk,))


def drive(run: Run, *turns: Any, steps: Any = None) -> RunResult:
    return asyncio.run(run_agent(run, ScriptedModel(list(turns)), "go", price=None, steps=steps))


def records(runtime: Runtime, run_id: str) -> list[AuditEntry]:
    return [
        r.entry
        for r in runtime.audit.records("acme")
        if r.entry.run_id == run_id and r.entry.kind == "tool_call"
    ]


def test_two_sends_with_the_models_default_ids_are_both_recorded(
    runtime: Runtime, charter: Charter
) -> None:
    desk = Desk()
    run = start(runtime, charter, desk)
    result = drive(run, *TWO_SENDS)

    assert result.outcome == "succeeded"
    assert desk.events == [
        f"send a@example.com key={run.id}:1",
        f"send b@example.com key={run.id}:2",
    ]
    sent = [(e.outcome, e.arguments) for e in records(runtime, run.id)]
    assert sent == [
        ("deferred", {"to": "a@example.com"}),
        ("deferred", {"to": "b@example.com"}),
        ("executed", {"to": "a@example.com"}),
        ("executed", {"to": "b@example.com"}),
    ]
    # Named by the step that decided each send, not by the model's id.
    assert [e.event_id for e in records(runtime, run.id)][2:] == [
        f"{run.id}/send/1/executed",
        f"{run.id}/send/2/executed",
    ]
    assert runtime.audit.verify().ok


def test_two_discards_and_two_compensations_with_one_model_id_are_all_recorded(
    runtime: Runtime, charter: Charter
) -> None:
    desk = Desk()
    run = start(runtime, charter, desk)
    result = drive(run, *ONE_ID_THEN_DENIED)

    assert result.outcome == "denied"
    assert desk.events == ["write r1", "write r2", "undo r2", "undo r1"]
    settled = [
        (call_phase({"event_id": e.event_id, "outcome": e.outcome}), e.tool, e.arguments)
        for e in records(runtime, run.id)
        if e.outcome in ("discarded",) or e.tool == "undo_row"
    ]
    assert settled == [
        ("discard", "send_email", {"to": "a@example.com"}),
        ("discard", "send_email", {"to": "b@example.com"}),
        ("compensate", "undo_row", {"row_id": "r2"}),
        ("compensate", "undo_row", {"row_id": "r1"}),
    ]
    # Each names the step of the call it settles (the writes were steps 1 and 3).
    assert [e.event_id for e in records(runtime, run.id) if e.tool == "undo_row"] == [
        f"{run.id}/compensate/3/executed",
        f"{run.id}/compensate/1/executed",
    ]


@pytest.mark.parametrize("call_id", ["x/send/1", "../finished", "c1", "é" * 200, "a\nb"])
def test_a_model_id_never_shapes_an_event_id(
    runtime: Runtime, charter: Charter, call_id: str
) -> None:
    desk = Desk()
    run = start(runtime, charter, desk)
    result = drive(
        run,
        reply("", tool_call("send_email", "c1", to="a@example.com")),
        reply("", tool_call("send_email", call_id, to="b@example.com")),
        reply("done"),
    )

    assert result.outcome == "succeeded"
    entries = records(runtime, run.id)
    assert [e.outcome for e in entries] == ["deferred", "deferred", "executed", "executed"]
    for entry in entries:
        assert entry.event_id is not None
        assert entry.event_id.startswith(f"{run.id}/")
        assert entry.event_id.split("/")[2].isdigit()  # the step, nothing the model wrote
    assert [call_phase({"event_id": e.event_id, "outcome": e.outcome}) for e in entries] == [
        "call",
        "call",
        "send",
        "send",
    ]


@dataclass
class CrashBeforeSettling:
    """Replays the recorded steps up to the settling, then runs live: a worker that died
    while it settled the run's effects, recovered by another."""

    records: list[tuple[str, str]]
    can_wait = True

    async def step(self, run: Run, name: str, work: Work) -> dict[str, Any]:
        if self.records and self.records[0][0] == name and name not in _LIVE:
            _, record = self.records.pop(0)
            stored = json.loads(record)
            run.restore(stored["snapshot"])
            return dict(stored["out"])
        return await work()

    async def await_approval(self, run: Run, request: ApprovalRequest) -> ApprovalOutcome | None:
        return None


_LIVE = frozenset({"settle_effects", "run_finished"})


def test_settling_again_after_a_crash_names_the_same_records(
    runtime: Runtime, charter: Charter
) -> None:
    desk = Desk()
    turns = [
        reply("", tool_call("write_row", row_id="r1")),
        reply("", tool_call("send_email", to="a@example.com")),
        reply("", tool_call("send_email", to="b@example.com")),
        reply("done"),
    ]
    recording = RecordingSteps()
    run = start(runtime, charter, desk)
    first = drive(run, *turns, steps=recording)
    before = [e.event_id for e in records(runtime, run.id)]

    again = runtime.start_run(charter, Principal("alice", "acme"), resources=(desk,), run_id=run.id)
    second = drive(again, *turns, steps=CrashBeforeSettling(list(recording.records)))

    assert first.outcome == second.outcome == "succeeded"
    # The sends went out again under the keys they were decided with (the receiver dedupes)...
    assert desk.events[-2:] == desk.events[1:3]
    # ...and their records are the same facts under the same ids: nothing new, nothing lost.
    assert [e.event_id for e in records(runtime, run.id)] == before
    assert before[-2:] == [f"{run.id}/send/2/executed", f"{run.id}/send/3/executed"]


def test_effects_recorded_before_steps_were_kept_settle_under_their_keys_step(
    runtime: Runtime, charter: Charter
) -> None:
    """A durable run recorded by an older version kept no step with its effects: the step is
    the one its idempotency key (``run:step``) names."""
    desk = Desk()
    run = start(runtime, charter, desk)
    drive(run, reply("", tool_call("send_email", to="a@example.com")))  # stops: no more turns
    snapshot = run.snapshot()
    snapshot["effects"]["settled"] = False
    snapshot["effects"]["deferred"] = [
        {  # no "step": as an older version recorded it
            "call_id": "call_send_email",
            "tool": "send_email",
            "canonical_arguments": {"to": "old@example.com"},
            "arguments_sha256": "0" * 64,
            "idempotency_key": f"{run.id}:7",
            "decision": run.results[0].decision.as_dict(),
        }
    ]
    again = runtime.start_run(charter, Principal("alice", "acme"), resources=(desk,), run_id=run.id)
    again.restore(snapshot)
    asyncio.run(again.settle_effects(succeeded=True))
    assert desk.events[-1] == f"send old@example.com key={run.id}:7"
    assert records(runtime, run.id)[-1].event_id == f"{run.id}/send/7/executed"
