"""``charter db``: create or upgrade Charter's database schema."""

from __future__ import annotations

import typer

from charter.cli.output import EXIT_FAILED, JsonOption, console, emit_json, fail
from charter.core.errors import DatabaseUnavailable
from charter.core.settings import Settings
from charter.storage import Database, current_revision, head_revision, upgrade

app = typer.Typer(
    help="Charter's database (CHARTER_DATABASE_URL; default a SQLite file in CHARTER_HOME).",
    no_args_is_help=True,
)


def _connect(as_json: bool, *, read_only: bool = False) -> Database:
    try:
        database = Database(Settings.from_env().database, read_only=read_only)
        database.check()
    except DatabaseUnavailable as exc:
        fail(str(exc), as_json=as_json)
    return database


@app.command("upgrade")
def upgrade_command(as_json: JsonOption = False) -> None:
    """Create the schema, or bring it to this version of Charter. Safe to run twice.

    Exit codes: 0 upgraded or already current; 2 the database cannot be reached.
    """
    database = _connect(as_json)
    try:
        before, after = upgrade(database)
    except DatabaseUnavailable as exc:
        fail(str(exc), as_json=as_json)
    finally:
        database.dispose()
    if as_json:
        emit_json({"ok": True, "database": database.shown_url, "from": before, "to": after})
    elif before == after:
        console.print(f"[green]ok[/] {database.shown_url} is already at schema {after}")
    else:
        console.print(f"[green]ok[/] {database.shown_url}: schema {before or 'none'} -> {after}")


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Show the database in use and whether its schema is current.

    Exit codes: 0 current; 1 behind (run charter db upgrade); 2 unreachable.
    """
    database = _connect(as_json, read_only=True)  # works on a read-only copy too
    try:
        current = current_revision(database)
    except DatabaseUnavailable as exc:
        fail(str(exc), as_json=as_json)
    finally:
        database.dispose()
    head = head_revision()
    if as_json:
        emit_json(
            {
                "database": database.shown_url,
                "dialect": database.dialect,
                "schema": current,
                "current": current == head,
                "expected": head,
            }
        )
    else:
        state = "[green]current[/]" if current == head else "[yellow]behind[/]"
        console.print(
            f"{database.shown_url} ({database.dialect}): schema {current or 'none'}, "
            f"expected {head}: {state}"
        )
    if current != head:
        raise typer.Exit(EXIT_FAILED)
