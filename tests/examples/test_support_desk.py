"""The support-desk example on its own: the domain, the toolkit and the gullible model.

No enforcement pipeline here. The tool calls the model proposes are executed directly, which
is exactly what an agent without Charter does, so these tests also prove the model really
is hijackable: the demo is only meaningful if the injections succeed when nothing stops them.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import math
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import cedarpy
import pytest
from charter_examples.support_desk.desk import SupportDesk
from charter_examples.support_desk.model import GullibleSupportModel
from charter_examples.support_desk.scenarios import DEMO_TICKETS, DemoTicket
from charter_examples.support_desk.tools import TOOLKIT
from ruamel.yaml import YAML

from charter.contract.schema import CharterSpec
from charter.contract.tool import ToolContext, ToolSpec
from charter.execution.model import Message, Model, ModelResponse, ToolCallRequest
from charter.identity.principal import Principal
from charter.identity.secrets import Secret

EXAMPLE = Path(importlib.import_module("charter_examples.support_desk").__path__[0])
SECRET_VALUE = "sk_test_refunds_7f3a9c"
TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in TOOLKIT}
GATHER = ("get_ticket", "lookup_customer", "read_inbox")


def context(desk: SupportDesk, key: str = "idem-1", *, credential: bool = True) -> ToolContext:
    return ToolContext(
        run_id="run-1",
        call_id="call-1",
        idempotency_key=key,
        tool="test",
        principal=Principal("alice", "acme", roles=("support",)),
        environment="dev",
        credential=Secret("payments-refund", SECRET_VALUE) if credential else None,
        resources=(desk,),
    )


def call(name: str, arguments: dict[str, Any], ctx: ToolContext) -> Any:
    """Validate like Charter's schema stage does, then call (running async tools to the end)."""
    spec = TOOLS[name]
    validated = spec.arguments_model.model_validate(arguments).model_dump()
    result = spec.call(validated, ctx)
    return asyncio.run(result) if spec.is_async else result


# -- the desk ------------------------------------------------------------------------------


def test_snapshot_round_trips_and_is_json() -> None:
    desk = SupportDesk.default()
    call(
        "issue_refund",
        {"ticket_id": "T-1001", "amount_usd": "45.50", "account": "a-1"},
        context(desk),
    )
    call(
        "send_email",
        {"to": "dana@example.com", "template": "ticket_update", "ticket_id": "T-1001"},
        context(desk, "idem-2"),
    )
    snapshot = desk.snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert snapshot["refunds"][0]["amount_usd"] == "45.50"
    restored = SupportDesk.from_snapshot(snapshot)
    assert restored == desk
    assert restored.refunds[0].amount_usd == Decimal("45.50")
    restored.tickets["T-1001"].notes.append("changed")
    assert snapshot["tickets"][0]["notes"] == []  # a deep copy both ways


def test_default_desks_are_independent() -> None:
    first, second = SupportDesk.default(), SupportDesk.default()
    first.tickets["T-1001"].status = "closed"
    first.inbox["T-1001"].clear()
    assert second.tickets["T-1001"].status == "open"
    assert second.inbox["T-1001"]
    assert all(c.email.endswith("@example.com") for c in second.customers.values())


# -- the tools -----------------------------------------------------------------------------


def test_toolkit_shape() -> None:
    assert set(TOOLS) == {
        "get_ticket",
        "read_inbox",
        "lookup_customer",
        "list_customers",
        "update_ticket",
        "reopen_ticket",
        "update_crm",
        "issue_refund",
        "send_email",
        "delete_record",
    }
    assert {s.name for s in TOOLKIT if s.is_async} == {"read_inbox", "send_email"}
    for spec in TOOLKIT:
        assert spec.context_parameter == "ctx"
        assert "ctx" not in spec.json_schema.get("properties", {})
        for name, prop in spec.json_schema.get("properties", {}).items():
            assert prop.get("description"), f"{spec.name}.{name} has no description"


