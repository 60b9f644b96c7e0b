"""Durable runs on DBOS: step overhead, and approval decision to resumed run.

For each backend (SQLite file; Postgres if CHARTER_BENCH_POSTGRES_URL names an admin URL):
- the same support-desk ticket (T-1004: 4 tool calls, 5 model turns) run in process and as
  a durable workflow; the difference divided by the number of durable steps is the overhead
  of one durable step;
- a run parked for approval (T-1002): the time from sending the decision to the approved
  refund's audit record, i.e. how fast a human's "yes" reaches the tool.

Run: python benchmarks/durable.py [--runs N]. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from charter_examples.support_desk.demo import CHARTER_PATH
from charter_examples.support_desk.desk import SupportDesk
from charter_examples.support_desk.model import GullibleSupportModel
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from charter import Charter, Principal, Runtime, Settings
from charter.durable import DurableEngine, RunSpec, notify_decision
from charter.identity.secrets import EnvSecretProvider
from charter.storage import Database, upgrade

SECRET = {"CHARTER_SECRET_PAYMENTS_REFUND": "sk_bench_durable_1"}


def _spec(charter: Charter, ticket: str) -> RunSpec:
    return RunSpec(str(CHARTER_PATH), charter.content_sha256, "alice", "acme", ("support",),
                   "prod", f"Please handle ticket {ticket}.")  # fmt: skip


async def _in_process(runtime: Runtime, charter: Charter) -> float:
    start = time.perf_counter()
    await runtime.run_agent(charter, GullibleSupportModel(), "Please handle ticket T-1004.",
                            principal=Principal("alice", "acme", roles=("support",)),
                            environment="prod", resources=(SupportDesk.default(),))  # fmt: skip
    return time.perf_counter() - start


async def _approval_latency(engine: DurableEngine, charter: Charter) -> float:
    runtime = engine.runtime
    run_id = f"run_{uuid.uuid4().hex}"
    task = asyncio.create_task(engine.run(_spec(charter, "T-1002"), run_id=run_id))
    while True:
        pending = [r for r in runtime.approvals.list(tenant="acme", status="pending")
                   if r.run_id == run_id]  # fmt: skip
        if pending:
            break
        await asyncio.sleep(0.01)
    [request] = pending
    runtime.approvals.decide(request.id, "approve", by="lead", reason="bench")
    sent_at = time.time()
    notify_decision(runtime.settings, run_id=run_id, request_id=request.id,
                    verdict="approve", by="lead", reason="bench")  # fmt: skip
    await task
    executed = [r.entry.at.timestamp() for r in runtime.audit.records("acme")
                if r.entry.run_id == run_id and r.entry.tool == "issue_refund"
                and r.entry.outcome == "executed"]  # fmt: skip
    return executed[0] - sent_at


def _bench(settings: Settings, runs: int) -> dict[str, Any]:
    charter = Charter.load(CHARTER_PATH)
    with Runtime(settings, secret_providers=[EnvSecretProvider(SECRET)]) as runtime:
        runtime.roles.grant("acme", "lead", "approver", by="bench")
        engine = DurableEngine(runtime, executor_id="bench", approval_timeout_seconds=60)
        engine.launch(reset=not settings.database_url)  # Postgres: a fresh database already
        try:
            asyncio.run(engine.run(_spec(charter, "T-1004")))  # warm up
            asyncio.run(_in_process(runtime, charter))
            durable, plain, steps = [], [], 0
            for _ in range(runs):
                start = time.perf_counter()
                result = asyncio.run(engine.run(_spec(charter, "T-1004")))
                durable.append(time.perf_counter() - start)
                plain.append(asyncio.run(_in_process(runtime, charter)))
                # run start + model turns + tool calls + settle + run end
                steps = 3 + result["model_calls"] + len(result["tool_calls"])
            latencies = [asyncio.run(_approval_latency(engine, charter)) for _ in range(runs)]
        finally:
            engine.destroy()
    overhead = (statistics.median(durable) - statistics.median(plain)) / steps
    return {
        "durable_run_p50_ms": round(statistics.median(durable) * 1000, 1),
        "in_process_run_p50_ms": round(statistics.median(plain) * 1000, 1),
        "durable_steps_per_run": steps,
        "durable_step_overhead_p50_ms": round(overhead * 1000, 2),
        "approval_to_resumed_call_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "approval_to_resumed_call_max_ms": round(max(latencies) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    figures: dict[str, Any] = {"benchmark": "durable", "runs": runs}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        figures["sqlite"] = _bench(Settings(home=home / "s", secrets_dir=home / "x"), runs)
        print("sqlite", figures["sqlite"])
        admin = os.environ.get("CHARTER_BENCH_POSTGRES_URL")
        if admin:
            name = f"charter_bench_{uuid.uuid4().hex[:8]}"
            engine = create_engine(make_url(admin).set(drivername="postgresql+psycopg"),
                                   isolation_level="AUTOCOMMIT")  # fmt: skip
            with engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(admin).set(database=name).render_as_string(hide_password=False)
            try:
                database = Database(url)
                upgrade(database)
                database.dispose()
                settings = Settings(home=home / "p", secrets_dir=home / "x", database_url=url)
                figures["postgres"] = _bench(settings, runs)
                print("postgres", figures["postgres"])
            finally:
                with engine.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                engine.dispose()
    figures["targets_ms"] = {"approval_sqlite": 100, "approval_postgres": 20}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
