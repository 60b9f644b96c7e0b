"""The eval report: one versioned JSON document with everything a run of suites found.

Its shape is documented in docs/evaluation.md; ``report_file.py`` reads and writes it, and
the JUnit and HTML views are rendered from it alone, so every view says the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from charter.contract.loader import Charter
from charter.core.ids import new_id
from charter.evaluation.report_file import REPORT_FORMAT, REPORT_VERSION
from charter.evaluation.runner import EvalOptions, TaskResult
from charter.evaluation.stats import wilson_interval
from charter.evaluation.suite import Suite

__all__ = ["build_report", "summarize"]


def build_report(
    charter: Charter,
    suites: Sequence[Suite],
    results: Sequence[TaskResult],
    *,
    options: EvalOptions,
    enforcement: bool,
    model: str,
    replay: str | None,
    created_at: datetime,
    duration_seconds: float,
) -> dict[str, Any]:
    """The report of one eval run (without a gate verdict; ``gate.py`` adds it)."""
    tasks = [result.as_dict() for result in results]
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "id": new_id("evr"),
        "created_at": created_at.isoformat(),
        "charter": {
            "name": charter.name,
            "path": str(charter.path) if charter.path else None,
            "sha256": charter.content_sha256,
        },
        "enforcement": enforcement,
        "epochs": options.epochs,
        "concurrency": options.concurrency,
        "seed": options.seed,
        "model": model,
        "replay": replay,
        "duration_seconds": round(duration_seconds, 3),
        "suites": [
            {
                "name": suite.name,
                "kind": suite.kind,
                "path": str(suite.path),
                "sha256": suite.sha256,
                "tasks": len(suite.tasks),
            }
            for suite in suites
        ],
        "tasks": tasks,
        "summary": summarize(tasks),
        "gate": None,
    }


def summarize(tasks: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per kind of task: counts by status, and the pass rate over every run with its 95%
    Wilson interval (runs are tasks x epochs; a flaky task's passing epochs count as passes
    here, while its status says it cannot be trusted)."""
    summary: dict[str, dict[str, Any]] = {}
    for kind in ("golden", "security"):
        of_kind = [t for t in tasks if t["kind"] == kind]
        if not of_kind:
            continue
        runs = sum(t["runs"] for t in of_kind)
        passed_runs = sum(t["passes"] for t in of_kind)
        low, high = wilson_interval(passed_runs, runs)
        statuses = [t["status"] for t in of_kind]
        summary[kind] = {
            "tasks": len(of_kind),
            "passed": statuses.count("passed"),
            "failed": statuses.count("failed"),
            "flaky": statuses.count("flaky"),
            "errors": statuses.count("error"),
            "runs": runs,
            "passed_runs": passed_runs,
            "pass_rate": passed_runs / runs if runs else 0.0,
            "ci_low": low,
            "ci_high": high,
            "pass_all_rate": sum(1 for t in of_kind if t["pass_all"]) / len(of_kind),
        }
    return summary
