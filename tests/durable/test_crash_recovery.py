"""kill -9 a process hosting a durable run; a worker with its id finishes it, nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from charter_examples.support_desk.demo import CHARTER_PATH

from charter import Settings
from charter.core.clock import SystemClock
from charter.core.events import EventBus
from charter.execution.approval_store import ApprovalRecord, ApprovalStore
from charter.identity.roles import RoleGrants
from charter.observability.audit import AuditLog
from charter.storage import Database

T = TypeVar("T")
CLI = [sys.executable, "-c", "from charter.cli.app import main; main()"]


def wait_for(what: str, probe: Callable[[], T | None], seconds: float = 60) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_run_killed_while_parked_is_finished_by_a_worker_with_its_id(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CHARTER_HOME": str(tmp_path / "home"),
        "CHARTER_SECRET_PAYMENTS_REFUND": "sk_test_crash_12345",
        "CHARTER_DATABASE_URL": "",
    }
    settings = Settings(home=tmp_path / "home", secrets_dir=tmp_path / "secrets")
    host_log = (tmp_path / "host.log").open("wb")
    worker_log = (tmp_path / "worker.log").open("wb")
    host = subprocess.Popen(
        [*CLI, "run", str(CHARTER_PATH), "--durable", "--worker-id", "w-crash",
         "-i", "Please handle ticket T-1002.", "--user", "alice", "--tenant", "acme",
         "--role", "support", "--environment", "prod", "--json"],
        env=env, stdout=subprocess.DEVNULL, stderr=host_log,
    )  # fmt: skip
    database = Database(settings.database)
    try:
        clock = SystemClock()

        def pending() -> list[ApprovalRecord]:
            if not (settings.home / "charter.sqlite3").exists():
                return []
            store = ApprovalStore(database, clock, EventBus(), RoleGrants(database, clock))
            return store.list(tenant="acme", status="pending")

        [request] = wait_for("the run to park for approval", pending)
        assert host.poll() is None  # still parked, waiting
        host.send_signal(signal.SIGKILL)
        host.wait(10)

        # Decide while no process hosts the run: the decision waits for it durably.
        grant = subprocess.run([*CLI, "roles", "grant", "lead", "--tenant", "acme", "--role",
                                "approver", "--as", "admin"], env=env, capture_output=True,
                               text=True, check=False)  # fmt: skip
        assert grant.returncode == 0, grant.stderr
        decided = subprocess.run([*CLI, "approvals", "approve", request.id, "--as", "lead",
                                  "--reason", "order checked", "--json"], env=env,
                                 capture_output=True, text=True, check=False)  # fmt: skip
        assert decided.returncode == 0, decided.stderr
        assert json.loads(decided.stdout)["run_resumed"] is True

        worker = subprocess.Popen([*CLI, "worker", "--id", "w-crash"], env=env,
                                  stdout=subprocess.DEVNULL,
                                  stderr=worker_log)  # fmt: skip
        try:

            def finished() -> list[str]:
                with AuditLog(database) as log:
                    return [r.entry.outcome for r in log.records("acme")
                            if r.entry.run_id == request.run_id
                            and r.entry.kind == "run_finished"]  # fmt: skip

            assert wait_for("the worker to finish the run", finished) == ["succeeded"]
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)

        with AuditLog(database) as log:
            records = [r.entry for r in log.records("acme") if r.entry.run_id == request.run_id]
            assert log.verify().ok
        kinds = [r.kind for r in records]
        assert kinds.count("run_started") == 1  # recovery replayed it, did not redo it
        calls = [r for r in records if r.kind == "tool_call"]
        refunds = [(r.outcome, r.stage) for r in calls if r.tool == "issue_refund"]
        assert refunds == [("approval_required", "policy"), ("executed", "approval")]
        assert [(r.kind, r.user) for r in records if r.kind == "approval_decision"] == [
            ("approval_decision", "lead")
        ]
        emails = [r.outcome for r in calls if r.tool == "send_email"]
        assert emails == ["deferred", "executed"]  # sent once, after the run succeeded
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(10)
        host_log.close()
        worker_log.close()
        database.dispose()
