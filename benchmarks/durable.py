"""Durable runs on DBOS: step overhead, and approval decision to resumed run.

For each backend (SQLite file; Postgres if CHARTER_BENCH_POSTGRES_URL names an admin URL):
- the same support-desk ticket (T-1004: 4 tool calls, 5 model turns) run in process and as
  a durable workflow through the run queue; the queue pickup (enqueue to first step) is
  measured from DBOS's step records, and the rest of the difference divided by the number
  of durable steps is the overhead of one durable step;
- a run parked for approval (T-1002): the time from sending the decision (on an open
  ``DurableControl``, as a long-lived approvals service would) to the approved refund's
  audit record, i.e. how fast a human's "yes" reaches the tool.

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
from dbos import DBOS

from charter import Charter, Principal, Runtime, Settings
from charter.durable import DurableControl, DurableEngine, RunSpec
from charter.identity.secrets import EnvSecretProvider
from scratch_db import scratch_postgres

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


async def _approval_latency(
    engine: DurableEngine, control: DurableControl, charter: Charter
) -> float:
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
    control.notify_decision(run_id=run_id, request_id=request.id, verdict="approve",
                            by="lead", reason="bench")  # fmt: skip
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
            durable, plain, pickups, steps = [], [], [], 0
            for _ in range(runs):
                run_id = f"run_{uuid.uuid4().hex}"
                enqueued_at = time.time()
                start = time.perf_counter()
                result = asyncio.run(engine.run(_spec(charter, "T-1004"), run_id=run_id))
                durable.append(time.perf_counter() - start)
                first = DBOS.list_workflow_steps(run_id)[0]["started_at_epoch_ms"]
                pickups.append(max(0.0, first / 1000 - enqueued_at))
                plain.append(asyncio.run(_in_process(runtime, charter)))
                # run start + model turns + tool calls + settle + run end
                steps = 3 + result["model_calls"] + len(result["tool_calls"])
            with DurableControl(settings) as control:
                latencies = [
                    asyncio.run(_approval_latency(engine, control, charter)) for _ in range(runs)
                ]
        finally:
            engine.destroy()
    pickup = statistics.median(pickups)
    overhead = (statistics.median(durable) - pickup - statistics.median(plain)) / steps
    return {
        "durable_run_p50_ms": round(statistics.median(durable) * 1000, 1),
        "queue_pickup_p50_ms": round(pickup * 1000, 1),
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
            with scratch_postgres(admin) as url:
                settings = Settings(home=home / "p", secrets_dir=home / "x", database_url=url)
                figures["postgres"] = _bench(settings, runs)
                print("postgres", figures["postgres"])
    figures["targets_ms"] = {"approval_sqlite": 100, "approval_postgres": 20, "step": 2}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
