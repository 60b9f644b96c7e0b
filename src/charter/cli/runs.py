"""``charter runs``: follow durable runs (queued with ``charter run --detach``, or any other).

Exit codes for ``show``: 0 the run succeeded; 1 it ended otherwise; 3 it has not ended yet
(queued, running or parked for approval; with ``--wait``, not within the time given);
2 bad input or an unreachable database.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from charter.cli.output import EXIT_FAILED, JsonOption, check_text, console, emit_json, fail
from charter.cli.render import print_run
from charter.core.errors import UserError
from charter.core.settings import Settings
from charter.durable import RunStatus, run_status

__all__ = ["app"]

EXIT_NOT_ENDED = 3
_ENDED = frozenset({"SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"})
_POLL_SECONDS = 0.25

app = typer.Typer(help="Follow durable runs.", no_args_is_help=True)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="The run id (run_...).", show_default=False)],
    wait: Annotated[
        float,
        typer.Option(help="Wait up to this many seconds for the run to end.", min=0),
    ] = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Show a durable run: queued, running, parked, or its result.

    Example: charter runs show run_3f2a... --wait 60
    """
    check_text(run_id, "RUN_ID", as_json=as_json)
    settings = Settings.from_env()
    deadline = time.monotonic() + wait
    try:
        status = run_status(settings, run_id)
        while status.status not in _ENDED and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
            status = run_status(settings, run_id)
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    _report(status, as_json)


def _report(status: RunStatus, as_json: bool) -> None:
    if as_json:
        emit_json({"ok": True, **status.as_dict()})
    elif status.result is not None:
        print_run(status.result)
    else:
        where = f" on {status.executor}" if status.executor else ""
        console.print(f"run {status.run_id}: {status.status}{where} (queue {status.queue})")
    if status.status not in _ENDED:
        raise typer.Exit(EXIT_NOT_ENDED)
    if status.result is None or status.result.get("outcome") != "succeeded":
        raise typer.Exit(EXIT_FAILED)
