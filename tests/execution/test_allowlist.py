"""Stage 2, the allowlist: only tools the charter declares (and a toolkit binds) can run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from charter.contract.tool import tool
from charter.core.errors import CharterInvalid
from charter.identity.principal import Principal
from charter.runtime import Runtime
from tests.execution.harness import audit_rows, call, start_example_run, tool_records, write_charter


def test_undeclared_tool_is_denied_by_the_allowlist_rule(runtime: Runtime) -> None:
    run = start_example_run(runtime)

    result = call(run, "transfer_funds", {"to": "ACCT-EVIL-9", "amount_usd": 1000})

    assert result.outcome == "denied"
    assert result.decision.rule_id == "allowlist"
    assert result.decision.stage == "allowlist"
    assert "'transfer_funds' is not in the charter's allowlist" in result.decision.reason
    assert result.model_text.startswith("DENIED: ")
    assert "[rule allowlist]" in result.model_text
    assert run.ledger.totals().tool_calls == 0  # refused before the budget stage
    [record] = tool_records(runtime)
    assert (record.entry.tool, record.entry.outcome, record.entry.rule_id) == (
        "transfer_funds",
        "denied",
        "allowlist",
    )


def test_tool_bound_by_a_toolkit_but_not_declared_is_denied(
    runtime: Runtime, tmp_path: Path
) -> None:
    ran: list[str] = []

    @tool
    def declared() -> str:
        """A declared tool."""
        ran.append("declared")
        return "ok"

    @tool
    def undeclared() -> str:
        """Provided by the toolkit but not named in the charter."""
        ran.append("undeclared")
        return "ok"

    charter = write_charter(
        tmp_path, "tools:\n  declared: {effect: read}\n", tools=[declared, undeclared]
    )
    run = runtime.start_run(charter, Principal("alice", "acme"))

    assert call(run, "undeclared", {}).decision.rule_id == "allowlist"
    assert call(run, "declared", {}).executed
    assert ran == ["declared"]
    assert set(charter.tools) == {"declared"}  # what the model is offered


@pytest.mark.parametrize(
    "name",
    [
        None,
        5,
        ["get_ticket"],
        "",
        "GET_TICKET",
        "get_ticket ",
        "get_ticket\n",
        "\ud800",
        "get_tícket",
        "x" * 100_000,
    ],
    ids=repr,
)
def test_malformed_tool_names_are_denied_and_audited_safely(runtime: Runtime, name: Any) -> None:
    run = start_example_run(runtime)

    result = call(run, name, {"ticket_id": "T-1001"})

    assert result.outcome == "denied"
    assert result.decision.rule_id == "allowlist"
    [row] = audit_rows(runtime)
    assert row["rule_id"] == "allowlist"
    assert isinstance(row["tool"], str)
    assert len(row["tool"]) < 200  # bounded, whatever the model sent
    assert row["tool"] != "get_ticket"
    row["payload"].encode("utf-8")  # storable: no lone surrogates
    assert runtime.audit.verify().ok


def test_non_string_name_whose_repr_is_a_tool_name_is_still_denied(runtime: Runtime) -> None:
    class Sneaky:
        def __repr__(self) -> str:
            return "get_ticket"

    result = call(start_example_run(runtime), Sneaky(), {"ticket_id": "T-1001"})

    assert result.outcome == "denied"
    assert result.decision.rule_id == "allowlist"


def test_declared_but_unbound_tool_cannot_exist_at_runtime(tmp_path: Path) -> None:
    with pytest.raises(CharterInvalid) as raised:
        write_charter(tmp_path, "tools:\n  ghost_tool: {effect: write}\n")

    unbound = [
        p for p in raised.value.problems if "'ghost_tool' is declared but no toolkit" in p.message
    ]
    assert [p.line for p in unbound] == [5]  # points at the declaration in charter.yaml
