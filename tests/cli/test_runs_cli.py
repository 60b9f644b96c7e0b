"""``charter run --detach``, ``charter worker`` and ``charter runs show``, end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from charter_examples.support_desk.demo import CHARTER_PATH

from charter.storage import Database, upgrade

CLI = [sys.executable, "-c", "from charter.cli.app import main; main()"]
UNREACHABLE = "postgresql://x:s3cret@127.0.0.1:1/none"


def process_env(db_url: str, tmp_path: Path, **variables: str) -> dict[str, str]:
    """This process's environment, for the CLI in a process of its own on ``db_url``
    (upgraded: Postgres is upgraded only on purpose) with its home in ``tmp_path``, plus
    ``variables``."""
    database = Database(db_url)
    upgrade(database)
    database.dispose()
    return {**os.environ, "CHARTER_HOME": str(tmp_path / "home"), "CHARTER_DATABASE_URL": db_url,
            **variables}  # fmt: skip


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return process_env(db_url, tmp_path, CHARTER_SECRET_PAYMENTS_REFUND="sk_test_detach_1")


def charter(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def detach(env: dict[str, str], ticket: str) -> str:
    queued = charter(env, "run", str(CHARTER_PATH), "--detach", "-i",
                     f"Please handle ticket {ticket}.", "--user", "alice", "--tenant", "acme",
                     "--role", "support", "--environment", "prod", "--json")  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    report = json.loads(queued.stdout)
    assert report["status"] == "ENQUEUED"
    assert report["queue"] == "charter-runs.support-triage"
    return str(report["run_id"])


def test_a_detached_run_waits_for_a_worker_then_succeeds(env: dict[str, str]) -> None:
    run_id = detach(env, "T-1001")
    waiting = charter(env, "runs", "show", run_id, "--json")
    assert waiting.returncode == 3, waiting.stderr  # not ended: no worker yet
    assert json.loads(waiting.stdout)["status"] == "ENQUEUED"

    worker = subprocess.Popen([*CLI, "worker", "--id", "cli-w1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        shown = charter(env, "runs", "show", run_id, "--wait", "60", "--json")
    finally:
        worker.send_signal(signal.SIGTERM)
        _, worker_err = worker.communicate(timeout=30)
    assert shown.returncode == 0, shown.stderr + worker_err.decode()
    report = json.loads(shown.stdout)
    assert report["status"] == "SUCCESS"
    assert report["executor"] == "cli-w1"
    assert report["result"]["outcome"] == "succeeded"
    people = charter(env, "runs", "show", run_id)
    assert people.returncode == 0
    assert "succeeded" in people.stdout
    assert "issue_refund" in people.stdout


def test_showing_an_unknown_run_exits_2(env: dict[str, str]) -> None:
    shown = charter(env, "runs", "show", "run_nope")
    assert shown.returncode == 2
    assert "no run 'run_nope'" in shown.stderr
    detach(env, "T-1004")  # now DBOS's tables exist: still unknown
    shown = charter(env, "runs", "show", "run_nope", "--json")
    assert shown.returncode == 2
    assert json.loads(shown.stdout) == {
        "ok": False,
        "error": "no run 'run_nope'; 'charter runs list' shows the recorded runs",
    }


@pytest.mark.parametrize(
    "args",
    [
        ("run", str(CHARTER_PATH), "--detach", "-i", "hi", "--user", "u", "--tenant", "t"),
        ("runs", "show", "run_x"),
    ],
)
def test_an_unreachable_database_exits_2_without_the_password(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    env = {**os.environ, "CHARTER_HOME": str(tmp_path), "CHARTER_DATABASE_URL": UNREACHABLE}
    result = charter(env, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "127.0.0.1:1/none" in result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
