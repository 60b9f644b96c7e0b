"""Rendering run results for people (JSON output uses ``RunResult.as_dict``)."""

from __future__ import annotations

from rich.table import Table

from charter.cli.output import console
from charter.core.money import format_usd
from charter.execution.agent import RunResult

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


def print_run(result: RunResult) -> None:
    style = OUTCOME_STYLE.get(result.outcome, "white")
    console.print(
        f"run [bold]{result.run_id}[/] ({result.charter}, tenant {result.tenant}, "
        f"user {result.user}): [{style}]{result.outcome}[/]: {result.reason}"
    )
    table = Table("#", "tool", "outcome", "rule", "reason", box=None, pad_edge=False)
    for index, call in enumerate(result.tool_calls, 1):
        call_style = (
            "green"
            if call.outcome == "executed"
            else OUTCOME_STYLE.get(
                "approval_required" if call.outcome == "approval_required" else "denied", "red"
            )
        )
        table.add_row(
            str(index),
            call.tool,
            f"[{call_style}]{call.outcome}[/]",
            call.decision.rule_id,
            call.decision.reason,
        )
    if result.tool_calls:
        console.print(table)
    if result.approval is not None:
        console.print(
            f"approval request {result.approval.id}: {result.approval.tool} "
            f"arguments sha256 {result.approval.arguments_sha256[:16]}"
        )
    console.print(
        f"{result.model_calls} model calls, {result.total_tokens} tokens, "
        f"cost {format_usd(result.cost_usd)}, trace {result.trace_id}"
    )
    if result.final_text:
        console.print(f"agent: {result.final_text}", markup=False)
