"""``charter kill`` and ``charter revive``: pull and lift the kill switch, for every process.

Register both at the top level::

    from charter.cli import kill
    app.command()(kill.kill)
    app.command()(kill.revive)

``charter kill --list`` shows the kills in force.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from charter.cli.output import JsonOption, check_text, console, emit_json, fail, stderr
from charter.cli.state import State, open_state
from charter.core.clock import SystemClock
from charter.core.errors import UserError
from charter.core.settings import Settings
from charter.durable import stop_parked_runs
from charter.execution.approval_store import ApprovalStore
from charter.execution.kill_store import ActiveKillRecord, KillSwitchStore
from charter.governance.kill_scopes import require_known_scope
from charter.identity.roles import RoleGrants

__all__ = ["kill", "revive"]

ScopeArgument = Annotated[
    str | None,
    typer.Argument(
        help="'all', 'charter:<name>' or 'tenant:<id>'.", show_default=False, metavar="SCOPE"
    ),
]
OperatorOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Who you are; recorded with the kill. Required.",
        envvar="CHARTER_OPERATOR",
        show_default=False,
    ),
]


@contextmanager
def _opened(as_json: bool, *, read_only: bool = False) -> Iterator[tuple[KillSwitchStore, State]]:
    """The store on the configured database, audited; errors exit 2 with the message.
    ``read_only`` for --list: it works on a read-only copy too."""
    with open_state(as_json, must_exist=read_only, read_only=read_only) as state:
        try:
            store = KillSwitchStore(state.database, SystemClock(), state.bus)
            try:
                yield store, state
            finally:
                store.close()
        except UserError as exc:
            fail(str(exc), as_json=as_json)


def _operator(operator: str | None, as_json: bool) -> str:
    if not operator:
        fail(
            "say who you are with --as USER (or set CHARTER_OPERATOR); it is recorded with "
            "the kill switch",
            as_json=as_json,
        )
    return check_text(operator, "--as", as_json=as_json)


def _line(record: ActiveKillRecord) -> str:
    when = record.killed_at.isoformat(timespec="seconds")
    return f"{record.scope}: {record.reason} (by {record.killed_by} at {when})"


def kill(
    scope: ScopeArgument = None,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            help="Why (1-500 characters); shown to whoever is stopped. Required.",
            show_default=False,
        ),
    ] = None,
    operator: OperatorOption = None,
    list_kills: Annotated[
        bool, typer.Option("--list", help="Show the kills in force instead (no SCOPE).")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Kill SCOPE even if no charter or tenant of that name is known here "
            "(a warning is printed). No environment variable, on purpose.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Stop every tool and model call in SCOPE, in every process, from now on.

    Calls already running in SCOPE are stopped too (within about 50 ms): async tools are
    cancelled, sync tools are told through their context; they are recorded interrupted.
    Runs in SCOPE parked for approval stop now: their requests are withdrawn and durable
    runs are woken to end as killed, discarding their outboxes.

    A charter or tenant this database has no record of (no runs, releases, role grants or
    audit records) is refused as a likely typo, with the known names listed; --force kills
    it anyway.

    Example: charter kill charter:support-triage --reason "refund loop" --as alice

    charter kill --list shows the kills in force (who, when, why).

    Database: CHARTER_DATABASE_URL (default a SQLite file in CHARTER_HOME).

    Exit codes: 0 killed or listed; 2 bad input, unknown scope without --force, already
    killed, or database unreachable.
    """
    if list_kills:
        if scope is not None or reason is not None:
            fail("--list takes no SCOPE and no --reason", as_json=as_json)
        _list(as_json)
        return
    if scope is None:
        fail("name the SCOPE to kill: 'all', 'charter:<name>' or 'tenant:<id>'", as_json=as_json)
    if reason is None:
        fail("a kill needs --reason TEXT; it is shown to whoever is stopped", as_json=as_json)
    by = _operator(operator, as_json)
    check_text(scope, "SCOPE", as_json=as_json)
    check_text(reason, "--reason", as_json=as_json)
    with _opened(as_json) as (store, state):
        warning = require_known_scope(state.database, scope, force=force)
        if warning is not None:
            stderr.print(warning, markup=False, soft_wrap=True)
        record = store.kill(scope, reason, by=by)
        clock = SystemClock()
        approvals = ApprovalStore(
            state.database, clock, state.bus, RoleGrants(state.database, clock)
        )
        stopped = stop_parked_runs(
            Settings.from_env(), approvals, scope=record.scope, reason=reason, by=by
        )
    if as_json:
        report = {"ok": True, "killed": record.as_dict(), "parked_runs_stopped": stopped}
        emit_json(report if warning is None else {**report, "warning": warning})
    else:
        console.print(f"[bold red]killed[/] {_line(record)}", soft_wrap=True)
        for run_id in stopped:
            console.print(f"stopped {run_id}, which was waiting for approval", soft_wrap=True)


def revive(
    scope: ScopeArgument = None, operator: OperatorOption = None, as_json: JsonOption = False
) -> None:
    """Lift the kill on SCOPE; calls in it are allowed again from the next call on.

    Example: charter revive charter:support-triage --as alice

    Exit codes: 0 revived; 2 bad input, SCOPE not killed, or database unreachable.
    """
    if scope is None:
        fail(
            "name the SCOPE to revive; 'charter kill --list' shows what is killed", as_json=as_json
        )
    by = _operator(operator, as_json)
    check_text(scope, "SCOPE", as_json=as_json)
    with _opened(as_json) as (store, _):
        record = store.revive(scope, by=by)
    if as_json:
        emit_json({"ok": True, "revived": record.as_dict(), "revived_by": by})
    else:
        console.print(f"[green]revived[/] {_line(record)}; revived by {by}", soft_wrap=True)


def _list(as_json: bool) -> None:
    with _opened(as_json, read_only=True) as (store, _):
        records = store.active()
    if as_json:
        emit_json({"ok": True, "kills": [record.as_dict() for record in records]})
    elif not records:
        console.print("no kill switch is active")
    else:
        for record in records:
            console.print(_line(record), markup=False, soft_wrap=True)
