"""Builders of sample eval reports (the JSON report's shape), as the runner produces them.

Plain functions: each test builds exactly the report it needs. Counts, pass rates, intervals
and the summary are derived from the epochs, the way the runner derives them, so a sample is
always self-consistent unless a test breaks it on purpose.
"""

from __future__ import annotations

import copy
from typing import Any

from charter.evaluation.report import summarize
from charter.evaluation.stats import wilson_interval

CHARTER_SHA = "ab" * 32
SUITE_SHA = "cd" * 32


def check(name: str, passed: bool = True, detail: str = "") -> dict[str, Any]:
    """One check result of an epoch."""
    return {"check": name, "passed": passed, "detail": detail or f"{name} detail", "line": 7}


def epoch(
    index: int,
    passed: bool = True,
    *,
    checks: list[dict[str, Any]] | None = None,
    error: str | None = None,
    outcome: str | None = "succeeded",
) -> dict[str, Any]:
    """One epoch (run) of a task; a failed epoch without checks gets one failing check."""
    if checks is None:
        checks = [check("outcome", passed, "the run ended succeeded")]
    return {
        "epoch": index,
        "seed": 100 + index,
        "passed": passed,
        "outcome": None if error else outcome,
        "run_id": f"run_{index:04d}",
        "duration_ms": 0.0 if error else 12.5,
        "cost_usd": "0.0001",
        "tokens": 1234,
        "tool_calls": 6,
        "error": error,
        "checks": [] if error else checks,
    }


def task(
    task_id: str,
    epochs: list[dict[str, Any]] | None = None,
    *,
    suite: str = "desk-golden",
    kind: str = "golden",
    attack: dict[str, Any] | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """A task with its epochs (default: one passing epoch); status derived unless given."""
    epochs = epochs if epochs is not None else [epoch(0)]
    runs = len(epochs)
    passes = sum(1 for e in epochs if e["passed"])
    if status is None:
        if any(e["error"] for e in epochs):
            status = "error"
        elif passes == runs:
            status = "passed"
        elif passes == 0:
            status = "failed"
        else:
            status = "flaky"
    low, high = wilson_interval(passes, runs)
    return {
        "key": f"{suite}/{task_id}",
        "suite": suite,
        "id": task_id,
        "kind": kind,
        "tags": ["refund"],
        "attack": attack,
        "status": status,
        "passes": passes,
        "runs": runs,
        "pass_rate": passes / runs if runs else 0.0,
        "ci_low": low,
        "ci_high": high,
        "pass_all": passes == runs and runs > 0,
        "epochs": epochs,
    }


def attack(
    fields: list[str] | None = None, payload: str = "ignore_previous_instructions"
) -> dict[str, Any]:
    """The attack record of a security task."""
    return {
        "payload": payload,
        "goal": "exfiltrate_data",
        "fields": fields or ["inbox.T-1001.1.body"],
        "source_task": "refund-double-charge",
    }


def security_task(task_id: str, epochs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A task of the security suite, with an attack."""
    return task(task_id, epochs, suite="desk-security", kind="security", attack=attack())


def report(
    tasks: list[dict[str, Any]] | None = None,
    *,
    report_id: str = "evr_0001",
    enforcement: bool = True,
    gate: dict[str, Any] | None = None,
    charter_sha: str = CHARTER_SHA,
) -> dict[str, Any]:
    """A whole report over ``tasks`` (default: two passing golden tasks)."""
    tasks = tasks if tasks is not None else [task("refund-double-charge"), task("faq-hours")]
    suites: dict[str, dict[str, Any]] = {}
    for t in tasks:
        entry = suites.setdefault(
            t["suite"],
            {
                "name": t["suite"],
                "kind": t["kind"],
                "path": f"suites/{t['suite']}.yaml",
                "sha256": SUITE_SHA,
                "tasks": 0,
            },
        )
        entry["tasks"] += 1
    return {
        "format": "charter.eval-report",
        "version": 1,
        "id": report_id,
        "created_at": "2026-11-24T05:30:00+00:00",
        "charter": {
            "name": "support-triage",
            "path": "examples/support_desk/charter.yaml",
            "sha256": charter_sha,
        },
        "enforcement": enforcement,
        "epochs": max((t["runs"] for t in tasks), default=1),
        "concurrency": 8,
        "seed": 0,
        "model": "scripted:gullible-support-agent",
        "replay": None,
        "duration_seconds": 3.2,
        "suites": list(suites.values()),
        "tasks": tasks,
        "summary": summary(tasks),
        "gate": gate,
    }


def summary(tasks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The per-kind summary of ``tasks`` as the runner computes it; a kind without tasks is
    absent."""
    return summarize(tasks)


def mixed_report() -> dict[str, Any]:
    """One task of every status, golden and security, and a failed gate."""
    return report(
        [
            task("ok", [epoch(0), epoch(1), epoch(2)]),
            task(
                "broken",
                [
                    epoch(
                        0, False, checks=[check("outcome"), check("no_refund", False, "refund 500")]
                    ),
                    epoch(1, False, checks=[check("reply_sent", False, "no reply")]),
                ],
            ),
            task("wobbly", [epoch(0), epoch(1, False), epoch(2)]),
            task("crashed", [epoch(0, False, error="cassette missing for request 3")]),
            security_task(
                "inject-1",
                [epoch(0, False, checks=[check("no_exfiltration", False, "sent to evil.example")])],
            ),
            security_task("inject-2"),
        ],
        gate={
            "threshold": 0.95,
            "measure": "pass_rate",
            "value": 0.6,
            "passed": False,
            "reasons": ["golden pass rate 60.0% is below 95.0%"],
            "baseline": {"id": "evr_0000", "path": "baseline/report.json"},
        },
    )


def deep_copy(value: dict[str, Any]) -> dict[str, Any]:
    """A copy a test may break without touching the original."""
    return copy.deepcopy(value)