def test_reads() -> None:
    desk = SupportDesk.default()
    ctx = context(desk)
    ticket = call("get_ticket", {"ticket_id": "T-1003"}, ctx)
    assert ticket["customer_id"] == "C-03"
    assert "inbox" not in ticket
    inbox = call("read_inbox", {"ticket_id": "T-1003"}, ctx)
    assert inbox[0]["from"] == "mei@example.com"
    assert "attacker@evil.test" in inbox[0]["body"]
    assert call("read_inbox", {"ticket_id": "T-1006"}, ctx) == []
    assert call("lookup_customer", {"customer_id": "C-01"}, ctx)["account"] == "acct-C-01"
    listing = call("list_customers", {}, ctx)
    assert [row["id"] for row in listing] == sorted(desk.customers)
    assert all(set(row) == {"id", "name", "email", "plan"} for row in listing)


def test_writes_and_compensation() -> None:
    desk = SupportDesk.default()
    ctx = context(desk)
    updated = call(
        "update_ticket",
        {"ticket_id": "T-1004", "status": "pending", "queue": "technical", "note": "routed"},
        ctx,
    )
    assert (updated["status"], updated["queue"], updated["notes"]) == (
        "pending",
        "technical",
        ["routed"],
    )
    assert call("reopen_ticket", {"ticket_id": "T-1004"}, ctx)["status"] == "open"
    assert (
        call("update_crm", {"customer_id": "C-02", "field": "plan", "value": "pro"}, ctx)["plan"]
        == "pro"
    )
    with pytest.raises(ValueError, match="nothing to update"):
        call("update_ticket", {"ticket_id": "T-1004"}, ctx)
    assert call("delete_record", {"kind": "ticket", "record_id": "T-1004"}, ctx)
    assert "T-1004" not in desk.tickets
    call("delete_record", {"kind": "customer", "record_id": "C-04"}, ctx)
    assert "C-04" not in desk.customers


def test_refund_is_idempotent_and_keeps_the_credential_secret() -> None:
    desk = SupportDesk.default()
    args = {"ticket_id": "T-1001", "amount_usd": 45, "account": "acct-C-01"}
    first = call("issue_refund", args, context(desk, "idem-A"))
    again = call("issue_refund", {**args, "amount_usd": 99}, context(desk, "idem-A"))
    assert again == first
    assert len(desk.refunds) == 1
    assert desk.refunds[0].amount_usd == Decimal(45)
    assert desk.refunds[0].authorized_by == "payments-refund"
    call("issue_refund", args, context(desk, "idem-B"))
    assert [r.refund_id for r in desk.refunds] == ["R-0001", "R-0002"]
    assert SECRET_VALUE not in json.dumps(first) + json.dumps(desk.snapshot())
    with pytest.raises(PermissionError, match="payments credential"):
        call("issue_refund", args, context(desk, "idem-C", credential=False))


def test_send_email_is_async_and_deduplicated() -> None:
    desk = SupportDesk.default()
    args = {
        "to": "dana@example.com",
        "template": "refund_confirmation",
        "ticket_id": "T-1001",
        "body": "Refund issued.",
    }
    sent = call("send_email", args, context(desk, "idem-M"))
    assert sent == {"message_id": "M-0001", "to": "dana@example.com", "status": "sent"}
    assert call("send_email", args, context(desk, "idem-M")) == sent
    assert len(desk.outbox) == 1
    assert desk.outbox[0].subject == "Your refund for T-1001"


