"""``charter audit``: prove the audit chain intact, and read its latest records."""

from __future__ import annotations

from typing import Annotated

import typer

from charter.cli.output import (
    EXIT_FAILED,
    JsonOption,
    console,
    emit_json,
    fail,
    stderr,
    tell_left_out,
)
from charter.cli.state import open_state
from charter.core.errors import UserError
from charter.storage import Database

app = typer.Typer(
    help="Verify and read the tamper-evident audit log (under CHARTER_HOME).", no_args_is_help=True
)

TenantOption = Annotated[
    str | None, typer.Option(help="Only this tenant's chain.", envvar="CHARTER_TENANT")
]


@app.command()
def verify(tenant: TenantOption = None, as_json: JsonOption = False) -> None:
    """Recompute every hash of every tenant's chain; name the first bad record.

    Reads without writing, so it works on a read-only or archived copy of the database (a
    read-only mount, a SQLite URI with mode=ro, a Postgres standby or SELECT-only role), and
    says when the storage is read-only.

    Exit codes: 0 intact; 1 altered, deleted, reordered or truncated records; 2 no log.
    """
    with open_state(as_json, must_exist=True, read_only=True) as state:
        read_only = _read_only_reason(state.database, as_json)
        if read_only is not None and not as_json:
            console.print(f"read-only copy: verifying without writing ({read_only})")
        report = state.audit.verify(tenant)
    if as_json:
        emit_json(
            report.as_dict()
            | {"storage_read_only": read_only is not None, "storage_note": read_only}
        )
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
    """Show the latest audit records, oldest first (and how many older ones are not shown)."""
    with open_state(as_json, must_exist=True, read_only=True) as state:
        records = state.audit.tail(limit, tenant)
        total = state.audit.count(tenant) if len(records) == limit else len(records)
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
    tell_left_out(len(records), total, "records", most=10_000)


def _read_only_reason(database: Database, as_json: bool) -> str | None:
    try:
        return database.read_only_reason()
    except UserError as exc:
        fail(str(exc), as_json=as_json)
