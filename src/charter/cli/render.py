"""Rendering run results for people (JSON output uses ``RunResult.as_dict``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rich.table import Table

from charter.cli.output import console
from charter.core.money import format_usd
from charter.identity.secrets import REDACTED

__all__ = ["OUTCOME_STYLE", "print_run"]

OUTCOME_STYLE = {
    "succeeded": "green",
    "approval_required": "yellow",
    "escalated": "yellow",
    "denied": "red",
    "budget_exceeded": "red",
    "failed": "red",
    "killed": "red",
}


def print_run(result: dict[str, Any]) -> None:
    """A run for people, from ``RunResult.as_dict()`` (in-process and durable runs alike)."""
    outcome = str(result["outcome"])
    console.print(
        f"run [bold]{result['run_id']}[/] ({result.get('charter', '?')}, tenant "
        f"{result.get('tenant', '?')}, user {result.get('user', '?')}): "
        f"[{OUTCOME_STYLE.get(outcome, 'white')}]{outcome}[/]: {result['reason']}",
        soft_wrap=True,
    )
    calls = result.get("tool_calls", [])
    table = Table("#", "tool", "outcome", "rule", "reason", box=None, pad_edge=False)
    for index, call in enumerate(calls, 1):
        done = call["outcome"] in ("executed", "deferred")
        style = "green" if done else OUTCOME_STYLE.get(call["outcome"], "red")
        decision = call["decision"]
        table.add_row(str(index), call["tool"], f"[{style}]{call['outcome']}[/]",
                      decision["rule_id"], decision["reason"])  # fmt: skip
    if calls:
        console.print(table)
    approval = result.get("approval")
    if approval:
        console.print(
            f"approval request {approval['id']}: {approval['tool']} "
            f"arguments sha256 {approval['arguments_sha256'][:16]}"
        )
    if "model_calls" in result:
        console.print(
            f"{result['model_calls']} model calls, {result['total_tokens']} tokens, "
            f"cost {format_usd(Decimal(result['cost_usd']))}, trace {result['trace_id']}"
        )
    if result.get("input_redacted"):
        console.print(
            "note: your input held a credential this charter uses; the model, the audit log "
            f"and traces saw {REDACTED} in its place",
            markup=False,
            soft_wrap=True,
        )
    if result.get("final_text"):
        console.print(f"agent: {result['final_text']}", markup=False)
