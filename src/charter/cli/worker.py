"""``charter worker``: host durable runs, and recover the ones a crashed process left."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from charter.cli.output import console, fail
from charter.core.errors import UserError
from charter.core.settings import Settings
from charter.durable import DurableEngine
from charter.runtime import Runtime


def worker(
    worker_id: Annotated[
        str,
        typer.Option(
            "--id",
            help="This worker's executor id. Keep it stable across restarts: a worker "
            "recovers the unfinished runs of its own id (and only those).",
            envvar="CHARTER_WORKER_ID",
        ),
    ],
    approval_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a run waits for an approval decision before it expires.",
            envvar="CHARTER_APPROVAL_TIMEOUT",
            min=1,
        ),
    ] = 86_400.0,
) -> None:
    """Run durable runs until stopped (Ctrl-C or SIGTERM).

    At start it recovers every unfinished run of executor ID: completed steps are not done
    again; a step that was running when the old process died runs again, under the same
    idempotency key. Runs parked for approval wait here for their decision.

    Example: charter worker --id worker-1
    """
    stop = _stop_on_signals()
    try:
        with Runtime(Settings.from_env()) as runtime:
            engine = DurableEngine(
                runtime, executor_id=worker_id, approval_timeout_seconds=approval_timeout
            )
            engine.launch()
            console.print(f"worker {worker_id} ready (database {runtime.database.shown_url})")
            try:
                while not stop.wait(0.5):
                    pass
                unfinished = engine.unfinished_runs()
            finally:
                engine.destroy()
    except UserError as exc:
        fail(str(exc))
    if unfinished == 1:
        resumes = " (1 unfinished run resumes when it starts again)"
    elif unfinished:
        resumes = f" ({unfinished} unfinished runs resume when it starts again)"
    else:
        resumes = ""
    console.print(f"worker {worker_id} stopped{resumes}", soft_wrap=True)


def _stop_on_signals() -> threading.Event:
    """An event SIGTERM or SIGINT sets: the worker then stops cleanly and exits 0.

    A second signal while it stops is the default one again (SIGINT: KeyboardInterrupt,
    SIGTERM: terminate at once), for an operator who will not wait.
    """
    stop = threading.Event()

    def handle(_signum: int, _frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop
