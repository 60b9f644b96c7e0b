"""``charter runs``: the run inspector. List runs, and show one as a timeline.

``list`` reads the ``runs`` table (newest first, filtered). ``show`` explains one run: its
header, usage against budgets, and every model call, tool call, decision, approval and
deferred or compensated effect in time order (``charter.observability.timeline``). A durable
run queued but not started yet is known only to DBOS: ``show`` reports its status as before.
For a durable run, ``--json`` also carries DBOS's ``status``, ``queue``, ``executor`` and
``result``, as it always has.

Exit codes for ``show``: 0 the run succeeded; 1 it ended otherwise; 3 it has not ended yet
(queued, running or parked for approval; with ``--wait``, not within the time given);
2 bad input, an unknown run or an unreachable database. ``list``: 0, or 2.
"""

from __future__ import annotations

import time
from datetime import UTC
from pathlib import Path
from typing import Annotated, Final, get_args

import typer
from rich.text import Text

from charter.cli.output import (
    EXIT_FAILED,
    JsonOption,
    check_text,
    console,
    emit_json,
    fail,
    left_out,
    stderr,
    tell_left_out,
)
from charter.cli.render import OUTCOME_STYLE, print_run
from charter.cli.render_inspector import format_duration, print_columns, print_timeline
from charter.cli.state import open_state
from charter.cli.times import parse_time
from charter.contract.loader import Charter
from charter.core.clock import SystemClock
from charter.core.errors import DatabaseUnavailable, UserError
from charter.core.money import format_usd
from charter.core.settings import Settings
from charter.durable import RunStatus, run_status
from charter.execution.agent import RunOutcome
from charter.observability.runs import RunRow, RunStore
from charter.observability.timeline import Timeline, TimelineReader

__all__ = ["app"]

EXIT_NOT_ENDED = 3
_ENDED = frozenset({"SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"})
_OUTCOMES: Final[tuple[str, ...]] = (*get_args(RunOutcome), "running")
_POLL_SECONDS = 0.25
_MOST = 10_000  # the largest -n

app = typer.Typer(help="Inspect runs: list them, or show one as a timeline.", no_args_is_help=True)

TimeOption = Annotated[
    str | None,
    typer.Option(help="An ISO 8601 time (UTC if no zone) or an age (2h, 7d).", show_default=False),
]