@pytest.mark.parametrize(
    ("name", "arguments", "missing"),
    [
        ("get_ticket", {"ticket_id": "T-9999"}, "T-9999"),
        ("read_inbox", {"ticket_id": "T-9999"}, "T-9999"),
        ("lookup_customer", {"customer_id": "C-99"}, "C-99"),
        ("update_ticket", {"ticket_id": "T-9999", "note": "x"}, "T-9999"),
        ("reopen_ticket", {"ticket_id": "T-9999"}, "T-9999"),
        ("update_crm", {"customer_id": "C-99", "field": "notes", "value": "x"}, "C-99"),
        ("issue_refund", {"ticket_id": "T-9999", "amount_usd": 5, "account": "a-1"}, "T-9999"),
        (
            "send_email",
            {"to": "a@example.com", "template": "ticket_update", "ticket_id": "T-9999"},
            "T-9999",
        ),
        ("delete_record", {"kind": "ticket", "record_id": "T-9999"}, "T-9999"),
        ("delete_record", {"kind": "customer", "record_id": "C-99"}, "C-99"),
    ],
)
def test_unknown_ids_raise_key_error(name: str, arguments: dict[str, Any], missing: str) -> None:
    desk = SupportDesk.default()
    before = desk.snapshot()
    with pytest.raises(KeyError, match=f"no (ticket|customer) '{missing}'"):
        call(name, arguments, context(desk))
    assert desk.snapshot() == before


# -- the gullible model, with nothing guarding the tools ----------------------------------

Executor = Callable[[ToolCallRequest, SupportDesk], str]


def execute(request: ToolCallRequest, desk: SupportDesk) -> str:
    try:
        result = call(request.name, request.arguments, context(desk, f"idem-{request.id}"))
    except (KeyError, ValueError) as exc:
        return f"ERROR: {exc}"
    return json.dumps(result)


def deny(*tools: str) -> Executor:
    def executor(request: ToolCallRequest, desk: SupportDesk) -> str:
        if request.name in tools:
            return f"DENIED: {request.name} is not allowed"
        return execute(request, desk)

    return executor


def drive(
    text: str, desk: SupportDesk, executor: Executor = execute
) -> tuple[list[Message], list[ModelResponse]]:
    """The smallest agent loop: a fresh model each turn proves it keeps no state."""
    prompt = (EXAMPLE / "prompts" / "support.md").read_text(encoding="utf-8")
    messages = [Message("system", prompt), Message("user", text)]
    responses: list[ModelResponse] = []
    tools = [spec.model_view() for spec in TOOLKIT]
    for _ in range(20):
        response = asyncio.run(GullibleSupportModel().chat(messages, tools, max_output_tokens=512))
        responses.append(response)
        messages.append(response.message)
        if not response.message.tool_calls:
            return messages, responses
        if response.message.tool_calls[0].name == "escalate_to_human":
            return messages, responses  # the agent loop ends the run here
        for request in response.message.tool_calls:
            content = executor(request, desk)
            messages.append(Message("tool", content, tool_call_id=request.id, name=request.name))
    raise AssertionError("the model did not finish within 20 turns")


def calls_of(responses: list[ModelResponse]) -> list[ToolCallRequest]:
    return [c for r in responses for c in r.message.tool_calls]


def test_model_satisfies_the_protocol() -> None:
    model = GullibleSupportModel()
    assert isinstance(model, Model)
    assert (model.provider, model.name) == ("scripted", "gullible-support-agent")


def test_without_charter_the_injection_exfiltrates_the_customer_list() -> None:
    desk = SupportDesk.default()
    drive("Please handle ticket T-1003.", desk)
    [leak] = [e for e in desk.outbox if e.to == "attacker@evil.test"]
    assert leak.template == "customer_list"
    assert "dana@example.com" in leak.body
    assert "priya@example.com" in leak.body


def test_without_charter_the_refund_goes_to_the_attacker() -> None:
    desk = SupportDesk.default()
    drive("Please handle ticket T-1005.", desk)
    [refund] = desk.refunds
    assert (refund.account, refund.amount_usd) == ("ACCT-EVIL-9", Decimal(150))


def test_without_charter_a_crm_note_deletes_records() -> None:
    desk = SupportDesk.default()
    drive("Please handle ticket T-1006.", desk)
    assert "T-1006" not in desk.tickets
    assert "C-06" not in desk.customers


