"""SLOs evaluated over recorded runs: every measure, windows, no data, budget and burn.

Runs are written the way production writes them, by ``RunRecorder`` from run events, on
SQLite and on Postgres.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from charter.contract.schema import SloSpec
from charter.core.decision import Decision, Stage
from charter.core.errors import UserError
from charter.core.events import RunFinished, RunIdentity, RunStarted
from charter.observability import slo as slo_module
from charter.observability.runs import RunRecorder, RunStore
from charter.observability.slo import SloResult, evaluate_slos
from charter.storage import Database, upgrade

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CHARTER = "orders"


class Runs:
    """Writes runs through the recorder and evaluates SLOs over them."""

    def __init__(self, database: Database) -> None:
        self.recorder = RunRecorder(database)
        self.store = RunStore(database)
        self.count = 0

    def add(
        self,
        outcome: str = "succeeded",
        *,
        ago: timedelta = timedelta(hours=1),
        took: timedelta = timedelta(seconds=2),
        charter: str = CHARTER,
        rule: str | None = None,
        **totals: Any,
    ) -> str:
        """One run that started ``ago`` before NOW and ended ``took`` later (unless running)."""
        self.count += 1
        run_id = f"run_{self.count:04d}"
        identity = RunIdentity(
            run_id=run_id,
            charter_name=charter,
            charter_sha256="sha",
            tenant="acme",
            user="alice",
            service_principal="",
            roles=(),
            environment="prod",
            model="gpt-4o-mini",
            prompt_sha256="psha",
            trace_id=f"trace{self.count}",
        )
        started = NOW - ago
        self.recorder(RunStarted(identity, started, input_sha256="input-sha"))
        if outcome != "running":
            totals.setdefault("elapsed_seconds", took.total_seconds())
            totals = {k: v for k, v in totals.items() if v is not None}
            decision = Decision.deny(Stage.POLICY, "why", rule) if rule else None
            finished = RunFinished(identity, started + took, outcome, "why", decision, totals)
            self.recorder(finished)
        assert self.recorder.errors == 0
        return run_id

    def evaluate(self, *objectives: tuple[str, str, str], **kwargs: Any) -> list[SloResult]:
        slos = [
            SloSpec.model_validate({"name": n, "objective": o, "window": w})
            for n, o, w in objectives
        ]
        kwargs.setdefault("now", NOW)
        return evaluate_slos(self.store, CHARTER, slos, **kwargs)

    def one(self, name: str, objective: str, own: str = "7d", **kwargs: Any) -> SloResult:
        [result] = self.evaluate((name, objective, own), **kwargs)
        return result


@pytest.fixture
def runs(db_url: str) -> Iterator[Runs]:
    database = Database(db_url)
    upgrade(database)  # Postgres is only upgraded on purpose
    try:
        yield Runs(database)
    finally:
        database.dispose()


# -- the measures ---------------------------------------------------------------------------


def test_task_success_rate_counts_the_runs_left_to_the_agent(runs: Runs) -> None:
    for outcome in ("succeeded", "succeeded", "succeeded", "failed", "budget_exceeded", "killed"):
        runs.add(outcome)
    runs.add("denied", denied_calls=1, violations=1)  # a violation ended it: the agent's doing
    runs.add("escalated", rule="budget.max_tool_calls")  # on_exceed: escalate, still ran out
    # Taken out of the agent's hands, so neither success nor failure of its own:
    runs.add("escalated", rule="builtin.escalate_to_human")  # the model handed it over
    runs.add("approval_required", rule="require_approval_for[0]")  # a gate, in process
    runs.add("denied", rule="deny[0]", denied_calls=1, violations=0, blocked_attacks=1)
    runs.add("denied", rule="approval.terminate", violations=0, blocked_attacks=0)  # a human
    runs.add("running")
    result = runs.one("task_success_rate", ">= 0.95")
    assert result.value == pytest.approx(3 / 8)
    assert (result.runs, result.samples, result.sample_unit) == (12, 8, "runs left to the agent")
    assert result.status == "breached"
    assert result.breached


def test_runs_recorded_before_refusals_were_told_apart_count_as_before(runs: Runs) -> None:
    runs.add("denied")  # no counts at all: ended denied, so a violation, and a failure
    runs.add("succeeded", denied_calls=2)  # only the old count: each refusal a violation
    runs.add("succeeded")
    success = runs.one("task_success_rate", ">= 0.5")
    assert (success.value, success.samples) == (pytest.approx(2 / 3), 3)
    violations = runs.one("policy_violations_per_1000_runs", "<= 1000")
    assert violations.value == pytest.approx(1000 * 2 / 3)


def test_blocked_attacks_and_human_refusals_are_not_violations(runs: Runs) -> None:
    runs.add("denied", rule="deny[0]", denied_calls=1, violations=0, blocked_attacks=1)
    runs.add("succeeded", denied_calls=2, violations=0, blocked_attacks=2)  # on_deny: continue
    runs.add("denied", rule="approval.reject", violations=0, blocked_attacks=0)
    runs.add("succeeded", denied_calls=1, violations=1, blocked_attacks=0)  # one of its own
    result = runs.one("policy_violations_per_1000_runs", "<= 1")
    assert result.value == pytest.approx(1000 / 4)
    assert result.status == "breached"


def test_policy_violations_count_runs_with_a_refused_call(runs: Runs) -> None:
    runs.add("succeeded", denied_calls=2)  # on_deny: continue, still one violating run
    runs.add("denied", denied_calls=1)
    runs.add("denied")  # ended denied even if its totals lack the count
    runs.add("approval_required")  # an approval gate is not a violation
    runs.add("budget_exceeded")
    runs.add("killed")
    runs.add("succeeded")
    runs.add("failed", tool_errors=1)
    result = runs.one("policy_violations_per_1000_runs", "<= 500")
    assert result.value == pytest.approx(1000 * 3 / 8)
    assert result.status == "met"
    assert result.burn_rate == pytest.approx(375 / 500)
    assert result.budget_remaining == pytest.approx(1 - 375 / 500)


def test_escalation_accuracy_is_confirmed_over_labeled_escalations(runs: Runs) -> None:
    confirmed = runs.add("escalated")
    overturned = runs.add("escalated")
    runs.add("escalated")  # not labeled yet: not counted
    succeeded = runs.add("succeeded")
    for run_id, value in (
        (confirmed, "confirmed"),
        (overturned, "overturned"),
        (succeeded, "confirmed"),
    ):
        runs.store.label(run_id, "escalation", value, by="lead", at=NOW)
    result = runs.one("escalation_accuracy", ">= 0.9", "30d")
    assert result.value == 0.5
    assert (result.runs, result.samples, result.sample_unit) == (4, 2, "labeled escalations")
    assert result.status == "breached"
    assert result.burn_rate == pytest.approx(0.5 / 0.1)


def test_escalation_accuracy_without_labels_is_no_data_not_a_breach(runs: Runs) -> None:
    runs.add("escalated")
    result = runs.one("escalation_accuracy", ">= 0.9")
    assert (result.value, result.status, result.breached) == (None, "no_data", False)
    assert (result.budget_remaining, result.burn_rate) == (None, None)
    assert (result.runs, result.samples) == (1, 0)


@pytest.mark.parametrize(("count", "expected"), [(1, 1.0), (20, 19.0), (21, 20.0), (100, 95.0)])
def test_p95_latency_is_the_nearest_rank(runs: Runs, count: int, expected: float) -> None:
    # ceil(0.95 n): 1 -> 1st, 20 -> 19th, 21 -> 20th (19.95 rounds up), 100 -> 95th.
    for seconds in reversed(range(1, count + 1)):  # stored out of order on purpose
        runs.add(took=timedelta(seconds=seconds))
    result = runs.one("p95_latency_seconds", "<= 30")
    assert result.value == expected
    assert result.samples == count
    assert result.burn_rate == pytest.approx(expected / 30)


def test_p95_latency_leaves_out_runs_without_an_elapsed_time(runs: Runs) -> None:
    runs.add(took=timedelta(seconds=3))
    runs.add(elapsed_seconds=None)
    result = runs.one("p95_latency_seconds", "<= 30")
    assert (result.value, result.samples, result.runs) == (3.0, 1, 2)


def test_tool_error_rate_is_errors_over_calls_across_runs(runs: Runs) -> None:
    runs.add(tool_calls=10, tool_errors=1)
    runs.add(tool_calls=0, tool_errors=0)
    runs.add("failed", tool_calls=10, tool_errors=3)
    result = runs.one("tool_error_rate", "<= 0.25")
    assert result.value == pytest.approx(4 / 20)
    assert (result.samples, result.sample_unit) == (20, "tool calls")
    assert result.status == "met"


def test_tool_error_rate_without_tool_calls_is_no_data(runs: Runs) -> None:
    runs.add(tool_calls=0)
    assert runs.one("tool_error_rate", "<= 0.05").status == "no_data"


def test_cost_per_run_is_the_exact_mean_in_usd(runs: Runs) -> None:
    for cost in ("0.10", "0.20", "0.25"):
        runs.add(cost_usd=cost)
    result = runs.one("cost_per_run_usd", "<= 0.2")
    assert result.value == Decimal("0.183333")  # 0.55 / 3, shown to six places
    assert result.status == "met"
    assert result.burn_rate == pytest.approx(0.55 / 3 / 0.2)
    assert result.as_dict()["value"] == "0.183333"


# -- the window -----------------------------------------------------------------------------


def test_only_runs_that_started_in_the_window_and_ended_by_now_count(runs: Runs) -> None:
    runs.add("failed", ago=timedelta(days=7, seconds=1))  # started before the window
    runs.add(ago=timedelta(days=7))  # on the window's first instant: in
    runs.add(ago=timedelta(minutes=1), took=timedelta(minutes=2))  # ends after now: not yet
    runs.add("failed", ago=timedelta(0))  # starts at now: the window is [start, now)
    runs.add("failed", ago=-timedelta(hours=1))  # in the future of a past ``now``
    runs.add("running", ago=timedelta(hours=2))
    runs.add("failed", charter="other")
    runs.add(ago=timedelta(hours=3))
    result = runs.one("task_success_rate", ">= 0.95")
    assert (result.runs, result.value, result.status) == (2, 1.0, "met")
    assert result.window_start == NOW - timedelta(days=7)
    assert result.window_end == NOW


def test_each_slo_uses_its_own_window_unless_one_is_given(runs: Runs) -> None:
    runs.add(ago=timedelta(minutes=10))
    runs.add("failed", ago=timedelta(hours=5))
    runs.add("failed", ago=timedelta(days=3))
    short, long = runs.evaluate(
        ("task_success_rate", ">= 0.5", "30m"), ("task_success_rate", ">= 0.5", "2w")
    )
    assert (short.window, short.runs, short.value, short.status) == ("30m", 1, 1.0, "met")
    assert (long.window, long.runs, long.status) == ("2w", 3, "breached")
    overridden = runs.evaluate(
        ("task_success_rate", ">= 0.5", "30m"), ("task_success_rate", ">= 0.5", "2w"), window="24h"
    )
    assert [(r.window, r.runs) for r in overridden] == [("24h", 2), ("24h", 2)]


def test_a_window_holding_more_runs_than_a_page_is_read_whole(
    runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slo_module, "_PAGE", 2)
    runs.add(ago=timedelta(minutes=30))
    for _ in range(4):  # four runs starting at one instant straddle two page boundaries
        runs.add(ago=timedelta(hours=1))
    runs.add("failed", ago=timedelta(hours=2))
    runs.add(ago=timedelta(hours=3))
    result = runs.one("task_success_rate", ">= 0.5")
    assert (result.runs, result.value) == (7, pytest.approx(6 / 7))


def test_more_runs_at_one_instant_than_can_be_read_at_once_is_an_error(
    runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slo_module, "_PAGE", 2)
    monkeypatch.setattr(slo_module, "_TIES", 3)
    for _ in range(3):
        runs.add(ago=timedelta(hours=1))
    with pytest.raises(UserError, match="3 or more runs of 'orders' started at 2025-06-01T11:00"):
        runs.one("task_success_rate", ">= 0.5")


def test_no_runs_is_no_data_for_every_slo(runs: Runs) -> None:
    runs.add(ago=timedelta(days=30))  # outside every window below
    results = runs.evaluate(
        ("task_success_rate", ">= 0.95", "7d"),
        ("policy_violations_per_1000_runs", "<= 1", "7d"),
        ("escalation_accuracy", ">= 0.9", "7d"),
        ("p95_latency_seconds", "<= 30", "24h"),
        ("tool_error_rate", "<= 0.05", "7d"),
        ("cost_per_run_usd", "<= 0.25", "7d"),
    )
    assert [r.name for r in results] == [
        "task_success_rate",
        "policy_violations_per_1000_runs",
        "escalation_accuracy",
        "p95_latency_seconds",
        "tool_error_rate",
        "cost_per_run_usd",
    ]
    for result in results:
        assert (result.status, result.value, result.runs, result.breached) == (
            "no_data",
            None,
            0,
            False,
        )
        assert result.as_dict()["burn_rate"] is None


def test_a_charter_without_slos_reads_nothing(runs: Runs) -> None:
    assert evaluate_slos(runs.store, CHARTER, [], now=NOW) == []


def test_now_must_have_a_time_zone_and_an_override_window_must_parse(runs: Runs) -> None:
    with pytest.raises(UserError, match="no time zone"):
        runs.one("task_success_rate", ">= 0.9", now=NOW.replace(tzinfo=None))
    with pytest.raises(UserError, match="must look like 30m"):
        runs.one("task_success_rate", ">= 0.9", window="1 hour")


# -- error budget and burn rate -------------------------------------------------------------


def test_on_the_objective_exactly_is_met_with_the_budget_exactly_spent(runs: Runs) -> None:
    for _ in range(19):
        runs.add()
    runs.add("failed")
    at_least = runs.one("task_success_rate", ">= 0.95")  # 19/20 = 0.95, no float slack
    assert (at_least.status, at_least.burn_rate, at_least.budget_remaining) == ("met", 1.0, 0.0)
    above = runs.one("task_success_rate", "> 0.95")
    assert (above.status, above.burn_rate) == ("breached", 1.0)


def test_a_ratio_objective_burns_observed_bad_over_allowed_bad(runs: Runs) -> None:
    for outcome in ("succeeded",) * 8 + ("failed",) * 2:
        runs.add(outcome)
    result = runs.one("task_success_rate", ">= 0.9")  # allowed 10% bad, observed 20%
    assert result.value == pytest.approx(0.8)
    assert result.burn_rate == pytest.approx(2.0)
    assert result.budget_remaining == pytest.approx(-1.0)  # overspent: negative
    relaxed = runs.one("task_success_rate", ">= 0.6")  # allowed 40%, observed 20%
    assert (relaxed.status, relaxed.burn_rate) == ("met", pytest.approx(0.5))
    assert relaxed.budget_remaining == pytest.approx(0.5)


def test_a_limit_objective_burns_value_over_limit(runs: Runs) -> None:
    runs.add(took=timedelta(seconds=45))
    over = runs.one("p95_latency_seconds", "<= 30")
    assert (over.status, over.burn_rate) == ("breached", 1.5)
    assert over.budget_remaining == pytest.approx(-0.5)
    strict = runs.one("p95_latency_seconds", "< 45")
    assert (strict.status, strict.burn_rate, strict.budget_remaining) == ("breached", 1.0, 0.0)


@pytest.mark.parametrize(
    ("name", "objective", "good", "bad"),
    [
        ("task_success_rate", ">= 1", {}, {"outcome": "failed"}),
        ("tool_error_rate", "<= 0", {"tool_calls": 4}, {"tool_calls": 4, "tool_errors": 1}),
        ("policy_violations_per_1000_runs", "<= 0", {}, {"denied_calls": 1}),
        ("cost_per_run_usd", "<= 0", {"cost_usd": "0"}, {"cost_usd": "0.01"}),
    ],
)
def test_a_zero_budget_is_untouched_or_infinitely_overspent(
    runs: Runs, name: str, objective: str, good: dict[str, Any], bad: dict[str, Any]
) -> None:
    runs.add(**good)
    clean = runs.one(name, objective)
    assert (clean.status, clean.burn_rate, clean.budget_remaining) == ("met", 0.0, 1.0)
    runs.add(**bad)
    spent = runs.one(name, objective)
    assert spent.status == "breached"
    assert spent.burn_rate == math.inf
    assert spent.budget_remaining == -math.inf
    shown = spent.as_dict()
    assert (shown["burn_rate"], shown["budget_remaining"], shown["status"]) == (
        None,
        None,
        "breached",
    )
