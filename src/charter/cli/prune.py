"""``charter prune``: delete old spans and run rows. The audit log is never pruned.

Register at the top level::

    from charter.cli import prune
    app.command()(prune.prune)

Ages default to ``CHARTER_RETAIN_SPANS_DAYS`` (30) and ``CHARTER_RETAIN_RUNS_DAYS`` (90).
Exit codes: 0 pruned (or, with ``--dry-run``, counted); 2 bad input or an unreachable
database.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from charter.cli.output import JsonOption, console, emit_json, fail
from charter.cli.state import open_state
from charter.cli.times import parse_age
from charter.core.clock import SystemClock
from charter.core.errors import UserError
from charter.core.settings import Settings
from charter.observability.retention import Pruner, PruneReport

__all__ = ["prune"]


def prune(
    spans_older_than: Annotated[
        str | None,
        typer.Option(
            help="Delete spans that started longer ago than this (e.g. 30d). "
            "Default: CHARTER_RETAIN_SPANS_DAYS.",
            show_default=False,
        ),
    ] = None,
    runs_older_than: Annotated[
        str | None,
        typer.Option(
            help="Delete run rows (and their labels) of runs started longer ago than "
            "this (e.g. 90d). Default: CHARTER_RETAIN_RUNS_DAYS.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete spans and run rows past their retention. Audit records are never deleted.

    A run whose row and spans are gone is still explained by 'charter runs show' from the
    audit log (without usage and durations).

    Example: charter prune --spans-older-than 14d --dry-run
    """
    try:
        settings = Settings.from_env()
        spans_age = (
            parse_age(spans_older_than, "--spans-older-than")
            if spans_older_than is not None
            else timedelta(days=settings.retain_spans_days)
        )
        runs_age = (
            parse_age(runs_older_than, "--runs-older-than")
            if runs_older_than is not None
            else timedelta(days=settings.retain_runs_days)
        )
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    with open_state(as_json, must_exist=True) as state:
        try:
            report = Pruner(state.database).prune(
                now=SystemClock().now(),
                spans_older_than=spans_age,
                runs_older_than=runs_age,
                dry_run=dry_run,
            )
        except UserError as exc:
            fail(str(exc), as_json=as_json)
    if as_json:
        emit_json({"ok": True, **report.as_dict()})
    else:
        console.print(_summary(report), soft_wrap=True)


def _summary(report: PruneReport) -> str:
    verb = "would delete" if report.dry_run else "deleted"
    parts = []
    if report.spans_before is not None:
        parts.append(
            f"{report.spans} span(s) started before {report.spans_before:%Y-%m-%d %H:%M} UTC"
        )
    if report.runs_before is not None:
        parts.append(
            f"{report.runs} run row(s) and {report.run_labels} label(s) of runs started before "
            f"{report.runs_before:%Y-%m-%d %H:%M} UTC"
        )
    return f"{verb} {' and '.join(parts)}; audit records are never pruned"
