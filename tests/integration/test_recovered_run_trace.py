"""A durable run killed while parked and finished by a worker is still one trace.

The worker never sees ``RunStarted`` (recovery replays that step from its recorded output),
yet every span it records joins the run's trace under the run's span, and it emits the run
span itself: checked in the span store, against the audit records' trace id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from charter_examples.support_desk.demo import CHARTER_PATH

from charter import Settings
from charter.core.clock import SystemClock
from charter.core.events import EventBus
from charter.execution.approval_store import ApprovalRecord, ApprovalStore
from charter.identity.roles import RoleGrants
from charter.observability.audit import AuditLog
from charter.observability.span_store import SpanStore
from charter.observability.tracing import run_span_id
from charter.storage import Database
from tests.durable.support import wait_for

CLI = [sys.executable, "-c", "from charter.cli.app import main; main()"]


def _cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_a_recovered_run_is_one_trace_under_its_run_span(tmp_path: Path) -> None:
    env = {**os.environ, "CHARTER_HOME": str(tmp_path / "home"), "CHARTER_DATABASE_URL": "",
           "CHARTER_SECRET_PAYMENTS_REFUND": "sk_test_trace_12345"}  # fmt: skip
    env.pop("CHARTER_OTLP_ENDPOINT", None)
    settings = Settings(home=tmp_path / "home", secrets_dir=tmp_path / "secrets")
    host = subprocess.Popen(
        [*CLI, "run", str(CHARTER_PATH), "--durable", "--worker-id", "w-trace",
         "-i", "Please handle ticket T-1002.", "--user", "alice", "--tenant", "acme",
         "--role", "support", "--environment", "prod", "--json"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    database = Database(settings.database)
    try:

        def pending() -> list[ApprovalRecord]:
            if not (settings.home / "charter.sqlite3").exists():
                return []
            clock = SystemClock()
            store = ApprovalStore(database, clock, EventBus(), RoleGrants(database, clock))
            return store.list(tenant="acme", status="pending")

        [request] = wait_for("the run to park for approval", pending, seconds=60)
        host.send_signal(signal.SIGKILL)  # its unfinished run span dies with it
        host.wait(10)
        _cli(env, "roles", "grant", "lead", "--tenant", "acme", "--role", "approver",
             "--as", "admin")  # fmt: skip
        _cli(env, "approvals", "approve", request.id, "--as", "lead", "--reason", "ok")
        worker = subprocess.Popen([*CLI, "worker", "--id", "w-trace"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:

            def finished() -> bool:
                with AuditLog(database) as log:
                    return any(r.entry.kind == "run_finished" and r.entry.run_id == request.run_id
                               for r in log.records("acme"))  # fmt: skip

            wait_for("the worker to finish the run", finished, seconds=60)
        finally:
            worker.send_signal(signal.SIGTERM)  # a clean stop flushes its spans
            worker.wait(30)

        with AuditLog(database) as log:
            kinds = ("run_started", "tool_call", "run_finished")  # approvals carry no trace
            records = [r.entry for r in log.records("acme")
                       if r.entry.run_id == request.run_id and r.entry.kind in kinds]  # fmt: skip
        [trace_id] = {r.trace_id for r in records}
        worker_calls = {
            r.span_id for r in records if r.kind == "tool_call" and r.stage == "approval"
        }
        assert worker_calls  # the approved refund, executed by the worker
        spans = SpanStore(database).spans_of_run(request.run_id)
        by_id = {s.span_id: s for s in spans}
        root = by_id[run_span_id(request.run_id)]  # emitted by the worker at RunFinished
        assert root.parent_span_id is None
        assert root.attributes["charter.outcome"] == "succeeded"
        assert worker_calls <= set(by_id)
        for span in spans:
            assert span.trace_id == trace_id
            if span is not root:
                assert span.parent_span_id == root.span_id
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(10)
        database.dispose()
