"""Rendering run results for people (JSON output uses ``RunResult.as_dict``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rich.text import Text

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
    _print_calls(result.get("tool_calls", []))
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


def _print_calls(calls: list[dict[str, Any]]) -> None:
    """One line per call (number, tool, outcome, rule: never cut, at any width), and under a
    call that did not go ahead its reason, or its error, indented and wrapped to the width."""
    rows = [
        (str(i), call["tool"], call["outcome"], call["decision"]["rule_id"])
        for i, call in enumerate(calls, 1)
    ]
    widths = [max((len(row[c]) for row in rows), default=0) for c in range(3)]
    for row, call in zip(rows, calls, strict=True):
        done = call["outcome"] in ("executed", "deferred")
        style = "green" if done else OUTCOME_STYLE.get(call["outcome"], "red")
        line = Text(f"{row[0]:>{widths[0]}}  {row[1]:<{widths[1]}}  ")
        line.append(f"{row[2]:<{widths[2]}}", style=style)
        line.append(f"  {row[3]}")
        console.print(line, overflow="fold")
        if not done:
            why = call.get("detail") if call.get("failure") else call["decision"]["reason"]
            indent = widths[0] + 4
            for part in Text(str(why)).wrap(console, max(console.width - indent, 20)):
                part.rstrip()
                console.print(Text(" " * indent) + part, overflow="fold")
