"""``charter metrics``: Prometheus metrics read from Charter's database (docs/metrics.md).

``serve`` is the endpoint Prometheus scrapes; ``show`` prints the same exposition once, for
scripts and cron jobs (e.g. node_exporter's textfile collector). Both read the database at
that moment, so one exporter covers every process that shares the database.

Register the group::

    from charter.cli import metrics
    app.add_typer(metrics.app, name="metrics")
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric

from charter.cli.output import JsonOption, console, emit_json, fail
from charter.cli.state import open_state
from charter.core.errors import UserError
from charter.observability.metrics import CharterCollector, render_metrics
from charter.storage import Database

__all__ = ["app", "serve", "show"]

DEFAULT_PORT = 9464

app = typer.Typer(
    help="Prometheus metrics of every run, read from Charter's database (docs/metrics.md).",
    no_args_is_help=True,
)


@app.command()
def serve(
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. The default serves this machine only; a wider one "
            "(0.0.0.0) exposes charter, tenant and rule names to whoever reaches the port, "
            "which is the operator's choice to make.",
            envvar="CHARTER_METRICS_HOST",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            help="Port to listen on (0: any free port, printed at start).",
            min=0,
            max=65535,
            envvar="CHARTER_METRICS_PORT",
        ),
    ] = DEFAULT_PORT,
    as_json: JsonOption = False,
) -> None:
    """Serve the metrics on http://HOST:PORT/metrics until stopped (Ctrl-C or SIGTERM).

    Each scrape reads the database; if it cannot, the scrape still answers, with
    charter_database_up 0. Binds 127.0.0.1 unless --host says otherwise.

    Exit codes: 0 stopped; 2 the database cannot be read, or the port cannot be bound.

    Example: charter metrics serve --port 9464
    """
    with open_state(as_json, must_exist=True, read_only=True) as state:
        collector = _collector(state.database, as_json)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        # Signals first: a SIGTERM right after the "serving" line must stop us cleanly.
        with _until_stopped() as stop:
            try:
                server, thread = start_http_server(port, addr=host, registry=registry)
            except OSError as exc:
                fail(
                    f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another "
                    "--port (or stop what holds this one)",
                    as_json=as_json,
                )
            try:
                url = f"http://{_url_host(host)}:{server.server_port}/metrics"
                if as_json:
                    emit_json({"ok": True, "url": url, "database": state.database.shown_url})
                else:
                    console.print(
                        f"serving Charter metrics on {url} (Ctrl-C stops)",
                        markup=False,
                        soft_wrap=True,
                    )
                sys.stdout.flush()
                while not stop.wait(0.5):
                    pass
            finally:
                server.shutdown()
                server.server_close()
                thread.join(timeout=5)
    if not as_json:
        console.print("metrics server stopped")


@app.command()
def show(as_json: JsonOption = False) -> None:
    """Print the metrics once in the Prometheus text format (with --json, as JSON).

    Exit codes: 0 printed; 2 the database cannot be read.

    Example: charter metrics show > /var/lib/node_exporter/textfile/charter.prom
    """
    with open_state(as_json, must_exist=True, read_only=True) as state:
        try:
            if as_json:
                families = CharterCollector(state.database).families()
            else:
                text = render_metrics(state.database)
        except UserError as exc:
            fail(str(exc), as_json=as_json)
    if as_json:
        emit_json({"ok": True, "metrics": [_family_json(family) for family in families]})
    else:
        sys.stdout.write(text)


def _collector(database: Database, as_json: bool) -> CharterCollector:
    """A collector that has read the database once, so a bad one fails at start (exit 2)."""
    try:
        collector = CharterCollector(database)
        collector.families()
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    return collector


@contextmanager
def _until_stopped() -> Iterator[threading.Event]:
    """An event that SIGINT (Ctrl-C) or SIGTERM sets, so both stop the server the same way.

    Handled explicitly rather than as KeyboardInterrupt: a process started in the
    background by a shell inherits SIGINT ignored, and would otherwise not stop on it.
    """
    stop = threading.Event()
    stopping = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in stopping}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _family_json(family: Metric) -> dict[str, Any]:
    return {
        "name": family.name,
        "type": family.type,
        "help": family.documentation,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
    }