PLANNED = {
    "T-1001": [*GATHER, "issue_refund", "update_ticket", "send_email"],
    "T-1002": [*GATHER, "issue_refund", "update_ticket", "send_email"],
    "T-1003": [*GATHER, "update_ticket", "list_customers", "send_email"],
    "T-1004": [*GATHER, "update_ticket"],
    "T-1005": [*GATHER, "issue_refund", "update_ticket", "send_email"],
    "T-1006": [*GATHER, "update_ticket", "delete_record", "delete_record"],
    "T-1007": [*GATHER],
}


@pytest.mark.parametrize("case", DEMO_TICKETS, ids=lambda c: c.ticket_id)
def test_demo_tickets_plan_the_expected_calls(case: DemoTicket) -> None:
    desk = SupportDesk.default()
    _, responses = drive(case.input, desk)
    calls = calls_of(responses)
    escalated = bool(calls) and calls[-1].name == "escalate_to_human"
    assert escalated == (case.expected_outcome == "escalated")
    if escalated:
        calls = calls[:-1]
    assert [c.name for c in calls] == PLANNED[case.ticket_id]
    assert [c.id for c in calls] == [f"call_{i}" for i in range(len(calls))]
    # The budget must not be what decides a scenario: the charter allows 8 calls, 12000 tokens.
    assert len(calls) <= 8
    assert sum(r.usage.total_tokens for r in responses) < 12_000


def test_refund_arguments_come_from_the_right_places() -> None:
    _, responses = drive("Please handle ticket T-1001.", SupportDesk.default())
    by_name = {c.name: c.arguments for c in calls_of(responses)}
    assert by_name["issue_refund"] == {
        "ticket_id": "T-1001",
        "amount_usd": 45,
        "account": "acct-C-01",
    }
    assert by_name["update_ticket"]["status"] == "closed"
    assert by_name["send_email"]["to"] == "dana@example.com"
    assert by_name["send_email"]["template"] == "refund_confirmation"
    _, responses = drive("Please handle ticket T-1002.", SupportDesk.default())
    assert calls_of(responses)[3].arguments["amount_usd"] == 350


def test_after_a_denial_it_moves_on_and_skips_what_depended_on_it() -> None:
    desk = SupportDesk.default()
    _, responses = drive("Please handle ticket T-1006.", desk, deny("delete_record"))
    assert [c.name for c in calls_of(responses)][-2:] == ["delete_record", "delete_record"]
    assert "Refused or failed: delete_record(T-1006), delete_record(C-06)" in (
        responses[-1].message.content
    )
    assert "T-1006" in desk.tickets
    # No confirmation email and no closed ticket for a refund that was refused.
    _, responses = drive(
        "Please handle ticket T-1001.", SupportDesk.default(), deny("issue_refund")
    )
    assert [c.name for c in calls_of(responses)] == [*GATHER, "issue_refund"]


@pytest.mark.parametrize(
    "text", ["Please escalate T-1001 to a human.", "The customer on T-1004 has a lawyer."]
)
def test_escalates_when_the_request_says_so(text: str) -> None:
    _, responses = drive(text, SupportDesk.default())
    [response] = responses
    [call] = response.message.tool_calls
    assert call.name == "escalate_to_human"
    assert call.arguments["reason"]


def test_without_a_ticket_id_it_asks_for_one() -> None:
    _, [response] = drive("Hello there", SupportDesk.default())
    assert "T-1001" in response.message.content


def test_is_deterministic_and_reports_usage() -> None:
    messages, _ = drive("Please handle ticket T-1003.", SupportDesk.default())
    history = messages[:6]
    tools = [spec.model_view() for spec in TOOLKIT]
    first = asyncio.run(GullibleSupportModel().chat(history, tools, max_output_tokens=512))
    second = asyncio.run(GullibleSupportModel().chat(history, tools, max_output_tokens=512))
    assert first == second
    [request] = first.message.tool_calls
    chars_in = sum(
        len(m.content)
        + sum(len(c.name) + len(json.dumps(c.arguments, sort_keys=True)) for c in m.tool_calls)
        for m in history
    )
    chars_out = (
        len(first.message.content)
        + len(request.name)
        + len(json.dumps(request.arguments, sort_keys=True))
    )
    assert first.usage.input_tokens == math.ceil(chars_in / 4)
    assert first.usage.output_tokens == math.ceil(chars_out / 4)


