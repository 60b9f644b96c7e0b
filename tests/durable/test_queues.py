"""The run queues: detached runs reach workers, limits hold, a kill stops parked runs."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from charter_examples.support_desk.demo import CHARTER_PATH
from sqlalchemy import text

from charter import Charter, Runtime, Settings
from charter.durable import (
    DurableEngine,
    RunStatus,
    enqueue_run,
    notify_decision,
    run_status,
    stop_parked_runs,
)
from charter.identity.secrets import EnvSecretProvider
from charter.storage import Database
from tests.durable.support import SECRET, charter_with, spec, wait_for


def ended(settings: Settings, run_id: str) -> RunStatus | None:
    status = run_status(settings, run_id)
    return status if status.status == "SUCCESS" else None


def outcome_of(status: RunStatus) -> object:
    return status.result["outcome"] if status.result else None


def test_a_detached_run_is_executed_by_a_running_worker(
    engine: DurableEngine, settings: Settings
) -> None:
    status = enqueue_run(settings, Charter.load(CHARTER_PATH), spec("T-1001"), "run_detached_1")
    assert status.as_dict()["status"] == "ENQUEUED"
    done = wait_for("a worker to run it", lambda: ended(settings, "run_detached_1"))
    assert outcome_of(done) == "succeeded"
    assert done.queue == "charter-runs.support-triage"
    assert done.executor == engine.executor_id
    assert engine.runtime.audit.verify().ok


def test_a_run_queued_while_no_worker_runs_waits_for_one(settings: Settings) -> None:
    enqueue_run(settings, Charter.load(CHARTER_PATH), spec("T-1001"), "run_waiting_1")
    time.sleep(0.5)
    assert run_status(settings, "run_waiting_1").status == "ENQUEUED"
    runtime = Runtime(settings, secret_providers=[EnvSecretProvider(SECRET)])
    engine = DurableEngine(runtime, executor_id=f"late-{uuid.uuid4().hex[:6]}")
    engine.launch()
    try:
        done = wait_for("the late worker to run it", lambda: ended(settings, "run_waiting_1"))
        assert outcome_of(done) == "succeeded"
    finally:
        engine.destroy()
        runtime.close()


def test_the_queue_carries_the_charters_limits(tmp_path: Path, settings: Settings) -> None:
    path = charter_with(tmp_path, "concurrency: {max_runs: 3, max_runs_per_tenant: 2}")
    enqueue_run(settings, Charter.load(path), spec("T-1001", charter_path=path), "run_limits")
    dbos = Database(settings.database) if "postgresql" in settings.database else None
    url = settings.database if dbos else f"sqlite:///{settings.home / 'dbos.sqlite3'}"
    database = dbos or Database(url)
    try:
        with database.engine.connect() as connection:
            schema = "dbos." if dbos else ""
            query = (
                f"SELECT concurrency, partition_concurrency FROM {schema}queues "
                "WHERE name = 'charter-runs.support-triage'"
            )
            row = connection.execute(text(query)).one()
    finally:
        database.dispose()
    assert tuple(row) == (3, 2)


def test_a_tenant_at_its_limit_waits_while_other_tenants_run(
    tmp_path: Path, engine: DurableEngine, settings: Settings
) -> None:
    path = charter_with(tmp_path, "concurrency: {max_runs: 4, max_runs_per_tenant: 1}")
    charter = Charter.load(path)
    runtime = engine.runtime
    runtime.roles.grant("acme", "lead", "approver", by="admin")
    enqueue_run(settings, charter, spec("T-1002", charter_path=path), "run_parks")
    [request] = wait_for(
        "the first run to park", lambda: runtime.approvals.list(tenant="acme", status="pending")
    )
    # The parked run holds acme's only slot: acme's next run waits, globex's does not.
    enqueue_run(settings, charter, spec("T-1001", charter_path=path), "run_acme_next")
    enqueue_run(settings, charter, spec("T-1001", tenant="globex", charter_path=path),
                "run_globex")  # fmt: skip
    assert wait_for("globex's run", lambda: ended(settings, "run_globex"))
    assert run_status(settings, "run_acme_next").status == "ENQUEUED"

    runtime.approvals.decide(request.id, "approve", by="lead", reason="checked")
    assert notify_decision(settings, run_id="run_parks", request_id=request.id,
                           verdict="approve", by="lead", reason="checked")  # fmt: skip
    first = wait_for("the parked run to finish", lambda: ended(settings, "run_parks"))
    after = wait_for("acme's next run", lambda: ended(settings, "run_acme_next"))
    assert outcome_of(first) == "succeeded"
    assert outcome_of(after) == "succeeded"


def test_a_kill_stops_a_run_parked_for_approval_at_once(
    engine: DurableEngine, settings: Settings
) -> None:
    runtime = engine.runtime

    async def scenario() -> tuple[dict[str, object], list[str]]:
        task = asyncio.create_task(engine.run(spec("T-1002"), run_id="run_killed_parked"))
        while not runtime.approvals.list(tenant="acme", status="pending"):
            assert not task.done(), await task
            await asyncio.sleep(0.05)
        runtime.kill_switches.kill("tenant:acme", "refund fraud suspected", by="ops")
        stopped = stop_parked_runs(settings, runtime.approvals, scope="tenant:acme",
                                   reason="refund fraud suspected", by="ops")  # fmt: skip
        # Well inside the approval timeout (30 s): the kill woke it.
        return await asyncio.wait_for(task, 10), stopped

    result, stopped = asyncio.run(scenario())
    assert stopped == ["run_killed_parked"]
    assert result["outcome"] == "killed"
    assert result["decision"]["rule_id"] == "kill-switch:tenant:acme"  # type: ignore[index]
    calls = [(c["tool"], c["outcome"]) for c in result["tool_calls"]]  # type: ignore[attr-defined]
    assert ("issue_refund", "executed") not in calls
    [request] = runtime.approvals.list(tenant="acme")
    assert (request.status, request.decided_by) == ("terminated", "ops")
    assert "kill switch on tenant:acme" in (request.decision_reason or "")
    kinds = [(r.entry.kind, r.entry.outcome) for r in runtime.audit.records("acme")]
    assert ("approval_decision", "terminate") in kinds
    assert kinds[-1] == ("run_finished", "killed")
    assert runtime.audit.verify().ok


def test_a_kill_elsewhere_leaves_parked_runs_alone(
    engine: DurableEngine, settings: Settings
) -> None:
    runtime = engine.runtime

    async def scenario() -> list[str]:
        task = asyncio.create_task(engine.run(spec("T-1002"), run_id="run_not_killed"))
        while not runtime.approvals.list(tenant="acme", status="pending"):
            assert not task.done(), await task
            await asyncio.sleep(0.05)
        stopped = stop_parked_runs(settings, runtime.approvals, scope="tenant:globex",
                                   reason="unrelated", by="ops")  # fmt: skip
        await asyncio.sleep(0.5)
        assert not task.done()
        task.cancel()
        return stopped

    assert asyncio.run(scenario()) == []
    assert [r.status for r in runtime.approvals.list(tenant="acme")] == ["pending"]
