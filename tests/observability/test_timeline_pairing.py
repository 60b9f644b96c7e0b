"""The run timeline pairs each deferred call with its send or discard, and each write with
its compensation, by the run's step: never by the tool-call id the model wrote, which a
model may reuse (the scripted model's default ``call_<tool>`` repeats on every turn).

Records written before the step named them (an event id carrying the model's id, or no
event id at all) are shown unpaired rather than paired with a call that merely has the
same number.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from charter import Charter, Principal, Runtime
from charter.cli import runs
from charter.core.canonical import sha256_hex
from charter.execution.agent import RunResult, run_agent
from charter.observability.audit import AuditEntry, AuditLog
from charter.observability.audit_reader import call_step
from charter.observability.timeline import TimelineReader
from charter.storage import Database
from charter.testing import FakeClock, ScriptedModel
from tests.execution.harness import runtime_fixture
from tests.execution.test_effect_records import (
    ONE_ID_THEN_DENIED,
    TWO_SENDS,
    Desk,
    records_charter,
)
from tests.observability.test_timeline import T0, tool_steps
from tests.observability.test_timeline_fees import timeline


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def charter(tmp_path: Path) -> Charter:
    return records_charter(tmp_path)


runtime = runtime_fixture(start=T0)  # its home is ``home``


def drive(runtime: Runtime, charter: Charter, *turns: Any) -> RunResult:
    run = runtime.start_run(charter, Principal("alice", "acme"), resources=(Desk(),))
    return asyncio.run(run_agent(run, ScriptedModel(list(turns)), "go", price=None))


def shown(home: Path, run_id: str, *args: str, code: int | None = None) -> str:
    cli = typer.Typer()
    cli.add_typer(runs.app, name="runs")
    result = CliRunner().invoke(
        cli, ["runs", "show", run_id, *args], env={"CHARTER_HOME": str(home), "COLUMNS": "200"}
    )
    assert result.exit_code in ((0, 1) if code is None else (code,)), result.stdout
    return result.stdout


def test_two_sends_with_one_model_id_each_pair_with_their_own_deferred_call(
    runtime: Runtime, charter: Charter, home: Path
) -> None:
    result = drive(runtime, charter, *TWO_SENDS)
    assert result.outcome == "succeeded"
    assert {c.call_id for c in result.tool_calls} == {"call_send_email"}  # one id for all

    t = timeline(runtime, result.run_id)
    calls = tool_steps(t)
    assert [(c.phase, c.outcome, c.step, (c.arguments or {})["to"]) for c in calls] == [
        ("call", "deferred", 1, "a@example.com"),
        ("call", "deferred", 2, "b@example.com"),
        ("send", "executed", 1, "a@example.com"),
        ("send", "executed", 2, "b@example.com"),
    ]
    first, second, sent_first, sent_second = calls
    assert t.settlements(first) == (sent_first,)
    assert t.settlements(second) == (sent_second,)
    assert t.settled_call(sent_first) is first
    assert t.settled_call(sent_second) is second
    assert t.settlements(sent_first) == ()  # a send settles nothing itself

    as_json = json.loads(shown(home, result.run_id, "--json"))
    steps = [s for s in as_json["steps"] if s["kind"] == "tool_call"]
    assert [(s["phase"], s["step"], s["arguments"]["to"]) for s in steps] == [
        ("call", 1, "a@example.com"),
        ("call", 2, "b@example.com"),
        ("send", 1, "a@example.com"),
        ("send", 2, "b@example.com"),
    ]

    lines = shown(home, result.run_id).splitlines()
    labels = [line for line in lines if '{"to": ' in line]
    assert len(labels) == 4
    for label, shows in zip(
        labels,
        ["tool send_email #1", "tool send_email #2", "send (deferred) send_email #1",
         "send (deferred) send_email #2"],
        strict=True,
    ):  # fmt: skip
        assert shows in label
    assert [("a@example.com" in label, "b@example.com" in label) for label in labels] == [
        (True, False), (False, True), (True, False), (False, True),
    ]  # fmt: skip
    # Under each deferred call: what became of it, its own send, not the other one's.
    fates = [line.split("sent as ", 1)[1] for line in lines if "sent as #" in line]
    assert [fate.split(" at ")[0] for fate in fates] == ["#1", "#2"]
    assert all(fate.endswith("-> executed") for fate in fates)
    assert sum("of the deferred call send_email #1" in line for line in lines) == 1
    assert sum("of the deferred call send_email #2" in line for line in lines) == 1
    assert not any("queued: runs only once" in line for line in lines)


def test_discards_and_compensations_with_one_model_id_pair_by_step(
    runtime: Runtime, charter: Charter, home: Path
) -> None:
    result = drive(runtime, charter, *ONE_ID_THEN_DENIED)
    assert result.outcome == "denied"

    t = timeline(runtime, result.run_id)
    calls = tool_steps(t)
    assert [(c.phase, c.tool, c.step) for c in calls] == [
        ("call", "write_row", 1),
        ("call", "send_email", 2),
        ("call", "write_row", 3),
        ("call", "send_email", 4),
        ("call", "forbidden", 5),
        ("discard", "send_email", 2),
        ("discard", "send_email", 4),
        ("compensate", "undo_row", 3),
        ("compensate", "undo_row", 1),
    ]
    w1, s2, w3, s4, denied, d2, d4, u3, u1 = calls
    assert (t.settlements(w1), t.settlements(w3)) == ((u1,), (u3,))
    assert (t.settlements(s2), t.settlements(s4)) == ((d2,), (d4,))
    assert t.settlements(denied) == ()
    assert (t.settled_call(u1), t.settled_call(d4)) == (w1, s4)
    assert (u1.arguments, u3.arguments) == ({"row_id": "r1"}, {"row_id": "r2"})

    text = shown(home, result.run_id)
    assert "compensate undo_row #3" in text
    assert "compensate undo_row #1" in text
    for shows in ("discarded as #2", "discarded as #4", "taken back as #1", "taken back as #3",
                  "takes back write_row #1", "takes back write_row #3"):  # fmt: skip
        assert shows in text


# Records as a version before the run's step named its effects wrote them.
RUN = "run_legacy0000000000000000000000001"


def _record(*, tool: str, outcome: str, event_id: str | None, arguments: dict[str, Any],
            rule_id: str, at: datetime, reason: str = "r") -> AuditEntry:  # fmt: skip
    return AuditEntry(
        kind="tool_call", at=at, tenant="acme", user="alice", service_principal="",
        roles=(), environment="dev", run_id=RUN, charter_name="effects",
        charter_sha256="0" * 64, model="scripted", prompt_sha256="0" * 64, tool=tool,
        arguments=arguments, arguments_sha256=sha256_hex(json.dumps(arguments)),
        verdict="allow", reason=reason, rule_id=rule_id, stage="execute", outcome=outcome,
        trace_id="", span_id="",
        event_id=event_id,
    )  # fmt: skip


def test_records_named_by_the_models_id_are_never_paired_by_its_number(home: Path) -> None:
    database = Database(f"sqlite:///{home / 'charter.sqlite3'}")
    log = AuditLog(database)
    a, b = {"to": "a@example.com"}, {"to": "b@example.com"}
    rule = "tools.send_email"
    try:
        for i, entry in enumerate([
            _record(tool="send_email", outcome="deferred", event_id=f"{RUN}/call/1/deferred",
                    arguments=a, rule_id=rule, at=T0),
            _record(tool="send_email", outcome="deferred", event_id=f"{RUN}/call/2/deferred",
                    arguments=b, rule_id=rule, at=T0),
            # The model called a's send "2": the old event id names that, not step 2.
            _record(tool="send_email", outcome="executed", event_id=f"{RUN}/send/2/executed",
                    arguments=a, rule_id=rule, at=T0),
            # An id with a slash in it, and a record from before event ids existed.
            _record(tool="send_email", outcome="executed", event_id=f"{RUN}/send/x/1/executed",
                    arguments=b, rule_id=rule, at=T0),
            _record(tool="send_email", outcome="executed", event_id=None, arguments=b,
                    rule_id=rule, at=T0, reason="sent after the run succeeded: ok"),
        ]):  # fmt: skip
            log.append(replace(entry, at=T0 + timedelta(milliseconds=i)))
    finally:
        log.close()
    try:
        t = TimelineReader(database, FakeClock(T0)).find(RUN)
    finally:
        database.dispose()
    assert t is not None
    calls = tool_steps(t)
    assert [(c.phase, c.step) for c in calls] == [
        ("call", 1),
        ("call", 2),
        ("send", None),  # "2" is not the step of a call it could settle: not paired
        ("send", None),
        ("send", None),
    ]
    assert all(t.settlements(c) == () for c in calls)
    assert all(t.settled_call(c) is None for c in calls)

    text = shown(home, RUN, code=3)  # no run_finished record: not ended
    sends = [line for line in text.splitlines() if "send (deferred) send_email" in line]
    assert len(sends) == 3
    assert not any("#" in line for line in sends)
    assert text.count("not paired with a call") == 3
    assert text.count("queued: runs only once the whole run has succeeded") == 2


@pytest.mark.parametrize(
    ("event_id", "step"),
    [
        (f"{RUN}/call/3/executed", 3),
        (f"{RUN}/send/12/executed", 12),
        (f"{RUN}/call/3", 3),  # a call's id before the outcome was appended to it
        (f"{RUN}/send/0/executed", None),  # steps count from 1
        (f"{RUN}/send/03/executed", None),
        (f"{RUN}/send/+3/executed", None),
        (f"{RUN}/send/\u0663/executed", None),  # an Arabic-Indic three is not a step
        (f"{RUN}/send/call_send_email/executed", None),
        (f"{RUN}/send/a/3/executed", None),
        ("other_run/send/3/executed", None),
        (f"{RUN}/finished", None),
        ("", None),
        (None, None),
    ],
)
def test_the_step_is_read_only_from_an_event_id_in_the_runs_own_form(
    event_id: str | None, step: int | None
) -> None:
    assert call_step({"run_id": RUN, "event_id": event_id, "outcome": "executed"}) == step