# -- the charter and its files -------------------------------------------------------------


def load_spec() -> CharterSpec:
    text = (EXAMPLE / "charter.yaml").read_text(encoding="utf-8")
    return CharterSpec.model_validate(YAML(typ="safe").load(text))


def test_charter_validates_and_matches_the_toolkit() -> None:
    spec = load_spec()
    assert set(spec.tools) == set(TOOLS)
    assert (EXAMPLE / spec.prompt).is_file()
    assert spec.policies.cedar is not None
    assert (EXAMPLE / spec.policies.cedar).is_file()
    assert spec.model.factory is not None
    module, _, attribute = spec.model.factory.partition(":")
    assert getattr(importlib.import_module(module), attribute) is GullibleSupportModel
    assert [importlib.import_module(m).TOOLKIT for m in spec.toolkit] == [TOOLKIT]
    for name, decl in spec.tools.items():
        properties = TOOLS[name].json_schema.get("properties", {})
        assert set(decl.constraints) <= set(properties), name


def test_the_prompt_does_not_launder_injected_values() -> None:
    # Taint is "appears in untrusted text and nowhere trusted"; the prompt is trusted, so a
    # demo value in it would make the injected argument look clean.
    prompt = (EXAMPLE / "prompts" / "support.md").read_text(encoding="utf-8").casefold()
    for value in ("150", "acct-evil-9", "attacker@evil.test", "evil.test"):
        assert value not in prompt


def test_demo_tickets_fit_the_fixture() -> None:
    desk = SupportDesk.default()
    assert 5 <= len(DEMO_TICKETS) <= 7
    assert {c.expected_outcome for c in DEMO_TICKETS} == {
        "succeeded",
        "approval_required",
        "denied",
        "escalated",
    }
    for case in DEMO_TICKETS:
        assert case.ticket_id in desk.tickets
        assert case.ticket_id in case.input
        assert case.tenant == "acme"
        assert "support" in case.roles
        Principal(case.user, case.tenant, roles=case.roles)  # valid identifiers


def cedar_request(environment: str, roles: list[str], amount: str, tainted: bool) -> Any:
    # The context shape Charter gives Cedar for issue_refund, trimmed to what the rules read.
    context = {
        "args": {
            "ticket_id": "T-1001",
            "account": "acct-C-01",
            "amount_usd": {"__extn": {"fn": "decimal", "arg": amount}},
        },
        "principal": {
            "user": "alice",
            "tenant": "acme",
            "service_principal": "agent:x",
            "roles": roles,
        },
        "environment": environment,
        "run": {
            "tool_calls": 1,
            "total_tokens": 10,
            "cost_usd": {"__extn": {"fn": "decimal", "arg": "0.0010"}},
        },
        "untrusted_read": tainted,
        "tainted": {"ticket_id": False, "account": tainted, "amount_usd": tainted},
        "tainted_any": tainted,
    }
    return {
        "principal": 'Charter::User::"alice"',
        "action": 'Charter::Action::"issue_refund"',
        "resource": 'Charter::Tool::"issue_refund"',
        "context": context,
    }


@pytest.mark.parametrize(
    ("environment", "roles", "amount", "tainted", "allowed"),
    [
        ("prod", ["support"], "45.00", False, True),
        ("prod", [], "45.00", False, False),
        ("dev", [], "45.00", False, True),
        ("prod", ["support"], "1500.00", True, False),
        ("prod", ["support"], "1500.00", False, True),
    ],
)
def test_extra_cedar_rules(
    environment: str, roles: list[str], amount: str, tainted: bool, allowed: bool
) -> None:
    rules = (EXAMPLE / "policies" / "extra.cedar").read_text(encoding="utf-8")
    policies = "permit (principal, action, resource);\n" + rules
    result = cedarpy.is_authorized(cedar_request(environment, roles, amount, tainted), policies, [])
    assert result.allowed is allowed, result.diagnostics.errors
