"""Runs rows whose cost is not an amount from 0 (written by a version that trusted a model's
usage, or altered) never make a cost report or a metric negative."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from charter.observability.cost import CostReporter
from charter.observability.metrics import render_metrics
from charter.storage import Database
from charter.testing.clock import FakeClock
from tests.observability.test_cost import add_run

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_a_cost_report_leaves_out_costs_that_are_not_amounts(database: Database) -> None:
    add_run(database, "run_good", started=T0, cost="1.50", fees="0.50")
    # The review's run: minus $750,000 recorded for a model that reported -10**12 tokens.
    add_run(database, "run_negative", started=T0, cost="-749999.99991825", fees="0")
    add_run(database, "run_nan", started=T0, cost="NaN", fees="0")
    add_run(database, "run_text", started=T0, cost="a lot", fees="0")
    add_run(database, "run_fees", started=T0, cost="0.10", fees="0.50")  # fees above the whole

    report = CostReporter(database, FakeClock(T0)).report("charter", usd_per_hour=Decimal(0))

    [line] = report.lines
    assert (line.runs, line.unreadable_cost) == (5, 4)
    assert (line.model_usd, line.tool_fees_usd, line.total_usd) == (
        Decimal("1.00"),
        Decimal("0.50"),
        Decimal("1.50"),
    )
    data = report.as_dict()
    assert data["total"]["unreadable_cost"] == 4
    assert data["total"]["total_usd"] == "1.500000"


def test_metrics_never_count_a_negative_or_unusable_cost(database: Database) -> None:
    add_run(database, "run_good", started=T0, cost="1.50", fees="0.50")
    add_run(database, "run_negative", started=T0, cost="-749999.99991825", fees="-1")
    if database.dialect == "postgresql":
        add_run(database, "run_nan", started=T0, cost="NaN", fees="NaN")

    samples = {
        (sample.name, sample.labels.get("outcome")): sample.value
        for family in text_string_to_metric_families(render_metrics(database, clock=FakeClock(T0)))
        for sample in family.samples
        if sample.name in ("charter_cost_usd_total", "charter_tool_fees_usd_total")
    }

    assert samples == {
        ("charter_cost_usd_total", "succeeded"): 1.5,
        ("charter_tool_fees_usd_total", "succeeded"): 0.5,
    }
