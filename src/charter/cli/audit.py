"""``charter audit``: prove the audit chain intact, and read its latest records."""

from __future__ import annotations

from typing import Annotated

import typer

from charter.cli.output import EXIT_FAILED, JsonOption, console, emit_json, stderr
from charter.cli.state import open_state

app = typer.Typer(
    help="Verify and read the tamper-evident audit log (under CHARTER_HOME).", no_args_is_help=True
)

TenantOption = Annotated[
    str | None, typer.Option(help="Only this tenant's chain.", envvar="CHARTER_TENANT")
]


@app.command()
def verify(tenant: TenantOption = None, as_json: JsonOption = False) -> None:
    """Recompute every hash of every tenant's chain; name the first bad record.

    Exit codes: 0 intact; 1 altered, deleted, reordered or truncated records; 2 no log.
    """
    with open_state(as_json, must_exist=True) as state:
        report = state.audit.verify(tenant)
    if as_json:
        emit_json(report.as_dict())
    elif report.ok:
        console.print(
            f"[green]ok[/] audit chain intact: {report.records_checked} records, "
            f"{len(report.tenants)} tenant(s)"
        )
    else:
        brk = report.first_break
        assert brk is not None
        stderr.print(
            f"[bold red]BROKEN[/] tenant {brk.tenant!r}, position {brk.position}"
            f"{f' (row {brk.row_id})' if brk.row_id is not None else ''}: {brk.problem}",
            soft_wrap=True,
        )
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def tail(
    limit: Annotated[
        int,
        typer.Option(
            "-n",
            "--limit",
            min=1,
            max=10_000,
            help="How many records.",
            envvar="CHARTER_AUDIT_LIMIT",
        ),
    ] = 20,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the latest audit records, oldest first."""
    with open_state(as_json, must_exist=True) as state:
        records = state.audit.tail(limit, tenant)
    if as_json:
        emit_json([record.as_dict() for record in records])
        return
    # One line per record, never truncated: an operator greps this.
    for record in records:
        e = record.entry
        what = f"{e.tool} " if e.tool else ""
        rule = f" [{e.rule_id}]" if e.rule_id else ""
        console.print(
            f"{e.at.isoformat(timespec='seconds')} {e.tenant}#{record.position} {e.kind} "
            f"{what}-> {e.outcome} ({e.verdict or '-'}{rule}) user={e.user} run={e.run_id}",
            markup=False,
            soft_wrap=True,
        )
