"""``Run.decide``: the guard stages' verdict on a call, without acting on it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from charter_examples.support_desk.desk import SupportDesk

from charter.core.decision import Stage, Verdict
from charter.core.errors import KillSignal
from charter.core.events import Event
from charter.execution import run as run_module
from charter.execution.approvals import InMemoryGrants
from charter.execution.kill_switch import KillSwitches
from charter.runtime import Runtime
from tests.execution.harness import SECRET, call, start_example_run, tool_records

TICKET = {"ticket_id": "T-1001"}
REFUND = {"ticket_id": "T-1001", "amount_usd": "45", "account": "acct-C-01"}
BIG_REFUND = {"ticket_id": "T-1002", "amount_usd": "350", "account": "acct-C-02"}


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch, runtime: Runtime) -> list[Event]:
    """Everything published while deciding, and a tripwire on executing."""
    published: list[Event] = []
    runtime.services.bus.subscribe(published.append)

    async def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decide must not execute a tool")

    monkeypatch.setattr(run_module, "execute", never)
    return published


def test_decide_allows_without_executing_or_recording(runtime: Runtime, quiet: list[Event]) -> None:
    desk = SupportDesk.default()
    before = desk.tickets["T-1001"].status
    run = start_example_run(runtime, desk=desk)

    decision = run.decide("issue_refund", REFUND)

    assert decision.verdict is Verdict.ALLOW
    assert decision.rule_id == "tools.issue_refund"
    assert quiet == []
    assert tool_records(runtime) == []
    assert run.results == []
    assert run.snapshot()["step"] == 0
    assert desk.tickets["T-1001"].status == before


def test_require_approval_is_the_answer_no_request_is_filed(
    runtime: Runtime, quiet: list[Event]
) -> None:
    run = start_example_run(runtime)
    inbox = runtime.services.inbox
    assert isinstance(inbox, InMemoryGrants)

    decision = run.decide("issue_refund", BIG_REFUND)

    assert decision.verdict is Verdict.REQUIRE_APPROVAL
    assert decision.rule_id == "require_approval_for[0]"
    assert inbox.requests == {}
    assert quiet == []


def test_a_grant_is_not_consulted_nor_consumed(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    pending = call(run, "issue_refund", BIG_REFUND)
    assert pending.approval is not None
    grants = runtime.services.grants
    assert isinstance(grants, InMemoryGrants)
    grants.grant(pending.approval, "apr_granted")

    assert run.decide("issue_refund", BIG_REFUND).verdict is Verdict.REQUIRE_APPROVAL
    # The grant is still there for the real call.
    assert call(run, "issue_refund", BIG_REFUND).outcome == "executed"


@pytest.mark.parametrize(
    ("name", "arguments", "rule", "stage"),
    [
        ("frobnicate", {}, "allowlist", Stage.ALLOWLIST),
        ("get_ticket", {"ticket_id": 5}, "schema.get_ticket", Stage.SCHEMA),
        ("delete_record", {"kind": "ticket", "record_id": "T-1"}, "deny[0]", Stage.POLICY),
    ],
)
def test_denials_come_from_the_real_stages(
    runtime: Runtime, quiet: list[Event], name: str, arguments: Any, rule: str, stage: Stage
) -> None:
    decision = start_example_run(runtime).decide(name, arguments)

    assert (decision.verdict, decision.rule_id, decision.stage) == (Verdict.DENY, rule, stage)


def test_the_kill_switch_is_not_consulted(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    switches = runtime.services.kill_switches
    assert isinstance(switches, KillSwitches)
    switches.kill("all", "incident 42")

    assert run.decide("get_ticket", TICKET).verdict is Verdict.ALLOW
    with pytest.raises(KillSignal, match="incident 42"):  # the real path still stops
        call(run, "get_ticket", TICKET)


def test_decisions_use_the_budget_as_if_the_calls_ran(runtime: Runtime, quiet: list[Event]) -> None:
    run = start_example_run(runtime)
    verdicts = [run.decide("issue_refund", REFUND).verdict for _ in range(8)]

    ninth = run.decide("get_ticket", TICKET)

    assert verdicts == [Verdict.ALLOW] * 8
    assert (ninth.verdict, ninth.rule_id) == (Verdict.DENY, "budget.max_tool_calls")
    totals = run.ledger.totals()
    assert totals.tool_calls == 8
    assert totals.cost_usd == Decimal("0.08")  # eight refund fees


def test_refused_decisions_keep_their_slot_but_not_their_fee(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    for _ in range(3):
        assert run.decide("issue_refund", BIG_REFUND).verdict is Verdict.REQUIRE_APPROVAL
    run.decide("frobnicate", {})  # refused before the budget: no slot

    totals = run.ledger.totals()
    assert (totals.tool_calls, totals.cost_usd) == (3, Decimal(0))


def test_decide_and_call_tool_agree(runtime: Runtime) -> None:
    cases = [
        ("get_ticket", TICKET),
        ("issue_refund", REFUND),
        ("issue_refund", BIG_REFUND),
        ("send_email", {"to": "x@evil.test", "template": "ticket_update", "ticket_id": "T-1001",
                        "body": "hi"}),
        ("delete_record", {"kind": "ticket", "record_id": "T-1"}),
        ("nope", {}),
    ]  # fmt: skip
    dry = start_example_run(runtime)
    real = start_example_run(runtime)
    for name, arguments in cases:
        decided = dry.decide(name, arguments)
        done = call(real, name, arguments).decision
        assert (decided.verdict, decided.rule_id) == (done.verdict, done.rule_id), name


def test_a_reason_quoting_a_secret_is_redacted(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    decision = run.decide("get_ticket", {"ticket_id": "T-1", SECRET: 1})

    assert decision.verdict is Verdict.DENY
    assert SECRET not in decision.reason
