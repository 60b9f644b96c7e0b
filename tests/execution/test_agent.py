"""The agent loop: every way a run ends, and the records it leaves in the audit log and traces."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.demo import run_demo
from charter_examples.support_desk.desk import SupportDesk

from charter.contract.loader import Charter
from charter.execution.agent import RunResult, run_agent
from charter.execution.model import Message, ModelResponse
from charter.identity.principal import Principal
from charter.runtime import Runtime
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.harness import SECRET, Traced, example_charter, tool_records, write_charter

ALICE = Principal("alice", "acme", roles=("support",))


def run_example(runtime: Runtime, model: Any, *, max_steps: int = 24, **kwargs: Any) -> RunResult:
    return asyncio.run(
        runtime.run_agent(
            kwargs.pop("charter", example_charter()),
            model,
            "Please handle ticket T-1001.",
            principal=ALICE,
            resources=(kwargs.pop("desk", SupportDesk.default()),),
            max_steps=max_steps,
            **kwargs,
        )
    )


def finished(runtime: Runtime) -> list[tuple[str, str | None]]:
    return [
        (r.entry.outcome, r.entry.rule_id)
        for r in runtime.audit.records()
        if r.entry.kind == "run_finished"
    ]


def test_a_final_answer_ends_the_run_succeeded(runtime: Runtime) -> None:
    model = ScriptedModel(
        [reply("Reading.", tool_call("get_ticket", ticket_id="T-1001")), reply("All done.")]
    )

    result = run_example(runtime, model)

    assert result.outcome == "succeeded"
    assert result.final_text == "All done."
    assert result.model_calls == 2
    assert [c.tool for c in result.tool_calls] == ["get_ticket"]
    assert result.total_tokens > 0
    assert result.cost_usd > 0  # priced as gpt-4o-mini
    assert finished(runtime) == [("succeeded", None)]


def test_a_model_that_raises_fails_the_run_with_a_redacted_reason(runtime: Runtime) -> None:
    def broken(_messages: Sequence[Message]) -> ModelResponse:
        raise ConnectionError(f"provider down (key {SECRET})")

    desk = SupportDesk.default()
    run = runtime.start_run(example_charter(), ALICE, resources=(desk,))
    run.services.secrets.resolve("payments-refund")  # the run knows the value: redact it

    result = asyncio.run(
        run_agent(run, ScriptedModel([broken]), "hi", price=runtime.price_for(example_charter()))
    )

    assert result.outcome == "failed"
    assert result.reason == "model call failed: ConnectionError: provider down (key [REDACTED])"
    assert finished(runtime) == [("failed", None)]


def test_running_past_the_script_fails_the_run(runtime: Runtime) -> None:
    result = run_example(
        runtime, ScriptedModel([reply("", tool_call("get_ticket", ticket_id="T-1001"))])
    )
    assert result.outcome == "failed"
    assert "was not scripted" in result.reason


def test_max_steps_fails_a_run_that_never_finishes(runtime: Runtime) -> None:
    def again(_messages: Sequence[Message]) -> ModelResponse:
        return reply("once more", tool_call("get_ticket", ticket_id="T-1001"))

    result = run_example(runtime, ScriptedModel([again] * 10), max_steps=3)

    assert result.outcome == "failed"
    assert result.reason == "the agent did not finish within 3 steps"
    assert result.model_calls == 3
    assert len(result.tool_calls) == 3


def test_escalate_to_human_ends_the_run_escalated(runtime: Runtime) -> None:
    model = ScriptedModel(
        [reply("", tool_call("escalate_to_human", reason="customer threatens legal action"))]
    )

    result = run_example(runtime, model)

    assert result.outcome == "escalated"
    assert result.reason == "customer threatens legal action"
    assert result.decision is not None
    assert result.decision.rule_id == "builtin.escalate_to_human"
    assert result.tool_calls == ()  # escalating is not a governed tool call
    assert finished(runtime) == [("escalated", "builtin.escalate_to_human")]


def test_an_escalation_reason_is_redacted_and_bounded_before_it_is_recorded(
    runtime: Runtime,
) -> None:
    run = runtime.start_run(example_charter(), ALICE, resources=(SupportDesk.default(),))
    run.services.secrets.resolve("payments-refund")  # the run knows the value: redact it
    reason = f"stuck; the key is {SECRET} \udc80 " + "x" * 5_000
    model = ScriptedModel([reply("", tool_call("escalate_to_human", reason=reason))])

    result = asyncio.run(run_agent(run, model, "hi", price=None))

    assert result.outcome == "escalated"
    assert SECRET not in result.reason
    assert result.reason.startswith("stuck; the key is [REDACTED] \\udc80 x")
    assert len(result.reason) < 2100
    [(outcome, _rule)] = finished(runtime)
    assert outcome == "escalated"
    assert runtime.audit.verify().ok


@pytest.mark.parametrize("arguments", [{}, {"reason": ""}, {"reason": "   "}], ids=repr)
def test_an_escalation_without_a_reason_gets_a_default_one(
    runtime: Runtime, arguments: dict[str, Any]
) -> None:
    model = ScriptedModel([reply("", tool_call("escalate_to_human", **arguments))])
    result = run_example(runtime, model)
    assert result.outcome == "escalated"
    assert result.reason.strip()


def test_a_denied_call_stops_the_run_when_on_deny_is_stop(runtime: Runtime) -> None:
    model = ScriptedModel(
        [
            reply("", tool_call("delete_record", kind="ticket", record_id="T-1001")),
            reply("never reached"),
        ]
    )
    desk = SupportDesk.default()

    result = run_example(runtime, model, desk=desk)

    assert result.outcome == "denied"
    assert result.decision is not None
    assert result.decision.rule_id == "deny[0]"
    assert len(model.calls) == 1
    assert "T-1001" in desk.tickets
    assert finished(runtime) == [("denied", "deny[0]")]


def continuing_charter(tmp_path: Path) -> Charter:
    return write_charter(
        tmp_path,
        """\
        toolkit: [charter_examples.support_desk.tools]
        tools:
          get_ticket: {effect: read}
          delete_record: {effect: irreversible}
        policies:
          on_deny: continue
          deny:
            - {action: delete_record, any: true, reason: "never delete"}
        """,
    )


def test_with_on_deny_continue_the_model_sees_the_denial_and_goes_on(
    runtime: Runtime, tmp_path: Path
) -> None:
    model = ScriptedModel(
        [
            reply("", tool_call("delete_record", kind="ticket", record_id="T-1001")),
            reply("", tool_call("get_ticket", ticket_id="T-1001")),
            reply("Could not delete; read the ticket instead."),
        ]
    )

    result = run_example(runtime, model, charter=continuing_charter(tmp_path))

    assert result.outcome == "succeeded"
    assert [c.outcome for c in result.tool_calls] == ["denied", "executed"]
    [tool_message] = [m for m in model.calls[1] if m.role == "tool"]
    assert tool_message.content == "DENIED: never delete [rule deny[0]]"
    assert tool_message.name == "delete_record"


def test_a_call_waiting_for_approval_ends_the_run_approval_required(runtime: Runtime) -> None:
    refund = {"ticket_id": "T-1002", "amount_usd": "350", "account": "acct-C-02"}
    model = ScriptedModel([reply("", tool_call("issue_refund", **refund)), reply("unreachable")])

    result = run_example(runtime, model)

    assert result.outcome == "approval_required"
    assert result.decision is not None
    assert result.decision.rule_id == "require_approval_for[0]"
    # An in-process run cannot wait for the decision, so it files no request (see
    # test_approval_waiting.py); the call and its rule are in the result and the audit log.
    assert result.approval is None
    assert result.as_dict()["approval"] is None
    [blocked] = result.tool_calls
    assert (blocked.tool, blocked.outcome) == ("issue_refund", "approval_required")


def test_a_tool_error_does_not_end_the_run_by_itself(runtime: Runtime) -> None:
    model = ScriptedModel(
        [
            reply("", tool_call("get_ticket", ticket_id="T-9999")),  # the desk raises KeyError
            reply("Ticket not found."),
        ]
    )
    result = run_example(runtime, model)
    assert result.outcome == "succeeded"
    assert result.tool_calls[0].outcome == "error"
    assert "no ticket 'T-9999'" in result.tool_calls[0].model_text


# -- the demo, end to end, with its audit log and traces ---------------------------------------


@pytest.fixture
def demo(traced: Traced) -> list[Any]:
    return asyncio.run(run_demo(traced.runtime))


def test_every_demo_scenario_ends_as_expected_and_the_audit_chain_verifies(
    traced: Traced, demo: list[Any]
) -> None:
    assert [(row.ticket.ticket_id, row.result.outcome) for row in demo] == [
        (row.ticket.ticket_id, row.ticket.expected_outcome) for row in demo
    ]
    assert all(row.as_expected for row in demo)
    report = traced.runtime.audit.verify()
    assert report.ok, report.first_break


def test_the_demo_leaves_the_desk_as_the_charter_intends(demo: list[Any]) -> None:
    desks = {row.ticket.ticket_id: row.desk for row in demo}
    assert [(r.ticket_id, str(r.amount_usd)) for r in desks["T-1001"].refunds] == [("T-1001", "45")]
    assert desks["T-1002"].refunds == []  # waits for a human
    assert desks["T-1003"].outbox == []  # the customer list never left
    assert desks["T-1005"].refunds == []  # ACCT-EVIL-9 was not paid
    assert "C-06" in desks["T-1006"].customers  # nothing deleted


def test_the_audit_log_has_one_record_per_tool_call_and_a_start_and_end_per_run(
    traced: Traced, demo: list[Any]
) -> None:
    records = list(traced.runtime.audit.records())
    kinds = Counter((r.entry.run_id, r.entry.kind) for r in records)
    for row in demo:
        result = row.result
        assert kinds[(result.run_id, "run_started")] == 1
        assert kinds[(result.run_id, "run_finished")] == 1
        calls = tool_records(traced.runtime, result.run_id)
        assert len(calls) == len(result.tool_calls)
        assert [(r.entry.tool, r.entry.outcome) for r in calls] == [
            (c.tool, c.outcome) for c in result.tool_calls
        ]
        [end] = [
            r for r in records if r.entry.run_id == result.run_id and r.entry.kind == "run_finished"
        ]
        assert end.entry.outcome == result.outcome
    assert len(records) == sum(2 + len(row.result.tool_calls) for row in demo)


def test_audit_trace_and_span_ids_are_the_exported_spans_ids(
    traced: Traced, demo: list[Any]
) -> None:
    spans = traced.spans()
    roots = {
        str((s.attributes or {})["charter.run_id"]): s
        for s in spans
        if s.name.startswith("invoke_agent")
    }
    tools = {
        format(s.context.span_id, "016x"): s for s in spans if s.name.startswith("execute_tool")
    }
    assert set(roots) == {row.result.run_id for row in demo}
    for row in demo:
        root = roots[row.result.run_id]
        trace_id = format(root.context.trace_id, "032x")
        assert trace_id == row.result.trace_id
        assert root.attributes is not None
        assert root.attributes["charter.outcome"] == row.result.outcome
        for record in tool_records(traced.runtime, row.result.run_id):
            assert record.entry.trace_id == trace_id
            span = tools[record.entry.span_id]
            assert span.name == f"execute_tool {record.entry.tool}"
            assert format(span.context.trace_id, "032x") == trace_id
            assert span.parent is not None
            assert span.parent.span_id == root.context.span_id  # a child of invoke_agent
            assert span.attributes is not None
            assert span.attributes["charter.policy.rule_id"] == record.entry.rule_id
            assert span.attributes["charter.outcome"] == record.entry.outcome
    assert len(tools) == sum(len(row.result.tool_calls) for row in demo)
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert len(chats) == sum(row.result.model_calls for row in demo)
