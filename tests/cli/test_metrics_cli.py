"""``charter metrics serve`` and ``show``: a real HTTP server in a real process, and bad input.

The group is run on its own (``charter.cli.metrics.app``), as ``charter metrics`` runs it once
registered on the main app.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from charter_examples.support_desk.demo import run_demo
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from typer.testing import CliRunner

from charter import Runtime, Settings
from charter.cli.metrics import app
from charter.identity.secrets import EnvSecretProvider
from charter.storage import Database, upgrade

METRICS = [sys.executable, "-c",
           "from charter.cli.metrics import app; app(prog_name='charter metrics')"]  # fmt: skip
UNREACHABLE = "postgresql://x:s3cret@127.0.0.1:1/none"


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a Charter deployment whose database holds the demo's runs."""
    database = Database(db_url)
    upgrade(database)
    database.dispose()
    settings = Settings(home=tmp_path / "home", secrets_dir=tmp_path / "secrets",
                        database_url=db_url)  # fmt: skip
    secrets = EnvSecretProvider({"CHARTER_SECRET_PAYMENTS_REFUND": "sk_test_x"})
    with Runtime(settings, secret_providers=[secrets]) as runtime:
        asyncio.run(run_demo(runtime))
    return {**os.environ, "CHARTER_HOME": str(tmp_path / "home"), "CHARTER_DATABASE_URL": db_url}


def invoke(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def runs_by_outcome(exposition: str) -> dict[str, float]:
    return {
        s.labels["outcome"]: s.value
        for f in text_string_to_metric_families(exposition)
        for s in f.samples
        if s.name == "charter_runs_total"
    }


DEMO_OUTCOMES = {"succeeded": 2, "approval_required": 2, "denied": 2, "escalated": 1}


def test_show_prints_the_exposition_once(env: dict[str, str]) -> None:
    code, out, err = invoke(env, "show")
    assert code == 0, err
    assert runs_by_outcome(out) == DEMO_OUTCOMES
    assert "charter_database_up 1.0" in out


def test_show_json_lists_every_family_with_its_samples(env: dict[str, str]) -> None:
    code, out, _ = invoke(env, "show", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True
    families = {f["name"]: f for f in report["metrics"]}
    assert families["charter_policy_decisions"]["type"] == "counter"
    denied = {
        s["labels"]["rule_id"]: s["value"]
        for s in families["charter_policy_decisions"]["samples"]
        if s["labels"]["verdict"] == "deny"
    }
    assert denied == {"deny[0]": 1, "constraints.send_email.to.domain_in": 1}


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``charter metrics serve`` on a free port, in its own process; yields it and its URL."""
    process = subprocess.Popen([*METRICS, "serve", "--port", "0"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving Charter metrics on http://127.0.0.1:"), (
            line + process.stderr.read() if process.stderr else line
        )
        yield process, line.split()[4]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_scrapes_and_stops_cleanly(
    server: tuple[subprocess.Popen[str], str], stop: signal.Signals
) -> None:
    process, url = server
    assert url.endswith("/metrics")
    status, content_type, body = get(url)
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    assert runs_by_outcome(body) == DEMO_OUTCOMES
    _, _, again = get(url)  # each scrape reads the database again
    assert runs_by_outcome(again) == DEMO_OUTCOMES

    process.send_signal(stop)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "metrics server stopped" in out
    assert "Traceback" not in err


def test_serve_reports_the_database_down_and_keeps_serving(
    server: tuple[subprocess.Popen[str], str], env: dict[str, str]
) -> None:
    process, url = server
    database = Database(env["CHARTER_DATABASE_URL"])
    try:
        with database.engine.begin() as connection:
            connection.execute(text("DROP TABLE runs"))
    finally:
        database.dispose()
    status, _, body = get(url)
    assert status == 200
    assert body.strip().endswith("charter_database_up 0.0")
    assert "charter_runs_total" not in body
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "cannot read metrics" in err
    assert "Traceback" not in err


def test_serve_refuses_a_port_in_use(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, out, err = invoke(env, "serve", "--port", port)
        assert code == 2
        assert f"cannot listen on 127.0.0.1:{port}" in err
        assert "choose another --port" in err
        code, out, _ = invoke(env, "serve", "--port", port, "--json")
    assert code == 2
    assert json.loads(out)["ok"] is False


@pytest.mark.parametrize("command", [["show"], ["show", "--json"], ["serve", "--port", "0"]])
def test_an_unreachable_database_exits_2_without_its_password(command: list[str]) -> None:
    environment = {**os.environ, "CHARTER_DATABASE_URL": UNREACHABLE}
    done = subprocess.run([*METRICS, *command], env=environment, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    output = done.stdout + done.stderr
    assert "s3cret" not in output
    assert "Traceback" not in output
    assert "postgresql://x:***@127.0.0.1:1/none" in output


def test_an_empty_database_yields_zeroed_metrics(db_url: str, tmp_path: Path) -> None:
    database = Database(db_url)
    upgrade(database)
    database.dispose()
    environment = {"CHARTER_HOME": str(tmp_path), "CHARTER_DATABASE_URL": db_url}
    code, out, err = invoke(environment, "show")
    assert code == 0, err
    families = list(text_string_to_metric_families(out))
    assert {"charter_runs", "charter_tool_calls", "charter_cost_usd"} <= {f.name for f in families}
    counted = {s.name for f in families for s in f.samples if s.value}
    assert counted <= {"charter_database_up", "charter_metrics_read_seconds"}


def test_a_missing_sqlite_database_is_not_created(tmp_path: Path) -> None:
    code, _, err = invoke({"CHARTER_HOME": str(tmp_path / "nowhere")}, "show")
    assert code == 2
    assert "no Charter database" in err
    assert not (tmp_path / "nowhere" / "charter.sqlite3").exists()


def test_serve_help_says_the_default_binds_this_machine_only() -> None:
    code, out, _ = invoke({}, "serve", "--help")
    assert code == 0
    assert "127.0.0.1" in out
    assert "operator's choice" in " ".join(out.split())
