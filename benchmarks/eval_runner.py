"""Wall time of the eval runner for 200 scripted tasks, and how it scales with concurrency.

The 200 tasks are the example's golden and security tasks (cycled to 200, each copy its own
task id), run under the example charter with the gullible scripted model, each in a fresh
desk and a governed run writing its audit records, run row and spans to a scratch SQLite
eval database, as ``charter eval`` does. Checks are evaluated; reports are built (not
written). Target (DESIGN.md): <= 10 s for 200 tasks on 2 cores.

Run: python benchmarks/eval_runner.py [--tasks 200] [--concurrency 1,4,16]. Last line JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from charter_examples.support_desk.demo import CHARTER_PATH

from charter import Charter, Settings
from charter.evaluation.placeholder_secrets import PlaceholderSecrets
from charter.evaluation.report import build_report
from charter.evaluation.runner import EvalOptions, run_suites
from charter.evaluation.suite import Suite, Task, load_suites
from charter.runtime import Runtime

EVALS = CHARTER_PATH.parent / "evals"


def _suite_of(count: int) -> Suite:
    suites = load_suites([EVALS / "golden.yaml", EVALS / "security.yaml"])
    pool = [task for suite in suites for task in suite.tasks]
    tasks = tuple(
        replace(pool[i % len(pool)], suite="bench", id=f"{pool[i % len(pool)].id}-{i}")
        for i in range(count)
    )
    return replace(suites[0], name="bench", tasks=tasks)


def _measure(charter: Charter, suite: Suite, concurrency: int) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="charter-bench-eval-"))
    settings = Settings(
        home=scratch,
        secrets_dir=scratch / "secrets",
        environment="prod",
        database_url=f"sqlite:///{scratch / 'runs.sqlite3'}",
    )
    options = EvalOptions(concurrency=concurrency)
    try:
        with Runtime(settings, secret_providers=(PlaceholderSecrets(),)) as runtime:

            def model_for(task: Task, epoch: int, seed: int) -> Any:
                return runtime.build_model(charter)

            started = time.perf_counter()
            results = asyncio.run(
                run_suites(
                    charter,
                    [suite],
                    run_agent=runtime.run_agent,
                    model_for=model_for,
                    options=options,
                )
            )
            report = build_report(
                charter,
                [suite],
                results,
                options=options,
                enforcement=True,
                model="scripted",
                replay=None,
                created_at=_now(),
                duration_seconds=time.perf_counter() - started,
            )
            elapsed = time.perf_counter() - started
            runtime.flush_traces()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    passed = sum(1 for t in report["tasks"] if t["status"] == "passed")
    return {
        "concurrency": concurrency,
        "tasks": len(suite.tasks),
        "wall_s": round(elapsed, 3),
        "tasks_per_s": round(len(suite.tasks) / elapsed, 1),
        "passed": passed,
    }


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--concurrency", default="1,2,4,8,16")
    args = parser.parse_args()
    os.environ.pop("CHARTER_OTLP_ENDPOINT", None)
    charter = Charter.load(CHARTER_PATH)
    suite = _suite_of(args.tasks)
    _measure(charter, _suite_of(10), 4)  # warm imports and caches
    rows = [_measure(charter, suite, int(c)) for c in args.concurrency.split(",")]
    for row in rows:
        print(
            f"concurrency {row['concurrency']:>3}: {row['tasks']} tasks in {row['wall_s']} s "
            f"({row['tasks_per_s']} tasks/s), {row['passed']} passed"
        )
    best = min(rows, key=lambda r: r["wall_s"])
    print(
        json.dumps(
            {
                "benchmark": "eval_runner",
                "tasks": args.tasks,
                "cores": os.cpu_count(),
                "target_s": 10,
                "best_wall_s": best["wall_s"],
                "best_concurrency": best["concurrency"],
                "by_concurrency": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
