"""Durable runs per second through the run queue, with one and with two ``charter worker``s.

The run is a 3-tool-call support-desk run (T-1007: three reads, then the agent escalates;
4 model turns, 9 durable steps). Workers are real ``charter worker`` processes; runs are
queued with ``DurableControl.enqueue`` (what ``charter run --detach`` does) and the clock
runs from the first enqueue to the last run's end.

Configurations: SQLite with one worker (more than one worker belongs on Postgres, see
docs/dbos-notes.md); and, if CHARTER_BENCH_POSTGRES_URL names an admin URL, Postgres with
one worker and with two.

Run: python benchmarks/durable_throughput.py [--runs N]. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from charter_examples.support_desk.demo import CHARTER_PATH

from charter import Charter, Settings
from charter.durable import DurableControl, RunSpec
from charter.durable.system_db import dbos_client
from scratch_db import scratch_postgres

CLI = [sys.executable, "-c", "from charter.cli.app import main; main()"]
_ENDED = {"SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"}


def _workers(count: int, env: dict[str, str], home: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for n in range(count):
        log = home / f"worker{n}.log"
        procs.append(subprocess.Popen([*CLI, "worker", "--id", f"bench-w{n}"], env=env,
                                      stdout=log.open("wb"), stderr=subprocess.STDOUT))  # fmt: skip
    deadline = time.monotonic() + 60
    for n in range(count):
        log = home / f"worker{n}.log"
        while b"ready" not in log.read_bytes():
            if time.monotonic() > deadline or procs[n].poll() is not None:
                raise RuntimeError(f"worker {n} did not start: {log.read_text()}")
            time.sleep(0.05)
    return procs


def _measure(settings: Settings, env: dict[str, str], workers: int, runs: int) -> dict[str, Any]:
    charter = Charter.load(CHARTER_PATH)
    spec = RunSpec(str(CHARTER_PATH), charter.content_sha256, "alice", "acme", ("support",),
                   "prod", "Please handle ticket T-1007.")  # fmt: skip
    procs = _workers(workers, env, settings.home)
    try:
        with DurableControl(settings) as control:
            control.enqueue(charter, spec, f"run_warm_{uuid.uuid4().hex[:8]}")
            time.sleep(2)  # let every worker see the queue before the clock starts
            ids = [f"run_tp_{uuid.uuid4().hex}" for _ in range(runs)]
            start = time.perf_counter()
            for run_id in ids:
                control.enqueue(charter, spec, run_id)
            with dbos_client(settings) as client:
                while True:
                    found = client.list_workflows(workflow_ids=ids, load_input=False,
                                                  load_output=False)  # fmt: skip
                    if all(w.status in _ENDED for w in found) and len(found) == runs:
                        break
                    time.sleep(0.02)
            seconds = time.perf_counter() - start
            by_executor: dict[str, int] = {}
            for workflow in found:
                key = workflow.executor_id or "?"
                by_executor[key] = by_executor.get(key, 0) + 1
            statuses = sorted({w.status for w in found})
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
    return {
        "workers": workers,
        "runs": runs,
        "seconds": round(seconds, 2),
        "runs_per_second": round(runs / seconds, 1),
        "runs_by_worker": by_executor,
        "statuses": statuses,
    }


def _env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "CHARTER_HOME": str(settings.home),
            "CHARTER_DATABASE_URL": settings.database_url,
            "CHARTER_SECRET_PAYMENTS_REFUND": "sk_bench_throughput"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    runs = parser.parse_args().runs
    figures: dict[str, Any] = {"benchmark": "durable_throughput", "run": "T-1007, 3 tool calls"}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "s", secrets_dir=Path(tmp) / "x")
        settings.home.mkdir(parents=True)
        figures["sqlite_1_worker"] = _measure(settings, _env(settings), 1, runs)
        print("sqlite, 1 worker", figures["sqlite_1_worker"])
        admin = os.environ.get("CHARTER_BENCH_POSTGRES_URL")
        if admin:
            for workers in (1, 2):
                with scratch_postgres(admin) as url:
                    home = Path(tmp) / f"p{workers}"
                    home.mkdir()
                    pg = Settings(home=home, secrets_dir=Path(tmp) / "x", database_url=url)
                    key = f"postgres_{workers}_worker{'s' if workers > 1 else ''}"
                    figures[key] = _measure(pg, _env(pg), workers, runs)
                    print(f"postgres, {workers} worker(s)", figures[key])
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
