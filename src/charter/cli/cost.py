"""``charter cost``: what runs cost per charter, tenant or day, humans' waiting included.

Register at the top level::

    from charter.cli import cost
    app.command()(cost.cost)

Figures are defined in ``charter.observability.cost``; ``docs/inspector.md`` explains them.
Exit codes: 0 the report was made (an empty one included); 2 bad input or an unreachable
database.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import typer
from rich.text import Text

from charter.cli.output import JsonOption, check_text, console, emit_json, fail
from charter.cli.render_inspector import format_duration, print_columns
from charter.cli.state import open_state
from charter.cli.times import parse_time
from charter.core.clock import SystemClock
from charter.core.errors import UserError
from charter.core.money import format_usd
from charter.core.settings import Settings
from charter.observability.cost import GROUPS, CostLine, CostReport, CostReporter, group_by

__all__ = ["cost"]


def cost(
    by: Annotated[
        str, typer.Option("--by", help=f"Group runs by {' | '.join(GROUPS)} (UTC day of start).")
    ] = "charter",
    since: Annotated[
        str | None,
        typer.Option(
            help="Runs started since: ISO 8601 (UTC if no zone) or an age (7d).", show_default=False
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Runs started before: ISO 8601 or an age.", show_default=False),
    ] = None,
    charter: Annotated[str | None, typer.Option(help="Only this charter's runs.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's runs.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Cost per charter, tenant or day: model, tool fees, human review, per successful outcome.

    Human review is the time approval requests waited for a decision, priced at
    CHARTER_REVIEW_USD_PER_HOUR (default 0: not counted).

    Example: charter cost --by tenant --since 30d
    """
    for value, option in ((charter, "--charter"), (tenant, "--tenant")):
        if value is not None:
            check_text(value, option, as_json=as_json)
    clock = SystemClock()
    now = clock.now()
    try:
        settings = Settings.from_env()
        start = parse_time(since, "--since", now=now) if since is not None else None
        end = parse_time(until, "--until", now=now) if until is not None else None
        group_by(by)  # before the database is opened: bad input is reported as such
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    with open_state(as_json, must_exist=True, read_only=True) as state:
        try:
            report = CostReporter(state.database, clock).report(
                by, usd_per_hour=settings.review_usd_per_hour, since=start, until=end,
                charter=charter, tenant=tenant,
            )  # fmt: skip
        except UserError as exc:
            fail(str(exc), as_json=as_json)
    if as_json:
        emit_json({"ok": True, **report.as_dict()})
    else:
        _print(report)


def _print(report: CostReport) -> None:
    if not report.lines:
        console.print("no runs match")
        return
    header = (report.by, "runs", "succeeded", "model", "tool fees", "human review", "total",
              "per run", "per success")  # fmt: skip
    rows: list[list[str | Text]] = [list(_cells(line)) for line in report.lines]
    rows.append([Text(cell, style="bold") for cell in _cells(report.total)])
    print_columns(header, rows, right=range(1, len(header)))
    total = report.total
    waited = format_duration(float(total.review_hours * 3600))
    if report.usd_per_hour:
        console.print(
            f"human review: {total.approvals} approval request(s) waited {waited} in all, at "
            f"{format_usd(report.usd_per_hour)} per hour",
            soft_wrap=True,
        )
    else:
        console.print(
            f"human review not priced ({total.approvals} approval request(s) waited {waited} "
            "in all): set "
            "CHARTER_REVIEW_USD_PER_HOUR to what an hour of a reviewer costs",
            soft_wrap=True,
        )
    if total.in_progress:
        console.print(
            f"{total.in_progress} run(s) still in progress count with no usage yet; it is "
            "recorded when they end",
            soft_wrap=True,
        )
    if total.unreadable_cost:
        console.print(
            f"{total.unreadable_cost} run(s) have a recorded cost that is not an amount from 0 "
            "(negative or not a number): they count as runs, their money is left out",
            soft_wrap=True,
        )


def _cells(line: CostLine) -> list[str]:
    def usd(value: Decimal | None) -> str:
        return "-" if value is None else format_usd(value)

    return [
        line.group, str(line.runs), str(line.succeeded), usd(line.model_usd),
        usd(line.tool_fees_usd), usd(line.review_usd), usd(line.total_usd),
        usd(line.per_run_usd), usd(line.per_success_usd),
    ]  # fmt: skip
