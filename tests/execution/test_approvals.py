"""Stage 6, the approval gate: a human approves exact arguments, once."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from charter_examples.support_desk.desk import SupportDesk

from charter.core.canonical import canonical_json, sha256_hex
from charter.core.decision import Stage, Verdict
from charter.runtime import Runtime
from tests.execution.harness import call, start_example_run, tool_records

BIG = {"ticket_id": "T-1002", "amount_usd": "350", "account": "acct-C-02"}


def expected_hash(arguments: dict[str, Any]) -> str:
    typed = {**arguments, "amount_usd": Decimal(str(arguments["amount_usd"]))}
    return sha256_hex(canonical_json(typed))


def test_approval_required_records_a_request_bound_to_the_argument_hash(
    runtime: Runtime,
) -> None:
    desk = SupportDesk.default()
    run = start_example_run(runtime, desk=desk)

    result = call(run, "issue_refund", BIG)

    assert result.outcome == "approval_required"
    request = result.approval
    assert request is not None
    assert request.arguments_sha256 == expected_hash(BIG)
    assert request.arguments == {"ticket_id": "T-1002", "amount_usd": "350", "account": "acct-C-02"}
    assert (request.tool, request.tenant, request.requested_by, request.run_id) == (
        "issue_refund",
        "acme",
        "alice",
        run.id,
    )
    assert request.rule_id == "require_approval_for[0]"
    assert request.reason == "refunds over $200 need a human"
    assert request.id in result.model_text
    assert desk.refunds == []
    [record] = tool_records(runtime)
    assert record.entry.approval_request_id == request.id
    assert record.entry.arguments_sha256 == request.arguments_sha256
    assert record.entry.outcome == "approval_required"
    assert record.entry.verdict == "require_approval"
    assert request.as_dict()["arguments_sha256"] == request.arguments_sha256
    assert run.ledger.totals().cost_usd == 0  # the fee went back


def test_a_granted_identical_call_executes_through_the_approval_stage(runtime: Runtime) -> None:
    desk = SupportDesk.default()
    run = start_example_run(runtime, desk=desk)
    request = call(run, "issue_refund", BIG).approval
    assert request is not None

    runtime.grants.grant(request, "apr-1")
    result = call(run, "issue_refund", BIG)

    assert result.executed
    assert result.decision.verdict is Verdict.ALLOW
    assert result.decision.stage is Stage.APPROVAL
    assert result.decision.rule_id == "require_approval_for[0]"
    assert result.decision.reason == "approved (apr-1): refunds over $200 need a human"
    assert [(r.ticket_id, r.amount_usd) for r in desk.refunds] == [("T-1002", Decimal("350"))]
    executed = tool_records(runtime)[-1]
    assert (executed.entry.stage, executed.entry.outcome) == ("approval", "executed")


def test_the_same_amount_written_differently_is_the_same_approved_call(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    request = call(run, "issue_refund", BIG).approval
    assert request is not None
    runtime.grants.grant(request, "apr-1")

    result = call(run, "issue_refund", {**BIG, "amount_usd": "350.00"})

    assert result.executed
    assert result.decision.stage is Stage.APPROVAL


def test_any_changed_argument_still_needs_approval_and_keeps_the_grant(runtime: Runtime) -> None:
    desk = SupportDesk.default()
    run = start_example_run(runtime, desk=desk)
    request = call(run, "issue_refund", BIG).approval
    assert request is not None
    runtime.grants.grant(request, "apr-1")

    for changed in (
        {**BIG, "amount_usd": "351"},
        {**BIG, "amount_usd": "350.01"},
        {**BIG, "account": "acct-C-03"},
        {**BIG, "ticket_id": "T-1001"},
    ):
        result = call(run, "issue_refund", changed)
        assert result.outcome == "approval_required", changed
        assert result.decision.rule_id == "require_approval_for[0]"
        assert result.approval is not None
        assert result.approval.arguments_sha256 != request.arguments_sha256
    assert desk.refunds == []
    assert call(run, "issue_refund", BIG).executed  # the grant was not spent on the others


def test_a_grant_is_consumed_by_one_execution(runtime: Runtime) -> None:
    desk = SupportDesk.default()
    run = start_example_run(runtime, desk=desk)
    request = call(run, "issue_refund", BIG).approval
    assert request is not None
    runtime.grants.grant(request, "apr-1")

    first = call(run, "issue_refund", BIG)
    second = call(run, "issue_refund", BIG)

    assert first.executed
    assert second.outcome == "approval_required"
    assert len(desk.refunds) == 1


def test_a_grant_in_one_tenant_does_not_approve_another_tenants_call(runtime: Runtime) -> None:
    acme = start_example_run(runtime, tenant="acme")
    request = call(acme, "issue_refund", BIG).approval
    assert request is not None
    runtime.grants.grant(request, "apr-1")

    other = call(start_example_run(runtime, tenant="globex"), "issue_refund", BIG)

    assert other.outcome == "approval_required"
    assert call(acme, "issue_refund", BIG).executed


def test_a_grant_never_overrides_a_deny(runtime: Runtime) -> None:
    # In prod without the support role the Cedar deny fires as well as the approval rule.
    run = start_example_run(runtime, environment="prod", roles=())
    template = call(start_example_run(runtime), "issue_refund", BIG).approval
    assert template is not None
    runtime.grants.grant(replace(template, run_id=run.id), "apr-1")  # a grant for this very call

    result = call(run, "issue_refund", BIG)

    assert result.outcome == "denied"
    assert result.decision.rule_id == "prod-refunds-need-support-role"


def test_a_grant_in_one_run_does_not_approve_the_same_call_in_another_run(
    runtime: Runtime,
) -> None:
    first = start_example_run(runtime, user="alice")
    request = call(first, "issue_refund", BIG).approval
    assert request is not None
    runtime.grants.grant(request, "apr-1")

    other = call(start_example_run(runtime, user="bob"), "issue_refund", BIG)

    assert other.outcome == "approval_required"
    assert call(first, "issue_refund", BIG).executed


def test_calls_that_need_no_approval_do_not_touch_grants(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    request = call(run, "issue_refund", BIG).approval
    assert request is not None
    runtime.grants.grant(request, "apr-1")
    assert call(run, "issue_refund", {**BIG, "amount_usd": "45"}).decision.stage is Stage.POLICY
    assert call(run, "issue_refund", BIG).decision.stage is Stage.APPROVAL
