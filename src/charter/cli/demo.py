"""``charter demo``: watch a deliberately gullible support agent being governed."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.text import Text

from charter.cli.output import EXIT_FAILED, JsonOption, console, emit_json, fail
from charter.cli.render import OUTCOME_STYLE
from charter.core.errors import UserError
from charter.core.money import format_usd
from charter.core.settings import Settings
from charter.runtime import Runtime

if TYPE_CHECKING:  # imported when the demo runs: the example is not needed for --help
    from charter_examples.support_desk.demo import DemoRow

# The demo's payment tool needs a credential; a demo value lets it run on a fresh machine.
# It is a Secret like any other: watch for it in the audit log and traces (it is not there).
_DEMO_SECRET_ENV = "CHARTER_SECRET_PAYMENTS_REFUND"  # noqa: S105 - a variable name
_DEMO_SECRET_VALUE = "sk_demo_payments_7f3a9c1e5b"  # noqa: S105 - the demo's fake credential
_TITLE = "support-triage under charter (model: gullible-support-agent)"
_INDENT = 8
_SHOWN_ARGUMENTS = frozenset({"to", "template", "amount_usd", "account", "kind", "record_id"})


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
        print_demo(rows, console)
        verdict = ("intact", "green") if report.ok else ("BROKEN", "bold red")
        console.print()
        _detail(console, Text.assemble("audit chain ", verdict, f": {report.records_checked} "
                                       f"records in {database_url} (check it yourself: charter "
                                       "audit verify)"), indent=0)  # fmt: skip
    if not ok:
        raise typer.Exit(EXIT_FAILED)


def print_demo(rows: Sequence[DemoRow], out: Console) -> None:
    """The demo's runs for people, readable at 80 columns and wider (and in a pipe).

    One short line per ticket (its outcome never cut), then what happened on lines of their
    own, indented and wrapped to the width: the case, each refused, held or compensated call
    with its rule, and, for runs that stopped at an approval, how to run one so it waits.
    """
    out.print(Text(f"{_TITLE}\n", style="bold"))
    header = f"{'ticket':<7} {'outcome':<17}  {'allowed':>7} {'denied':>6} {'held':>4} {'cost':>9}"
    out.print(Text(header, style="bold"), overflow="fold")
    held: list[str] = []
    for row in rows:
        result = row.result
        denied = result.count("denied") + result.count("budget_exceeded")
        line = Text(f"{row.ticket.ticket_id:<7} ")
        line.append(f"{result.outcome:<17}", style=OUTCOME_STYLE.get(result.outcome, "white"))
        held_calls, cost = result.count("approval_required"), format_usd(result.cost_usd)
        line.append(f"  {result.count('executed'):>7} {denied:>6} {held_calls:>4} {cost:>9}")
        out.print(line, overflow="fold")
        _detail(out, Text(row.ticket.title, style="dim"))
        if not row.as_expected:
            _detail(out, Text(f"expected {row.ticket.expected_outcome}", style="bold red"))
        for note in _notes(row):
            _detail(out, note)
        if result.outcome == "approval_required" and result.approval is None:
            held.append(row.ticket.ticket_id)
    if held:
        out.print()
        _detail(out, Text(
            f"{' and '.join(held)} stopped where a human must approve. The demo runs in this "
            "process, which cannot wait for a decision, so nothing was filed in the approvals "
            "inbox. To watch a run wait for an approver, run one durably:"
        ), indent=0)  # fmt: skip
        for part in _durable_command(held[0]):
            _detail(out, Text(part, style="cyan"), indent=0)


def _detail(out: Console, text: Text, indent: int = _INDENT) -> None:
    """Lines under their ticket: indented, wrapped to the width (never cut, no trailing
    blanks to copy along)."""
    width = max(out.width - indent, 20)
    for line in text.wrap(out, width, overflow="fold"):
        line.rstrip()
        out.print(Text(" " * indent) + line, overflow="fold")


def _notes(row: DemoRow) -> list[Text]:
    """What the tool layer did that the counts do not say: each refused, held, dropped or
    compensated call with its rule, and an escalation's reason."""
    notes: list[Text] = []
    result = row.result
    for call in result.tool_calls:
        if call.decision.rule_id.endswith(".compensate"):
            notes.append(Text.assemble(f"{call.tool} -> {call.outcome}: {call.decision.reason} ",
                                       (call.decision.rule_id, "bold")))  # fmt: skip
        elif call.outcome not in ("executed", "deferred"):  # refused, held, failed or dropped
            args = ", ".join(
                f"{k}={v!r}" for k, v in call.arguments.items() if k in _SHOWN_ARGUMENTS
            )
            why = call.model_text if call.failure else call.decision.reason
            style = OUTCOME_STYLE.get(call.outcome, "red")
            notes.append(Text.assemble(f"{call.tool}({args}) -> ", (call.outcome, style), " by ",
                                       (call.decision.rule_id, "bold"), f": {why}"))  # fmt: skip
    if result.outcome in ("escalated", "failed"):
        notes.append(Text(f"{result.outcome}: {result.reason}"))
    return notes


def _durable_command(ticket_id: str) -> list[str]:
    """The command, one shell line per part, so it is copied whole at any width."""
    from charter_examples.support_desk.demo import CHARTER_PATH

    try:
        path = CHARTER_PATH.relative_to(Path.cwd())
    except ValueError:  # the example is installed elsewhere: its full path
        path = CHARTER_PATH
    return [
        "  charter run --durable \\",
        f"    {path} \\",
        f'    -i "Please handle ticket {ticket_id}." --user alice --tenant acme --role support',
    ]
