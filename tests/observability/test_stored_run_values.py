"""A ``runs`` row holding a value that is no amount (issue 11, sibling of defect 2) is read,
flagged and left out of every sum: never a crash, never garbage counted as money, tokens or
time. On SQLite and Postgres; SQLite also takes text where a number belongs."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text, update
from typer.testing import CliRunner

from charter.cli.app import app
from charter.contract.schema import SloSpec
from charter.governance.guard import judge
from charter.governance.traffic import Deployment
from charter.observability.metrics import render_metrics
from charter.observability.runs import RunStore, violations_of
from charter.observability.slo import evaluate_slos
from charter.observability.stored import stored_count, stored_seconds, stored_usd
from charter.observability.timeline import TimelineReader
from charter.storage import Database, upgrade
from charter.storage.tables import runs
from charter.testing.clock import FakeClock
from tests.observability.test_cost import add_run

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)

# (cost_usd, tool_fees_usd) as a row may hold them; each pair is unreadable money.
BAD_MONEY = [
    ("a lot", "0"),
    ("NaN", "0"),
    ("-749999.99991825", "0"),  # the review's run: a model reported -10**12 tokens
    ("Infinity", "0"),
    ("1E+999999", "0"),  # finite, and formatting it to cents would fail
    ("", "0"),
    ("0.10", "0.50"),  # fees above the whole cost
    ("1.50", "-1"),
    ("1.50", "sNaN"),
]


def _set(database: Database, run_id: str, **values: Any) -> None:
    with database.engine.begin() as connection:
        connection.execute(update(runs).where(runs.c.id == run_id).values(**values))


def _set_raw(database: Database, run_id: str, column: str, value: object) -> None:
    """SQLite only: store ``value`` as it is (text in an INTEGER column, say)."""
    with database.engine.begin() as connection:
        connection.execute(
            text(f'UPDATE runs SET "{column}" = :value WHERE id = :id'),
            {"value": value, "id": run_id},
        )


@pytest.mark.parametrize(("cost", "fees"), BAD_MONEY)
def test_a_run_with_unreadable_money_reads_as_unknown_and_flagged(
    database: Database, cost: str, fees: str
) -> None:
    add_run(database, "run_good", started=T0, cost="1.50", fees="0.50")
    add_run(database, "run_bad", started=T0 + timedelta(seconds=1), cost=cost, fees=fees)
    store = RunStore(database)

    bad = store.get("run_bad")
    assert (bad.cost_usd, bad.tool_fees_usd, bad.model_cost_usd) == (None, None, None)
    assert bad.unreadable == ("cost_usd", "tool_fees_usd")
    data = bad.as_dict()
    assert (data["cost_usd"], data["model_cost_usd"], data["tool_fees_usd"]) == (None,) * 3
    assert data["unreadable"] == ["cost_usd", "tool_fees_usd"]
    good = store.get("run_good")
    assert (good.cost_usd, good.tool_fees_usd, good.unreadable) == (
        Decimal("1.50"),
        Decimal("0.50"),
        (),
    )
    assert [r.id for r in store.list()] == ["run_bad", "run_good"]


def test_slo_cost_per_run_leaves_unreadable_money_out(database: Database) -> None:
    add_run(database, "run_a", started=T0, cost="1.00", fees="0")
    add_run(database, "run_b", started=T0, cost="3.00", fees="0")
    add_run(database, "run_bad", started=T0, cost="-749999.99991825", fees="0")
    spec = SloSpec.model_validate(
        {"name": "cost_per_run_usd", "objective": "<= 2.5", "window": "1d"}
    )
    [result] = evaluate_slos(RunStore(database), "billing", [spec], now=T0 + timedelta(hours=1))
    assert result.value == Decimal("2.00")  # (1 + 3) / 2: the garbage is neither $0 nor counted
    assert (result.runs, result.samples, result.status) == (3, 2, "met")


def test_the_inspector_shows_unreadable_money_as_unknown(
    database: Database, db_url: str, tmp_path: Path
) -> None:
    add_run(database, "run_bad", started=T0, cost="NaN", fees="0")
    add_run(database, "run_good", started=T0 - timedelta(minutes=1), cost="1.50", fees="0.50")
    env = {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_DATABASE_URL": db_url,
           "COLUMNS": "300"}  # fmt: skip
    listed = CliRunner().invoke(app, ["runs", "list"], env=env)
    assert listed.exit_code == 0, listed.stdout + listed.stderr
    line = next(row for row in listed.stdout.splitlines() if row.startswith("run_bad"))
    assert "?" in line.split()
    assert "NaN" not in listed.stdout
    assert "figures shown as ? are unreadable in the database" in " ".join(listed.stderr.split())
    listed = CliRunner().invoke(app, ["runs", "list", "--json"], env=env)
    by_id = {r["run_id"]: r for r in json.loads(listed.stdout)["runs"]}
    assert by_id["run_bad"]["cost_usd"] is None
    assert by_id["run_good"]["cost_usd"] == "1.50"
    shown = CliRunner().invoke(app, ["runs", "show", "run_bad"], env=env)
    assert shown.exit_code == 0, shown.stdout + shown.stderr
    assert "cost ?" in shown.stdout
    assert "unreadable" in shown.stdout
    timeline = TimelineReader(database, FakeClock(T0)).find("run_bad")
    assert timeline is not None
    assert timeline.usage is not None
    assert timeline.usage.cost_usd is None


def test_metrics_leave_out_money_that_is_not_a_number(database: Database) -> None:
    # On Postgres, casting this text to a number was an error: the whole scrape failed.
    add_run(database, "run_good", started=T0, cost="1.50", fees="0.50")
    add_run(database, "run_text", started=T0, cost="a lot", fees="some")
    add_run(database, "run_huge", started=T0, cost="1E+999999", fees="0")
    add_run(database, "run_small", started=T0, cost="1E-7", fees="0")  # str(Decimal) writes this

    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(render_metrics(database, clock=FakeClock(T0)))
        for sample in family.samples
        if sample.name in ("charter_cost_usd_total", "charter_tool_fees_usd_total")
    }
    assert samples["charter_cost_usd_total"] == pytest.approx(1.5000001)
    assert samples["charter_tool_fees_usd_total"] == pytest.approx(0.5)


def test_metrics_leave_out_durations_that_are_not_durations(database: Database) -> None:
    for n, seconds in enumerate((2.0, float("nan"), float("inf"), -5.0)):
        add_run(database, f"run_{n}", started=T0)
        _set(database, f"run_{n}", elapsed_seconds=seconds)
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(render_metrics(database, clock=FakeClock(T0)))
        for sample in family.samples
        if sample.name.startswith("charter_run_duration_seconds_")
        and sample.name != "charter_run_duration_seconds_bucket"
    }
    assert samples == {
        "charter_run_duration_seconds_count": 1.0,
        "charter_run_duration_seconds_sum": 2.0,
    }


# -- counts and seconds ------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["total_tokens", "tool_calls", "tool_errors", "denied_calls",
                                    "model_calls"])  # fmt: skip
def test_a_negative_count_reads_as_unknown_and_flagged(database: Database, column: str) -> None:
    add_run(database, "run_bad", started=T0)
    _set(database, "run_bad", **{column: -(2**31)})
    row = RunStore(database).get("run_bad")
    assert getattr(row, column) is None
    assert row.unreadable == (column,)
    assert row.as_dict()[column] is None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -3.0])
def test_elapsed_seconds_that_are_no_duration_read_as_unknown(
    database: Database, value: float
) -> None:
    add_run(database, "run_bad", started=T0)
    _set(database, "run_bad", elapsed_seconds=value)
    row = RunStore(database).get("run_bad")
    assert row.elapsed_seconds is None
    # SQLite stores NaN as NULL: nothing unreadable is left, just no duration.
    stored_null = database.dialect == "sqlite" and math.isnan(value)
    assert row.unreadable == (() if stored_null else ("elapsed_seconds",))


def test_text_where_sqlite_keeps_a_number_is_read_and_flagged(tmp_path: Path) -> None:
    # SQLite only: Postgres refuses text in a numeric column, SQLite stores it.
    database = Database(f"sqlite:///{tmp_path / 'charter.sqlite3'}")
    upgrade(database)
    add_run(database, "run_bad", started=T0)
    for column in ("total_tokens", "tool_calls", "denied_calls", "elapsed_seconds"):
        _set_raw(database, "run_bad", column, "many")
    row = RunStore(database).get("run_bad")
    assert (row.total_tokens, row.tool_calls, row.denied_calls, row.elapsed_seconds) == (None,) * 4
    assert set(row.unreadable) == {"total_tokens", "tool_calls", "denied_calls", "elapsed_seconds"}
    # Unknown refusals err towards a violation, as legacy rows do.
    assert row.violations == 1
    database.dispose()


def test_slo_rates_leave_out_runs_whose_counts_are_unreadable(database: Database) -> None:
    add_run(database, "run_a", started=T0)  # 1 tool call, 0 errors
    add_run(database, "run_b", started=T0)
    _set(database, "run_b", tool_calls=4, tool_errors=2)
    add_run(database, "run_bad", started=T0)
    _set(database, "run_bad", tool_calls=-(2**31), tool_errors=5)
    spec = SloSpec.model_validate(
        {"name": "tool_error_rate", "objective": "<= 0.5", "window": "1d"}
    )
    [result] = evaluate_slos(RunStore(database), "billing", [spec], now=T0 + timedelta(hours=1))
    assert result.value == pytest.approx(float(Fraction(2, 5)))  # run_bad is neither 0 nor -2**31
    assert result.samples == 5


def test_violations_of_never_raises_on_what_a_row_holds() -> None:
    for denied in ("many", -1, None, 2.5, True):
        assert violations_of("denied", denied, None) == (1, 0)  # unknown: at least one
        assert violations_of("succeeded", denied, None) == (1, 0)
    assert violations_of("succeeded", 0, None) == (0, 0)
    assert violations_of("denied", 3, "{not json") == (3, 0)
    assert violations_of("denied", 3, '{"violations": -4}') == (3, 0)  # not a count: legacy
    assert violations_of("denied", 3, '{"violations": 0, "blocked_attacks": "x"}') == (0, 0)


def test_the_rollout_guard_reads_unreadable_latency_as_unknown(database: Database) -> None:
    for n in range(3):
        add_run(database, f"run_{n}", started=T0)
    _set(database, "run_0", elapsed_seconds=float("inf"), charter_sha256="a" * 64)
    _set(database, "run_1", elapsed_seconds=2.0, charter_sha256="a" * 64)
    _set(database, "run_2", elapsed_seconds=4.0, charter_sha256="b" * 64)
    deployment = Deployment(
        charter_name="billing", environment="dev", weights={"a" * 64: 50, "b" * 64: 50},
        stable_release="a" * 64, candidate_release="b" * 64, stage=0, generation=1,
        updated_at=T0 - timedelta(hours=1), updated_by="ops",
    )  # fmt: skip
    verdict = judge(database, deployment, _guards(), T0 + timedelta(hours=1))
    assert verdict.stable is not None
    assert verdict.stable.p95_latency_seconds == 2.0


def _guards() -> Any:
    from charter.contract.schema import RolloutGuards

    return RolloutGuards.model_validate({"min_runs": 1, "window": "2h"})


# -- the readers themselves ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.50", Decimal("1.50")),
        (" 2 ", Decimal("2")),
        ("0", Decimal("0")),
        ("1E-7", Decimal("1E-7")),
        (3, Decimal(3)),
        ("999999999999999.99", Decimal("999999999999999.99")),
        ("1000000000000000", None),
        ("-0.01", None),
        ("NaN", None),
        ("-Infinity", None),
        ("1E+999999999", None),
        ("1,50", None),
        ("", None),
        (None, None),
        (True, None),
        (1.5, None),  # money is never a float
        (b"1", None),
    ],
)
def test_stored_usd(value: object, expected: Decimal | None) -> None:
    assert stored_usd(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (7, 7), (2**40, 2**40), (-1, None), (True, None), ("3", None), (3.0, None),
     (None, None)],
)  # fmt: skip
def test_stored_count(value: object, expected: int | None) -> None:
    assert stored_count(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0.0), (2.5, 2.5), (3, 3.0), (-0.1, None), (float("nan"), None), (float("inf"), None),
     (10**400, None), ("2", None), (None, None), (False, None)],
)  # fmt: skip
def test_stored_seconds(value: object, expected: float | None) -> None:
    assert stored_seconds(value) == expected