@app.command("list")
def list_runs(
    charter: Annotated[str | None, typer.Option(help="Only this charter's runs.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's runs.")] = None,
    user: Annotated[str | None, typer.Option(help="Only runs acting for this user.")] = None,
    outcome: Annotated[
        str | None, typer.Option(help=f"Only runs that ended so: {', '.join(_OUTCOMES)}.")
    ] = None,
    since: TimeOption = None,
    until: TimeOption = None,
    limit: Annotated[
        int, typer.Option("-n", "--limit", min=1, max=_MOST, help="How many, newest first.")
    ] = 50,
    as_json: JsonOption = False,
) -> None:
    """List recorded runs, newest first.

    Duration is the run's own clock: time parked waiting for an approval is not in it
    (charter runs show RUN shows the wait).

    Example: charter runs list --charter support-triage --outcome denied --since 24h
    """
    for value, option in ((charter, "--charter"), (tenant, "--tenant"), (user, "--user")):
        if value is not None:
            check_text(value, option, as_json=as_json)
    if outcome is not None and outcome not in _OUTCOMES:
        fail(f"--outcome {outcome!r} is not one of {', '.join(_OUTCOMES)}", as_json=as_json)
    now = SystemClock().now()
    try:
        start = parse_time(since, "--since", now=now) if since is not None else None
        end = parse_time(until, "--until", now=now) if until is not None else None
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    with open_state(as_json, must_exist=True, read_only=True) as state:
        try:
            store = RunStore(state.database)
            rows = store.list(charter=charter, tenant=tenant, user=user, outcome=outcome,
                              since=start, until=end, limit=limit)  # fmt: skip
            # Counted only when the listing is full: then it may have been cut.
            total = len(rows)
            if total == limit:
                total = store.count(charter=charter, tenant=tenant, user=user,
                                    outcome=outcome, since=start, until=end)  # fmt: skip
        except UserError as exc:
            fail(str(exc), as_json=as_json)
    if as_json:
        emit_json({"ok": True, "runs": [row.as_dict() for row in rows],
                   **left_out(len(rows), total)})  # fmt: skip
        return
    if not rows:
        console.print("no runs match")
        return
    _print_runs(rows)
    tell_left_out(len(rows), total, "runs", most=_MOST)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="The run id (run_...).", show_default=False)],
    wait: Annotated[
        float,
        typer.Option(help="Wait up to this many seconds for the run to end.", min=0),
    ] = 0.0,
    charter_file: Annotated[
        Path | None,
        typer.Option(
            "--charter",
            help="The charter file the run ran under, to show its budgets as limits "
            "(it must be that exact version).",
            exists=True,
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show a run as a timeline: every model call, tool call, decision and approval.

    Each call shows its arguments (redacted, as audited), verdict, rule id, reason,
    duration and outcome; each approval request who decided it, when, and the wait.
    A durable run still queued shows its DBOS status.

    Example: charter runs show run_3f2a... --charter examples/support_desk/charter.yaml
    """
    check_text(run_id, "RUN_ID", as_json=as_json)
    charter: Charter | None = None
    if charter_file is not None:
        try:
            charter = Charter.load(charter_file)
        except UserError as exc:
            fail(f"{exc}\nrun 'charter validate {charter_file}' for details", as_json=as_json)
    try:
        settings = Settings.from_env()
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    deadline = time.monotonic() + wait
    with open_state(as_json, read_only=True) as state:
        try:
            reader = TimelineReader(state.database, SystemClock())
            timeline, durable = _look(reader, settings, run_id, charter)
            while not _ended(timeline, durable) and time.monotonic() < deadline:
                time.sleep(_POLL_SECONDS)
                timeline, durable = _look(reader, settings, run_id, charter)
        except UserError as exc:
            fail(str(exc), as_json=as_json)
    if timeline is None and durable is None:
        fail(f"no run {run_id!r}; 'charter runs list' shows the recorded runs", as_json=as_json)
    _report(timeline, durable, as_json)


def _look(
    reader: TimelineReader, settings: Settings, run_id: str, charter: Charter | None
) -> tuple[Timeline | None, RunStatus | None]:
    """The run as recorded, and as DBOS knows it when it is a durable run (None if not)."""
    timeline = reader.find(run_id, charter=charter)
    try:
        durable: RunStatus | None = run_status(settings, run_id)
    except DatabaseUnavailable:
        raise
    except UserError:  # not a durable run, or no durable run ever started here
        durable = None
    return timeline, durable


def _ended(timeline: Timeline | None, durable: RunStatus | None) -> bool:
    if timeline is not None:
        return timeline.ended
    return durable is None or durable.status in _ENDED


def _report(timeline: Timeline | None, durable: RunStatus | None, as_json: bool) -> None:
    if as_json:
        emit_json({
            "ok": True,
            **(durable.as_dict() if durable else {}),
            **(timeline.as_dict() if timeline else {}),
        })  # fmt: skip
    elif timeline is not None:
        print_timeline(timeline)
        if durable is not None and durable.status not in _ENDED:
            console.print(_durable_line(durable), soft_wrap=True, markup=False)
    elif durable is not None and durable.result is not None:
        print_run(durable.result)
    elif durable is not None:
        console.print(_durable_line(durable), soft_wrap=True, markup=False)
    if not _ended(timeline, durable):
        raise typer.Exit(EXIT_NOT_ENDED)
    if timeline is not None:
        if timeline.outcome != "succeeded":
            raise typer.Exit(EXIT_FAILED)
    elif durable is None or durable.result is None or durable.result.get("outcome") != "succeeded":
        raise typer.Exit(EXIT_FAILED)


def _durable_line(status: RunStatus) -> str:
    where = f" on {status.executor}" if status.executor else ""
    return f"run {status.run_id}: {status.status}{where} (queue {status.queue})"


def _print_runs(rows: list[RunRow]) -> None:
    header = ("run", "started (UTC)", "charter", "tenant", "user", "outcome", "calls", "tokens",
              "cost", "duration")  # fmt: skip
    lines = []
    for row in rows:
        duration = "-" if row.elapsed_seconds is None else format_duration(row.elapsed_seconds)
        # A run's totals are written when it ends: a running run's row says 0 of everything,
        # which is not what it used ('charter runs show ID' counts it so far).
        ended = row.outcome != "running"
        calls, tokens, cost = ("-", "-", "-")
        if ended:
            calls, tokens = _known(row.tool_calls), _known(row.total_tokens)
            cost = "?" if row.cost_usd is None else format_usd(row.cost_usd)
        lines.append((
            row.id, row.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            row.charter_name, row.tenant, row.user,
            Text(row.outcome, style=OUTCOME_STYLE.get(row.outcome, "yellow")),
            calls, tokens, cost, duration,
        ))  # fmt: skip
    print_columns(header, lines, right={6, 7, 8, 9})
    if any(row.unreadable for row in rows):
        stderr.print(
            "note: figures shown as ? are unreadable in the database (no amount: negative, "
            "NaN or text); they are left out of every total, and 'charter runs show RUN' "
            "names them",
            markup=False,
            soft_wrap=True,
        )


def _known(count: int | None) -> str:
    return "?" if count is None else str(count)
