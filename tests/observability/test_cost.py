"""Cost reports on real support-desk runs and on runs written straight into the table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import insert

from charter.core.errors import UserError
from charter.core.events import EventBus
from charter.execution.approval_store import ApprovalRecord, ApprovalStore
from charter.identity.roles import RoleGrants
from charter.observability.cost import CostReporter, approval_wait, group_by, review_cost
from charter.observability.runs import RunStore
from charter.storage import Database
from charter.storage.tables import runs
from charter.testing.clock import FakeClock
from tests.observability.test_timeline import T0, TickingClock, decide, demo_runs

RATE = Decimal(60)


def add_run(database: Database, run_id: str, *, charter: str = "billing", tenant: str = "globex",
            started: datetime, outcome: str = "succeeded", cost: str = "1.50",
            fees: str = "0.50") -> None:  # fmt: skip
    """A run row as RunRecorder writes it, with the figures a report reads."""
    with database.engine.begin() as connection:
        connection.execute(
            insert(runs).values(
                id=run_id, charter_name=charter, charter_sha256="0" * 64, tenant=tenant,
                user="u", environment="dev", model="m", trace_id="0" * 32, started_at=started,
                finished_at=None if outcome == "running" else started + timedelta(seconds=3),
                outcome=outcome, reason="", tool_calls=1, tool_errors=0, denied_calls=0,
                model_calls=1, total_tokens=10, cost_usd=cost, tool_fees_usd=fees,
            )
        )  # fmt: skip


def requests(database: Database) -> dict[str, ApprovalRecord]:
    """The approval requests the demo filed, by run id."""
    store = ApprovalStore(database, FakeClock(T0), EventBus(), RoleGrants(database, FakeClock(T0)))
    return {record.run_id: record for record in store.list(limit=100)}


def test_the_demo_costs_model_fees_and_human_waiting(
    db_url: str, database: Database, tmp_path: Path
) -> None:
    ids = demo_runs(db_url, tmp_path / "home", clock=TickingClock(T0))
    filed = requests(database)
    assert set(filed) == {ids["T-1002"], ids["T-1005"]}
    # T-1002 is decided after 30 minutes; T-1005 is still pending 90 minutes on.
    t1002, t1005 = filed[ids["T-1002"]], filed[ids["T-1005"]]
    decide(database, FakeClock(t1002.requested_at + timedelta(minutes=30)), t1002.id, "approve",
           "lead")  # fmt: skip
    now = t1005.requested_at + timedelta(minutes=90)

    report = CostReporter(database, FakeClock(now)).report("charter", usd_per_hour=RATE)

    rows = RunStore(database).list(limit=100)
    [line] = report.lines
    assert line.group == "support-triage"
    assert (line.runs, line.succeeded, line.in_progress, line.approvals) == (7, 2, 0, 2)
    assert line.model_usd == sum((r.model_cost_usd for r in rows), Decimal(0))
    assert line.tool_fees_usd == sum((r.tool_fees_usd for r in rows), Decimal(0))
    assert line.tool_fees_usd == Decimal("0.01")  # the one refund that went through
    assert line.review_hours == 2  # 0.5 h + 1.5 h
    assert line.review_usd == 120
    total = line.model_usd + line.tool_fees_usd + 120
    assert line.total_usd == total
    assert line.per_run_usd == (total / 7).quantize(Decimal("0.000001"))
    assert line.per_success_usd == (total / 2).quantize(Decimal("0.000001"))
    assert report.total.total_usd == total
    data = report.as_dict()
    assert data["groups"][0]["review_usd"] == "120.000000"
    assert data["review_usd_per_hour"] == "60"

    unpriced = CostReporter(database, FakeClock(now)).report("charter", usd_per_hour=Decimal(0))
    assert unpriced.lines[0].review_hours == 2
    assert unpriced.lines[0].review_usd == 0


def test_a_request_nobody_decided_costs_no_more_than_its_expiry(
    db_url: str, database: Database, tmp_path: Path
) -> None:
    ids = demo_runs(db_url, tmp_path / "home", clock=TickingClock(T0))
    latest = max(record.requested_at for record in requests(database).values())
    report = CostReporter(database, FakeClock(latest + timedelta(days=9))).report(
        "tenant", usd_per_hour=RATE, charter="support-triage"
    )
    [line] = report.lines
    assert line.group == "acme"
    assert line.review_hours == 48  # two requests, each waited its 24 hours and expired
    assert ids


def test_groups_by_tenant_costliest_first_and_by_day_in_order(database: Database) -> None:
    day = datetime(2026, 4, 1, 12, tzinfo=UTC)
    add_run(database, "run_a", tenant="acme", started=day, cost="1.00", fees="0")
    add_run(database, "run_b", tenant="globex", started=day + timedelta(days=1), cost="5.00")
    add_run(database, "run_c", tenant="globex", started=day - timedelta(days=1), cost="2.00",
            outcome="denied")  # fmt: skip
    add_run(database, "run_d", tenant="initech", started=day, outcome="running", cost="0",
            fees="0")  # fmt: skip
    reporter = CostReporter(database, FakeClock(day + timedelta(days=2)))

    by_tenant = reporter.report("tenant", usd_per_hour=RATE)
    assert [line.group for line in by_tenant.lines] == ["globex", "acme", "initech"]
    globex = by_tenant.lines[0]
    assert (globex.runs, globex.succeeded) == (2, 1)
    assert globex.tool_fees_usd == Decimal("1.00")
    assert globex.model_usd == Decimal("6.00")
    assert globex.total_usd == Decimal("7.00")
    assert globex.per_run_usd == Decimal("3.5")
    assert globex.per_success_usd == Decimal("7")
    initech = by_tenant.lines[2]
    assert (initech.runs, initech.in_progress, initech.per_success_usd) == (1, 1, None)
    assert initech.as_dict()["per_success_usd"] is None
    assert by_tenant.total.runs == 4
    assert by_tenant.total.total_usd == Decimal("8.00")

    by_day = reporter.report("day", usd_per_hour=RATE)
    assert [line.group for line in by_day.lines] == ["2026-03-31", "2026-04-01", "2026-04-02"]
    assert [line.runs for line in by_day.lines] == [1, 2, 1]

    window = reporter.report("day", usd_per_hour=RATE, since=day, until=day + timedelta(hours=1))
    assert [line.group for line in window.lines] == ["2026-04-01"]
    only = reporter.report("charter", usd_per_hour=RATE, tenant="acme")
    assert [(line.group, line.runs) for line in only.lines] == [("billing", 1)]
    assert reporter.report("charter", usd_per_hour=RATE, charter="nope").lines == ()


def test_bad_input_is_refused(database: Database) -> None:
    reporter = CostReporter(database, FakeClock(T0))
    with pytest.raises(UserError, match="--by 'week' is not one of charter, tenant, day"):
        reporter.report("week", usd_per_hour=RATE)
    with pytest.raises(UserError, match="no time zone"):
        reporter.report("day", usd_per_hour=RATE, since=datetime(2026, 1, 1))
    with pytest.raises(UserError, match="0 or more"):
        reporter.report("day", usd_per_hour=Decimal(-1))
    assert group_by("day") == "day"


def test_approval_wait_and_review_cost() -> None:
    asked = T0
    expires = T0 + timedelta(hours=24)
    decided = T0 + timedelta(minutes=45)
    assert approval_wait(asked, decided, expires, T0 + timedelta(days=3)) == timedelta(minutes=45)
    assert approval_wait(asked, None, expires, T0 + timedelta(hours=2)) == timedelta(hours=2)
    assert approval_wait(asked, None, expires, T0 + timedelta(days=3)) == timedelta(hours=24)
    assert approval_wait(asked, None, expires, T0 - timedelta(hours=1)) == timedelta(0)
    assert review_cost(timedelta(minutes=45), Decimal(80)) == Decimal(60)
    assert review_cost(timedelta(seconds=1), Decimal(3600)) == Decimal(1)
