"""``Run.invoke`` says what kind of failure a call was, in the type it raises: a tool that
could not run for a reason the operator must fix is ``ToolMisconfigured`` (a ``ToolFailed``
and a ``UserError``), a tool's own error a plain ``ToolFailed``; a deferred call is not a
failure at all."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.desk import SupportDesk

from charter import Runtime
from charter.contract.tool import ToolContext, tool
from charter.core.errors import (
    GovernedOutcome,
    SecretNotFound,
    ToolFailed,
    ToolMisconfigured,
    UserError,
)
from charter.execution.call import ToolResult
from charter.execution.run import Run
from charter.identity.principal import Principal
from tests.execution.harness import make_runtime, start_example_run, tool_records, write_charter

SMALL = {"ticket_id": "T-1001", "amount_usd": 45, "account": "acct-C-01"}


def invoke(run: Run, name: str, arguments: Any) -> Any:
    return asyncio.run(run.invoke(name, arguments))


def test_a_missing_credential_raises_tool_misconfigured(tmp_path: Path) -> None:
    with make_runtime(tmp_path, secrets={}) as runtime:
        run = start_example_run(runtime)
        with pytest.raises(ToolMisconfigured) as raised:
            invoke(run, "issue_refund", SMALL)
        records = tool_records(runtime)

    error = raised.value
    # Both families: a governed outcome of the call, and the operator's to fix.
    assert isinstance(error, ToolFailed)
    assert isinstance(error, GovernedOutcome)
    assert isinstance(error, UserError)
    assert error.code == "tool_misconfigured"
    assert "SecretNotFound" in str(error)
    assert "CHARTER_SECRET_PAYMENTS_REFUND" in str(error)  # what to do next
    assert error.decision.rule_id == "tools.issue_refund"
    # Audited before it was raised, as every governed outcome is.
    assert [(r.entry.tool, r.entry.outcome) for r in records] == [("issue_refund", "error")]


def test_a_resource_the_run_was_not_given_raises_tool_misconfigured(tmp_path: Path) -> None:
    @tool
    def lookup(key: str, *, ctx: ToolContext) -> str:
        """Look something up in the desk.

        Args:
            key: what.
        """
        return str(ctx.resource(SupportDesk).tickets[key])

    charter = write_charter(tmp_path, "tools:\n  lookup: {effect: read}\n", tools=[lookup])
    with make_runtime(tmp_path) as runtime:
        run = runtime.start_run(charter, Principal("alice", "acme"))  # no desk given
        with pytest.raises(ToolMisconfigured) as raised:
            invoke(run, "lookup", {"key": "T-1001"})
    assert "ResourceMissing" in str(raised.value)


def test_a_tools_own_error_is_a_plain_tool_failed(runtime: Runtime) -> None:
    with pytest.raises(ToolFailed) as raised:
        invoke(start_example_run(runtime), "get_ticket", {"ticket_id": "T-9999"})
    assert type(raised.value) is ToolFailed
    assert not isinstance(raised.value, UserError)


def test_a_tools_own_lookup_error_is_not_misconfiguration(tmp_path: Path) -> None:
    @tool
    def find(key: str) -> str:
        """Find something.

        Args:
            key: what.
        """
        raise KeyError(key)

    charter = write_charter(tmp_path, "tools:\n  find: {effect: read}\n", tools=[find])
    with make_runtime(tmp_path) as runtime:
        run = runtime.start_run(charter, Principal("alice", "acme"))
        with pytest.raises(ToolFailed) as raised:
            invoke(run, "find", {"key": "x"})
    assert type(raised.value) is ToolFailed


def test_the_kind_survives_a_durable_round_trip(tmp_path: Path) -> None:
    with make_runtime(tmp_path, secrets={}) as runtime:
        run = start_example_run(runtime)
        result = asyncio.run(run.call_tool("issue_refund", SMALL))
    stored = ToolResult.from_dict(result.as_dict())
    with pytest.raises(ToolMisconfigured):
        stored.unwrap()


def test_a_deferred_call_is_accepted_not_refused(runtime: Runtime) -> None:
    """The example's send_email waits for the run to succeed: invoke gives None, as the call
    was accepted and has no value yet, and the effect is in the run's outbox."""
    desk = SupportDesk.default()
    run = start_example_run(runtime, desk=desk)
    email = {"to": "dana@example.com", "template": "refund_confirmation", "ticket_id": "T-1001"}

    assert invoke(run, "send_email", email) is None
    assert [e.tool for e in run.effects.deferred] == ["send_email"]
    assert desk.outbox == []  # not sent: the run has not succeeded
    settled = asyncio.run(run.settle_effects(succeeded=True))
    assert settled.failure is None
    assert [e.to for e in desk.outbox] == ["dana@example.com"]


def test_secret_not_found_itself_is_still_a_user_error_only() -> None:
    """The typed call failure is new; the resolver's own error is unchanged."""
    error = SecretNotFound("payments-refund", ["env"])
    assert isinstance(error, UserError)
    assert not isinstance(error, GovernedOutcome)
