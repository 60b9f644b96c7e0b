"""The ``charter`` command: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from charter.cli import (
    approvals,
    audit,
    cost,
    db,
    demo,
    evaluate,
    governance,
    kill,
    metrics,
    prune,
    roles,
    run,
    runs,
    slo,
    validate,
    worker,
)

app = typer.Typer(
    name="charter",
    help="Charter: the control plane for production AI agents. Every tool call an agent makes "
    "is validated, authorized, budgeted, audited and traced under its charter file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(validate.validate)
app.command()(run.run)
app.command()(demo.demo)
app.command()(kill.kill)
app.command()(kill.revive)
app.command()(worker.worker)
app.command()(cost.cost)
app.command()(prune.prune)
app.add_typer(approvals.app, name="approvals")
app.add_typer(audit.app, name="audit")
app.add_typer(db.app, name="db")
app.add_typer(roles.app, name="roles")
app.add_typer(runs.app, name="runs")
runs.app.command("label")(slo.label)
app.add_typer(slo.app, name="slo")
app.add_typer(metrics.app, name="metrics")
app.add_typer(evaluate.app, name="eval")
app.add_typer(governance.release_app, name="release")
app.command()(governance.promote)
app.add_typer(governance.rollout_app, name="rollout")
app.command()(governance.rollback)
app.command()(governance.changelog)
app.command()(governance.whatif)
app.add_typer(governance.autonomy_app, name="autonomy")


def main() -> None:
    app()
