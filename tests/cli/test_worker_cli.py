"""``charter worker`` stops cleanly on SIGTERM and SIGINT: one line, exit 0, no internals.

A worker hosting a run parked for approval is the case that used to print DBOS's warning
about an asyncio task it cancelled while shutting down. The run is not lost: a worker with
the same id takes it up again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from charter import Charter, Settings
from charter.core.clock import SystemClock
from charter.core.events import EventBus
from charter.durable import DurableControl
from charter.execution.approval_store import ApprovalRecord, ApprovalStore
from charter.identity.roles import RoleGrants
from charter.storage import Database
from tests.durable.support import spec, wait_for

CLI = [sys.executable, "-c", "from charter.cli.app import main; main()"]
# What must never reach an operator's terminal from a clean stop.
INTERNALS = ("Traceback", "Task was destroyed", "CancelledError", "WARNING", "dbos", "asyncio")


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CHARTER_HOME": str(home),
        "CHARTER_DATABASE_URL": "",
        "CHARTER_SECRET_PAYMENTS_REFUND": "sk_test_worker_stop_1",
    }


def _start(home: Path, worker_id: str) -> subprocess.Popen[str]:
    worker = subprocess.Popen(
        [*CLI, "worker", "--id", worker_id],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    ready = worker.stdout.readline()
    if f"worker {worker_id} ready" not in ready:
        worker.kill()
        _, err = worker.communicate(timeout=30)
        raise AssertionError(f"worker {worker_id} did not start: {ready}{err}")
    return worker


def _stop(worker: subprocess.Popen[str], signum: int) -> tuple[int, str, str]:
    worker.send_signal(signum)
    out, err = worker.communicate(timeout=60)
    return worker.returncode, out, err


def _pending(settings: Settings) -> list[ApprovalRecord]:
    database = Database(settings.database)
    try:
        clock = SystemClock()
        store = ApprovalStore(database, clock, EventBus(), RoleGrants(database, clock))
        return store.list(tenant="acme", status="pending")
    finally:
        database.dispose()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_idle_worker_stops_with_one_line(tmp_path: Path, signum: int) -> None:
    worker = _start(tmp_path / "home", "w-idle")
    code, out, err = _stop(worker, signum)
    assert code == 0, err
    assert out.strip() == "worker w-idle stopped"
    assert err == ""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_worker_hosting_a_parked_run_stops_cleanly_and_the_run_survives(
    tmp_path: Path, signum: int
) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, secrets_dir=tmp_path / "secrets")
    worker = _start(home, "w-park")
    try:
        run_id = f"run_{uuid.uuid4().hex}"
        with DurableControl(settings) as control:
            control.enqueue(Charter.load(spec("T-1002").charter_path), spec("T-1002"), run_id)
        [request] = wait_for("the run to park for approval", lambda: _pending(settings), 60)
        assert request.run_id == run_id
    finally:
        code, out, err = _stop(worker, signum)
    for text in INTERNALS:
        assert text not in err, err
    assert err == ""
    assert code == 0
    assert out.strip() == "worker w-park stopped (1 unfinished run resumes when it starts again)"
    # The stop interrupted nothing for good: the same worker id takes the run up again.
    worker = _start(home, "w-park")
    try:
        with DurableControl(settings) as control:
            # Recovery re-enqueues it, the worker takes it, it parks again.
            wait_for("the run to be taken up", lambda: control.status(run_id).status == "PENDING")
        assert [r.run_id for r in _pending(settings)] == [run_id]
    finally:
        code, out, err = _stop(worker, signal.SIGTERM)
    assert code == 0, err
