"""Terminal views of eval reports and comparisons (the JSON report is the source)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.markup import escape
from rich.table import Table

from charter.cli.output import console
from charter.evaluation.compare import Comparison

__all__ = ["print_comparison", "print_report"]

_STATUS_STYLE = {"passed": "green", "failed": "bold red", "flaky": "yellow", "error": "magenta"}
_LISTED = 15


def print_report(report: Mapping[str, Any]) -> None:
    charter = report["charter"]
    console.print(
        f"charter [bold]{escape(charter['name'])}[/] ({charter['sha256'][:12]}), model "
        f"{escape(report['model'])}, {report['epochs']} epoch(s), "
        f"{report['duration_seconds']:.1f} s"
    )
    if not report["enforcement"]:
        console.print("[bold white on red] UNSAFE: enforcement was switched off (--no-enforce) [/]")
    table = Table("kind", "tasks", "passed", "failed", "flaky", "errors", "pass rate", "95% CI")
    for kind, s in report["summary"].items():
        table.add_row(
            kind,
            str(s["tasks"]),
            str(s["passed"]),
            str(s["failed"]),
            str(s["flaky"]),
            str(s["errors"]),
            f"{s['pass_rate']:.1%}",
            f"{s['ci_low']:.1%}-{s['ci_high']:.1%}",
        )
    console.print(table)
    bad = [t for t in report["tasks"] if t["status"] != "passed"]
    for task in bad[:_LISTED]:
        style = _STATUS_STYLE[task["status"]]
        console.print(
            f"  [{style}]{task['status']}[/] {escape(task['key'])}: {_why(task)}", soft_wrap=True
        )
    if len(bad) > _LISTED:
        console.print(f"  ... and {len(bad) - _LISTED} more (see the HTML or JSON report)")
    gate = report.get("gate")
    if gate:
        if gate["passed"]:
            console.print(f"[bold green]gate passed[/] (threshold {gate['threshold']})")
        else:
            console.print(f"[bold red]gate FAILED[/] (threshold {gate['threshold']}):")
            for reason in gate["reasons"]:
                console.print(f"  - {escape(reason)}", soft_wrap=True)


def _why(task: Mapping[str, Any]) -> str:
    for epoch in task["epochs"]:
        if epoch.get("error"):
            return escape(epoch["error"][:300])
        failing = [c for c in epoch["checks"] if not c["passed"]]
        if failing:
            first = failing[0]
            more = f" (+{len(failing) - 1} more)" if len(failing) > 1 else ""
            return escape(f"{first['check']}: {first['detail'][:300]}{more}")
    return ""


def print_comparison(comparison: Comparison, *, show_all: bool = False) -> None:
    """Each kind of change with its count and its first tasks (every task if ``show_all``).

    A list cut short says how many it left out and how to see them, never silently.
    """
    data = comparison.as_dict()
    for label, key, style in (
        ("regressions", "regressions", "bold red"),
        ("fixes", "fixes", "green"),
        ("still failing", "still_failing", "yellow"),
        ("added", "added", "white"),
        ("removed", "removed", "white"),
    ):
        changes = data.get(key) or []
        console.print(f"[{style}]{label}[/]: {len(changes)}")
        shown = changes if show_all else changes[:_LISTED]
        for change in shown:
            checks = ", ".join(change.get("failing_checks") or [])
            console.print(
                f"  {escape(change['key'])}: {change.get('old_status')} -> "
                f"{change.get('new_status')}" + (f" ({escape(checks)})" if checks else ""),
                soft_wrap=True,
            )
        if len(changes) > len(shown):
            console.print(
                f"  ... and {len(changes) - len(shown)} more (use --all or --json to list them)"
            )
