"""``Run.invoke``: a tool's value, or the governed outcome raised as a typed error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from charter import ApprovalRequired, BudgetExceeded, PermissionDenied, Runtime
from charter.core.canonical import canonical_json, sha256_hex
from charter.core.errors import GovernedOutcome, ToolFailed
from charter.execution.run import Run

from .harness import start_example_run

SMALL = {"ticket_id": "T-1001", "amount_usd": 45, "account": "acct-C-01"}
BIG = {"ticket_id": "T-1002", "amount_usd": 350, "account": "acct-C-02"}


def invoke(run: Run, tool: str, arguments: Any) -> Any:
    return asyncio.run(run.invoke(tool, arguments))


def test_invoke_returns_the_value_of_an_executed_call(runtime: Runtime) -> None:
    value = invoke(start_example_run(runtime), "get_ticket", {"ticket_id": "T-1001"})
    assert value["id"] == "T-1001"


def test_invoke_raises_approval_required_bound_to_the_arguments_hash(runtime: Runtime) -> None:
    with pytest.raises(ApprovalRequired) as caught:
        invoke(start_example_run(runtime), "issue_refund", BIG)
    signal = caught.value
    assert signal.decision.rule_id == "require_approval_for[0]"
    expected = {"ticket_id": "T-1002", "amount_usd": "350", "account": "acct-C-02"}
    assert signal.arguments_sha256 == sha256_hex(canonical_json(expected))
    assert signal.request_id.startswith("apr_")
    assert not isinstance(signal, GovernedOutcome)  # a signal to wait, not a refusal


def test_invoke_raises_permission_denied_for_policy_and_schema(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    with pytest.raises(PermissionDenied) as denied:
        invoke(run, "delete_record", {"kind": "ticket", "record_id": "T-1001"})
    assert denied.value.decision.rule_id == "deny[0]"
    with pytest.raises(PermissionDenied) as invalid:
        invoke(run, "get_ticket", {"ticket_id": 1001})
    assert invalid.value.decision.rule_id == "schema.get_ticket"
    with pytest.raises(PermissionDenied) as unknown:
        invoke(run, "drop_tables", {})
    assert unknown.value.decision.rule_id == "allowlist"


def test_invoke_raises_tool_failed_with_the_redacted_error(runtime: Runtime) -> None:
    with pytest.raises(ToolFailed) as failed:
        invoke(start_example_run(runtime), "get_ticket", {"ticket_id": "T-9999"})
    assert "T-9999" in str(failed.value)


def test_invoke_raises_budget_exceeded_when_calls_run_out(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    for _ in range(8):  # the example charter allows 8 tool calls per run
        invoke(run, "get_ticket", {"ticket_id": "T-1001"})
    with pytest.raises(BudgetExceeded) as exceeded:
        invoke(run, "get_ticket", {"ticket_id": "T-1001"})
    assert exceeded.value.decision.rule_id == "budget.max_tool_calls"
    assert invoke(start_example_run(runtime), "issue_refund", SMALL)["amount_usd"] == "45"
