"""``charter slo report``, and ``charter runs label``, which feeds escalation accuracy.

Register both::

    from charter.cli import slo
    app.add_typer(slo.app, name="slo")
    runs.app.command("label")(slo.label)

``slo report`` is meant for scripts as much as for people: as an alert or a deploy gate, its
exit code says whether any SLO is breached (docs/slos.md).

Exit codes for ``report``: 0 every SLO met or without data; 1 at least one breached; 2 bad
input (invalid charter, malformed --window) or an unreachable database. For ``label``: 0
labeled; 2 bad input (unknown run, a run that was not escalated, unknown value, no --as).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from charter.cli.output import EXIT_FAILED, JsonOption, check_text, console, emit_json, fail
from charter.cli.state import open_state
from charter.contract.loader import Charter
from charter.contract.schema import parse_window
from charter.core.clock import SystemClock
from charter.core.errors import CharterInvalid, UserError
from charter.core.money import format_usd
from charter.observability.runs import RunStore
from charter.observability.slo import SloResult, evaluate_slos

__all__ = ["app", "label"]

app = typer.Typer(
    help="Service-level objectives of a charter, from its recorded runs.", no_args_is_help=True
)

_COLUMNS = (
    "slo",
    "objective",
    "window",
    "value",
    "status",
    "budget left",
    "burn",
    "runs",
    "based on",
)


@app.command()
def report(
    charter_file: Annotated[
        Path, typer.Argument(help="The charter YAML file declaring slos:.", show_default=False)
    ],
    window: Annotated[
        str | None,
        typer.Option(
            "--window",
            help="Evaluate every SLO over this window instead of its own (30m, 24h, 7d, 2w): "
            "a short window gives the current burn rate.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate the charter's SLOs over the runs recorded in Charter's database.

    For each SLO: objective, current value, met or BREACHED, error budget left and burn rate,
    over the runs of the charter that started in the window and have ended. No runs in a
    window is reported as no data, which is not a breach. Definitions: docs/slos.md.

    Example: charter slo report examples/support_desk/charter.yaml --window 1h

    Exit codes: 0 all met (or no data); 1 an SLO is breached; 2 bad input or no database.
    """
    if window is not None:
        try:
            parse_window(window)
        except ValueError as exc:
            fail(f"--window: {exc}", as_json=as_json)
    try:
        charter = Charter.load(charter_file)
    except CharterInvalid as exc:
        fail(f"{exc}\nrun 'charter validate {charter_file}' for details", as_json=as_json)
    now = SystemClock().now()
    with open_state(as_json, must_exist=True, read_only=True) as state:
        try:
            results = evaluate_slos(
                RunStore(state.database), charter.name, charter.spec.slos, now=now, window=window
            )
        except UserError as exc:
            fail(str(exc), as_json=as_json)
    breached = [r.name for r in results if r.breached]
    if as_json:
        emit_json(
            {
                "ok": not breached,
                "charter": charter.name,
                "file": str(charter_file),
                "at": now.isoformat(),
                "window": window,
                "breached": breached,
                "slos": [r.as_dict() for r in results],
            }
        )
    else:
        _print_report(charter.name, now, results, breached)
    if breached:
        raise typer.Exit(EXIT_FAILED)


def label(
    run_id: Annotated[str, typer.Argument(help="The run id (run_...).", show_default=False)],
    escalation: Annotated[
        str | None,
        typer.Option(
            "--escalation",
            help="Was the run right to escalate? confirmed (yes) or overturned (no).",
            show_default=False,
        ),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Who labels the run; recorded with the label.",
            envvar="CHARTER_OPERATOR",
            show_default=False,
        ),
    ] = None,
    note: Annotated[str, typer.Option("--note", help="Why, for whoever reads it later.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Label an escalated run: was handing it to a human right? Feeds escalation_accuracy.

    Labeling a run again replaces its label.

    Example: charter runs label run_3f2a... --escalation confirmed --as lead --note "legal"

    Exit codes: 0 labeled; 2 unknown run, a run that was not escalated, bad value, no --as.
    """
    for value, what in (
        (run_id, "RUN_ID"),
        (escalation, "--escalation"),
        (by, "--as"),
        (note, "--note"),
    ):
        if value is not None:
            check_text(value, what, as_json=as_json)
    if escalation is None:
        fail(
            "say whether the escalation was right: --escalation confirmed|overturned",
            as_json=as_json,
        )
    with open_state(as_json, must_exist=True) as state:
        try:
            store = RunStore(state.database)
            run = store.get(run_id)
            if run.outcome != "escalated":
                ended = "has not ended" if run.outcome == "running" else f"ended {run.outcome}"
                raise UserError(
                    f"run {run_id} {ended}; only runs that ended escalated take an escalation label"
                )
            labeled = store.label(
                run_id, "escalation", escalation, by=by or "", note=note, at=SystemClock().now()
            )
        except UserError as exc:
            fail(str(exc), as_json=as_json)
    if as_json:
        emit_json({"ok": True, **labeled.as_dict()})
        return
    console.print(
        f"run {labeled.run_id}: escalation {labeled.value} by {labeled.labeled_by}",
        markup=False,
        soft_wrap=True,
    )


def _print_report(
    charter: str, now: datetime, results: list[SloResult], breached: list[str]
) -> None:
    if not results:
        console.print(
            f"charter {charter!r} declares no SLOs; add slos: to it (docs/slos.md)",
            markup=False,
            soft_wrap=True,
        )
        return
    console.print(
        f"SLOs of {charter} at {now.isoformat(timespec='seconds')}", markup=False, soft_wrap=True
    )
    rows = [_COLUMNS, *(_row(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    for row in rows:
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        console.print(cells.rstrip(), markup=False, soft_wrap=True)
    if breached:
        console.print(
            f"{len(breached)} of {len(results)} breached: {', '.join(breached)}",
            markup=False,
            soft_wrap=True,
        )
    else:
        console.print(f"no SLO breached ({len(results)} evaluated)", markup=False)


def _row(result: SloResult) -> tuple[str, ...]:
    status = {"met": "met", "breached": "BREACHED", "no_data": "no data"}[result.status]
    return (
        result.name,
        result.objective,
        result.window,
        _value(result),
        status,
        _ratio(result.budget_remaining, percent=True),
        _ratio(result.burn_rate, percent=False),
        str(result.runs),
        _samples(result),
    )


def _samples(result: SloResult) -> str:
    unit = result.sample_unit  # plural: runs, labeled escalations, tool calls
    return f"{result.samples} {unit.removesuffix('s') if result.samples == 1 else unit}"


def _value(result: SloResult) -> str:
    value = result.value
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return format_usd(value)
    if result.name == "p95_latency_seconds":
        return f"{value:.3f}s"
    if result.name == "policy_violations_per_1000_runs":
        return f"{value:.1f}"
    return f"{value:.4f}"


def _ratio(value: float | None, *, percent: bool) -> str:
    if value is None:
        return "-"
    if value in (float("inf"), float("-inf")):
        return "-inf" if value < 0 else "inf"
    return f"{value:.0%}" if percent else f"{value:.2f}x"
