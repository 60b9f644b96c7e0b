"""No half-done side effects: the outbox is sent only on success; writes are compensated."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.desk import SupportDesk

from charter import Charter, Principal, Runtime, ToolContext, tool
from charter.contract.loader import check_charter
from charter.contract.tool import ToolSpec
from charter.testing import ScriptedModel, reply, tool_call

from .harness import example_charter


class Ledger:
    """A tiny external system: what was written, undone and sent, in order."""

    def __init__(self, *, fail_sending: bool = False) -> None:
        self.events: list[str] = []
        self.fail_sending = fail_sending


@tool
def write_row(row_id: str, value: str, *, ctx: ToolContext) -> str:
    """Write a row.

    Args:
        row_id: which row.
        value: the new value.
    """
    ctx.resource(Ledger).events.append(f"write {row_id}={value}")
    return "ok"


@tool
def undo_row(row_id: str, *, ctx: ToolContext) -> str:
    """Undo a row write.

    Args:
        row_id: which row.
    """
    ctx.resource(Ledger).events.append(f"undo {row_id}")
    return "ok"


@tool
def notify(message: str, *, ctx: ToolContext) -> str:
    """Send a notification (irreversible).

    Args:
        message: what to say.
    """
    ledger = ctx.resource(Ledger)
    if ledger.fail_sending and message == "second":
        raise ConnectionError("mail relay down")
    ledger.events.append(f"notify {message} key={ctx.idempotency_key}")
    return "sent"


@tool
def forbidden(reason: str, *, ctx: ToolContext) -> str:
    """Something policy denies.

    Args:
        reason: why.
    """
    return "never"


TOOLS = [write_row, undo_row, notify, forbidden]


def effects_text(tools: str) -> str:
    """The ``effects`` charter: ``write_row``, compensated by ``undo_row``, then the lines
    ``tools`` (``undo_row``'s own among them), then ``forbidden``, which policy always denies.
    """
    return (
        "charter: effects\n"
        "model: {provider: openai, name: gpt-4o-mini}\n"
        "prompt: prompt.md\n"
        "tools:\n"
        "  write_row: {effect: write, compensate: undo_row}\n"
        f"{tools}"
        "  forbidden: {effect: irreversible}\n"
        "policies:\n"
        "  deny:\n"
        "    - {action: forbidden, any: true}\n"
    )


def effects_charter(tmp_path: Path, text: str, tools: Sequence[ToolSpec]) -> Charter:
    """The charter ``text`` and its prompt, written into ``tmp_path``, loaded with ``tools``."""
    (tmp_path / "prompt.md").write_text("You write rows.", encoding="utf-8")
    (tmp_path / "charter.yaml").write_text(text, encoding="utf-8")
    return Charter.load(tmp_path / "charter.yaml", tools=tools)


CHARTER = effects_text(
    "  undo_row: {effect: write}\n  notify: {effect: irreversible, defer: until_run_succeeds}\n"
)


@pytest.fixture
def charter(tmp_path: Path) -> Charter:
    return effects_charter(tmp_path, CHARTER, TOOLS)


def run(runtime: Runtime, charter: Charter, ledger: Ledger, *steps: Any) -> Any:
    model = ScriptedModel(list(steps))
    return asyncio.run(
        runtime.run_agent(charter, model, "go", principal=Principal("alice", "acme"),
                          resources=(ledger,))
    )  # fmt: skip


def test_deferred_effects_are_sent_in_order_only_after_success(
    runtime: Runtime, charter: Charter
) -> None:
    ledger = Ledger()
    result = run(
        runtime, charter, ledger,
        reply("", tool_call("notify", "c1", message="first")),
        reply("", tool_call("write_row", "c2", row_id="r1", value="v")),
        reply("", tool_call("notify", "c3", message="second")),
        reply("done"),
    )  # fmt: skip
    assert result.outcome == "succeeded"
    assert [e.split(" key=")[0] for e in ledger.events] == [
        "write r1=v", "notify first", "notify second",
    ]  # fmt: skip
    # Each effect ran once, under the idempotency key it got when it was decided.
    first_key = ledger.events[1].split("key=")[1]
    assert first_key == f"{result.run_id}:1"
    outcomes = [(c.tool, c.outcome) for c in result.tool_calls if c.tool == "notify"]
    assert outcomes == [("notify", "deferred"), ("notify", "deferred"),
                        ("notify", "executed"), ("notify", "executed")]  # fmt: skip


def test_a_denied_run_discards_the_outbox_and_compensates_writes_newest_first(
    runtime: Runtime, charter: Charter
) -> None:
    ledger = Ledger()
    result = run(
        runtime, charter, ledger,
        reply("", tool_call("write_row", "c1", row_id="r1", value="a")),
        reply("", tool_call("notify", "c2", message="first")),
        reply("", tool_call("write_row", "c3", row_id="r2", value="b")),
        reply("", tool_call("forbidden", "c4", reason="x")),
    )  # fmt: skip
    assert result.outcome == "denied"
    assert ledger.events == ["write r1=a", "write r2=b", "undo r2", "undo r1"]
    discarded = [c for c in result.tool_calls if c.outcome == "discarded"]
    assert [c.tool for c in discarded] == ["notify"]
    assert discarded[0].decision.rule_id == "effects.discard"
    compensations = [c for c in result.tool_calls if c.tool == "undo_row"]
    assert [c.decision.rule_id for c in compensations] == ["tools.write_row.compensate"] * 2
    assert all(c.outcome == "executed" for c in compensations)
    records = [r.entry for r in runtime.audit.records("acme") if r.entry.run_id == result.run_id]
    assert [r.outcome for r in records if r.tool == "notify"] == ["deferred", "discarded"]
    assert [r.rule_id for r in records if r.tool == "undo_row"] == [
        "tools.write_row.compensate"
    ] * 2
    assert runtime.audit.verify().ok


def test_a_failing_deferred_effect_fails_the_run_and_stops_the_rest(
    runtime: Runtime, charter: Charter
) -> None:
    ledger = Ledger(fail_sending=True)
    result = run(
        runtime, charter, ledger,
        reply("", tool_call("write_row", "c1", row_id="r1", value="a")),
        reply("", tool_call("notify", "c2", message="first")),
        reply("", tool_call("notify", "c3", message="second")),
        reply("", tool_call("notify", "c4", message="third")),
        reply("done"),
    )  # fmt: skip
    assert result.outcome == "failed"
    assert "deferred notify #3 failed" in result.reason
    assert "mail relay down" in result.reason
    assert [e.split(" key=")[0] for e in ledger.events] == [
        "write r1=a", "notify first", "undo r1",
    ]  # fmt: skip
    third = [c.outcome for c in result.tool_calls if c.call_id == "c4"]
    assert third == ["deferred", "discarded"]


def test_a_killed_run_discards_and_compensates(runtime: Runtime, charter: Charter) -> None:
    ledger = Ledger()

    def kill_then_continue(_: object) -> Any:
        runtime.kill_switches.kill("charter:effects", "incident 42")
        return reply("", tool_call("write_row", "c3", row_id="r2", value="b"))

    result = run(
        runtime, charter, ledger,
        reply("", tool_call("write_row", "c1", row_id="r1", value="a")),
        reply("", tool_call("notify", "c2", message="first")),
        kill_then_continue,
    )  # fmt: skip
    assert result.outcome == "killed"
    assert ledger.events == ["write r1=a", "undo r1"]  # r2 never ran; r1 taken back
    assert [c.outcome for c in result.tool_calls if c.tool == "notify"] == [
        "deferred", "discarded",
    ]  # fmt: skip


def test_a_run_waiting_for_approval_keeps_its_effects(runtime: Runtime) -> None:
    desk = SupportDesk.default()
    charter = example_charter()
    model = ScriptedModel([
        reply("", tool_call("update_ticket", "c1", ticket_id="T-1002", status="pending")),
        reply("", tool_call("send_email", "c2", to="ravi@example.com",
                            template="ticket_update", ticket_id="T-1002")),
        reply("", tool_call("issue_refund", "c3", ticket_id="T-1002", amount_usd=350,
                            account="acct-C-02")),
    ])  # fmt: skip
    result = asyncio.run(
        runtime.run_agent(charter, model, "refund", principal=Principal("alice", "acme",
                          roles=("support",)), resources=(desk,))
    )  # fmt: skip
    assert result.outcome == "approval_required"
    assert desk.outbox == []  # not sent: the run has not succeeded
    assert desk.tickets["T-1002"].status == "pending"  # not compensated: it has not failed
    assert not [c for c in result.tool_calls if c.outcome == "discarded"]


def test_a_compensation_that_needs_arguments_the_original_lacks_is_a_load_error(
    tmp_path: Path,
) -> None:
    @tool
    def undo_needs_more(row_id: str, version: int, *, ctx: ToolContext) -> str:
        """Undo with a version.

        Args:
            row_id: which row.
            version: which version.
        """
        return "ok"

    (tmp_path / "prompt.md").write_text("p", encoding="utf-8")
    path = tmp_path / "charter.yaml"
    path.write_text(
        CHARTER.replace("compensate: undo_row", "compensate: undo_needs_more").replace(
            "  forbidden: {effect: irreversible}\n",
            "  forbidden: {effect: irreversible}\n  undo_needs_more: {effect: write}\n",
        ),
        encoding="utf-8",
    )
    problems = check_charter(path, tools=[*TOOLS, undo_needs_more])
    assert [p.line for p in problems] == [5]
    assert "undo_needs_more requires version, which write_row does not take" in str(problems[0])
