"""``charter demo``: watch a deliberately gullible support agent being governed."""

from __future__ import annotations

import asyncio
import os

import typer
from rich.table import Table

from charter.cli.output import EXIT_FAILED, JsonOption, console, emit_json, fail
from charter.cli.render import OUTCOME_STYLE
from charter.core.errors import UserError
from charter.core.money import format_usd
from charter.core.settings import Settings
from charter.runtime import Runtime

# The demo's payment tool needs a credential; a demo value lets it run on a fresh machine.
# It is a Secret like any other: watch for it in the audit log and traces (it is not there).
_DEMO_SECRET_ENV = "CHARTER_SECRET_PAYMENTS_REFUND"  # noqa: S105 - a variable name
_DEMO_SECRET_VALUE = "sk_demo_payments_7f3a9c1e5b"  # noqa: S105 - the demo's fake credential


def demo(
    as_json: JsonOption = False,
) -> None:
    """Run the support-desk example: a gullible model that obeys any instruction it reads.

    Shows, per ticket, what the agent tried and what the tool layer allowed, denied or held
    for approval, then verifies the audit chain. Needs no network and no API key.

    Exit codes: 0 every ticket ended as the charter intends and the audit chain verifies;
    1 otherwise.
    """
    from charter_examples.support_desk.demo import run_demo

    os.environ.setdefault(_DEMO_SECRET_ENV, _DEMO_SECRET_VALUE)
    settings = Settings.from_env()
    try:
        with Runtime(settings) as runtime:
            rows = asyncio.run(run_demo(runtime))
            report = runtime.audit.verify()
            database_url = runtime.database.shown_url
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    ok = all(row.as_expected for row in rows) and report.ok
    if as_json:
        emit_json(
            {
                "ok": ok,
                "audit": {**report.as_dict(), "database": database_url},
                "runs": [
                    {
                        "ticket": row.ticket.ticket_id,
                        "title": row.ticket.title,
                        "expected_outcome": row.ticket.expected_outcome,
                        **row.result.as_dict(),
                    }
                    for row in rows
                ],
            }
        )
    else:
        _print(rows)
        verdict = "[green]intact[/]" if report.ok else "[bold red]BROKEN[/]"
        console.print(
            f"\naudit chain {verdict}: {report.records_checked} records in "
            f"{database_url} (check it yourself: charter audit verify)"
        )
    if not ok:
        raise typer.Exit(EXIT_FAILED)


def _print(rows: list[object]) -> None:
    from charter_examples.support_desk.demo import DemoRow

    table = Table(
        "ticket",
        "case",
        "outcome",
        "allowed",
        "denied",
        "awaiting",
        "cost",
        title="support-triage under charter (model: gullible-support-agent)",
    )
    notes: list[str] = []
    for row in rows:
        assert isinstance(row, DemoRow)
        result = row.result
        style = OUTCOME_STYLE.get(result.outcome, "white")
        mark = "" if row.as_expected else f" [bold red](expected {row.ticket.expected_outcome})[/]"
        denied = result.count("denied") + result.count("budget_exceeded")
        table.add_row(
            row.ticket.ticket_id,
            row.ticket.title,
            f"[{style}]{result.outcome}[/]{mark}",
            str(result.count("executed")),
            str(denied),
            str(result.count("approval_required")),
            format_usd(result.cost_usd),
        )
        for call in result.tool_calls:
            if call.decision.rule_id.endswith(".compensate"):
                notes.append(
                    f"{row.ticket.ticket_id}: {call.tool} -> {call.outcome}, "
                    f"{call.decision.reason} [bold]{call.decision.rule_id}[/]"
                )
            elif call.outcome not in ("executed", "deferred"):  # refused, held or dropped
                args = ", ".join(
                    f"{k}={v!r}"
                    for k, v in call.arguments.items()
                    if k in ("to", "template", "amount_usd", "account", "kind", "record_id")
                )
                notes.append(
                    f"{row.ticket.ticket_id}: {call.tool}({args}) -> {call.outcome} "
                    f"by [bold]{call.decision.rule_id}[/]: {call.decision.reason}"
                )
        if result.outcome == "escalated":
            notes.append(f"{row.ticket.ticket_id}: escalated to a human: {result.reason}")
    console.print(table)
    for note in notes:
        console.print(f"  {note}", soft_wrap=True)
