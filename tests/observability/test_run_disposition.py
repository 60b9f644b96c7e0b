"""One place says what a run's refusals and end mean (observability/runs.py); the SLOs and the
rollout guard both read it, on SQLite and Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from charter.core.decision import Decision, Stage
from charter.core.events import RunFinished, RunIdentity, RunStarted
from charter.governance import guard
from charter.governance.traffic import Deployment
from charter.observability.runs import RunRecorder, RunStore, violations_of
from charter.storage import Database, upgrade

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("outcome", "denied", "totals", "expected"),
    [
        ("succeeded", 2, '{"violations": 0, "blocked_attacks": 2}', (0, 2)),
        ("denied", 1, '{"violations": 1, "blocked_attacks": 0}', (1, 0)),
        ("denied", 1, '{"violations": 0}', (0, 0)),  # no attack count: none assumed
        # Recorded before refusals were told apart: every refusal is a violation, and a run
        # that ended denied had one (a guess towards a breach).
        ("succeeded", 2, '{"denied_calls": 2}', (2, 0)),
        ("denied", 0, None, (1, 0)),
        ("succeeded", 0, None, (0, 0)),
        # Unreadable totals are treated as missing, never as "no violation".
        ("denied", 0, "{not json", (1, 0)),
        ("succeeded", 3, "[1, 2]", (3, 0)),
        ("succeeded", 1, '{"violations": "0"}', (1, 0)),  # not a count: not believed
    ],
)
def test_violations_of(
    outcome: str, denied: int, totals: str | None, expected: tuple[int, int]
) -> None:
    assert violations_of(outcome, denied, totals) == expected


class Rows:
    def __init__(self, database: Database) -> None:
        self.recorder = RunRecorder(database)
        self.store = RunStore(database)
        self.count = 0

    def add(
        self, outcome: str, rule: str | None = None, release: str = "rel", **totals: Any
    ) -> str:
        self.count += 1
        run_id = f"run_{self.count:03d}"
        identity = RunIdentity(run_id, "orders", release, "acme", "alice", "", (), "prod", "m",
                               "p", f"t{self.count}")  # fmt: skip
        started = NOW - timedelta(minutes=30)
        self.recorder(RunStarted(identity, started, "in"))
        decision = Decision.deny(Stage.POLICY, "why", rule) if rule else None
        self.recorder(RunFinished(identity, started + timedelta(seconds=1), outcome, "why",
                                  decision, {"elapsed_seconds": 1.0, **totals}))  # fmt: skip
        assert self.recorder.errors == 0
        return run_id

    def disposition(self, run_id: str) -> str:
        return self.store.get(run_id).disposition


@pytest.fixture
def rows(db_url: str) -> Iterator[Rows]:
    database = Database(db_url)
    upgrade(database)
    try:
        yield Rows(database)
    finally:
        database.dispose()


def test_each_end_has_one_disposition(rows: Rows) -> None:
    cases = {
        rows.add("succeeded"): "succeeded",
        rows.add("failed"): "failed",
        rows.add("killed", "kill-switch:all"): "failed",
        rows.add("budget_exceeded", "budget.max_usd"): "failed",
        rows.add("escalated", "budget.max_tool_calls"): "failed",  # on_exceed: escalate
        rows.add("escalated", "builtin.escalate_to_human"): "handed_off",
        rows.add("escalated", "approval.escalate"): "handed_off",
        rows.add("approval_required", "require_approval_for[0]"): "handed_off",
        rows.add("denied", "approval.terminate", violations=0, blocked_attacks=0): "handed_off",
        rows.add("denied", "deny[0]", violations=0, blocked_attacks=1): "attack_blocked",
        rows.add("denied", "deny[0]", violations=1, blocked_attacks=0): "failed",
        rows.add("denied", "deny[0]", denied_calls=1): "failed",  # recorded before
    }
    assert {run_id: rows.disposition(run_id) for run_id in cases} == cases


def test_the_rollout_guard_counts_violations_as_the_slos_do(rows: Rows) -> None:
    rows.add("denied", "deny[0]", denied_calls=1, violations=0, blocked_attacks=1)
    rows.add("succeeded", denied_calls=1, violations=0, blocked_attacks=1)
    rows.add("succeeded", denied_calls=1, violations=1, blocked_attacks=0)
    rows.add("succeeded")
    deployment = Deployment("orders", "prod", {"rel": 100}, "rel", None, 0, 1, NOW, "ops")
    stats = guard._stats(rows.store._database, deployment, "rel", NOW - timedelta(hours=1))
    assert (stats.runs, stats.violation_rate) == (4, 0.25)
