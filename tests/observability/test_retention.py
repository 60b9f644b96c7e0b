"""Pruning spans and runs: old ones go, recent ones stay, the audit log is never touched."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Table, func, insert, select

from charter.core.errors import UserError
from charter.observability.audit import AuditLog
from charter.observability.retention import Pruner
from charter.observability.runs import RunStore
from charter.observability.timeline import TimelineReader
from charter.storage import Database
from charter.storage.tables import audit_records, run_labels, runs, spans
from charter.testing.clock import FakeClock
from tests.observability.test_timeline import T0, TickingClock, add_span, demo_runs


@pytest.fixture
def ids(db_url: str, tmp_path: Path) -> dict[str, str]:
    """The demo's runs, started at T0, plus two labels."""
    ids = demo_runs(db_url, tmp_path / "home", clock=TickingClock(T0))
    database = Database(db_url)
    store = RunStore(database)
    for ticket in ("T-1007", "T-1001"):
        store.label(ids[ticket], "escalation", "confirmed", by="lead", at=T0)
    database.dispose()
    return ids


def count(database: Database, table: Table) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def add_spans(database: Database, run_id: str) -> None:
    """Three spans of ``run_id``: started 40 days, 10 days and 1 hour before T0 + 45 days."""
    now = T0 + timedelta(days=45)
    for index, age in enumerate((timedelta(days=40), timedelta(days=10), timedelta(hours=1))):
        add_span(database, span_id=f"{index:016x}", trace_id="f" * 32, run_id=run_id,
                 name="chat m", start=now - age, duration_ms=3,
                 attributes={"gen_ai.operation.name": "chat"})  # fmt: skip


def audit_state(database: Database) -> tuple[int, bool]:
    log = AuditLog(database)
    try:
        report = log.verify()
    finally:
        log.close()
    return report.records_checked, report.ok


def test_prune_deletes_only_what_is_old_and_never_the_audit_log(
    database: Database, ids: dict[str, str]
) -> None:
    add_spans(database, ids["T-1001"])
    records, ok = audit_state(database)
    assert ok
    assert records == count(database, audit_records) > 0
    pruner = Pruner(database)

    # 45 days after the runs: spans over 30 days old go; the runs (under 90 days) stay.
    report = pruner.prune(now=T0 + timedelta(days=45), spans_older_than=timedelta(days=30),
                          runs_older_than=timedelta(days=90))  # fmt: skip
    assert (report.spans, report.runs, report.run_labels) == (1, 0, 0)
    assert report.spans_before == T0 + timedelta(days=15)
    assert count(database, spans) == 2
    assert count(database, runs) == 7

    # 100 days after: every run and its labels go, and the remaining spans (over 30 days).
    report = pruner.prune(now=T0 + timedelta(days=100), spans_older_than=timedelta(days=30),
                          runs_older_than=timedelta(days=90))  # fmt: skip
    assert (report.spans, report.runs, report.run_labels) == (2, 7, 2)
    assert (count(database, spans), count(database, runs), count(database, run_labels)) == (0, 0, 0)
    assert audit_state(database) == (records, True)
    assert count(database, audit_records) == records

    # The denied run is still explained, from the audit log alone.
    timeline = TimelineReader(database, FakeClock(T0)).find(ids["T-1003"])
    assert timeline is not None
    assert (timeline.outcome, timeline.rule_id) == ("denied", "constraints.send_email.to.domain_in")
    assert timeline.usage is None


def test_a_dry_run_counts_and_deletes_nothing(database: Database, ids: dict[str, str]) -> None:
    add_spans(database, ids["T-1002"])
    report = Pruner(database).prune(
        now=T0 + timedelta(days=100),
        spans_older_than=timedelta(days=30),
        runs_older_than=timedelta(days=90),
        dry_run=True,
    )
    assert report.dry_run
    assert (report.spans, report.runs, report.run_labels) == (3, 7, 2)
    assert (count(database, spans), count(database, runs), count(database, run_labels)) == (3, 7, 2)


def test_recent_runs_are_kept_and_none_keeps_a_kind(
    database: Database, ids: dict[str, str]
) -> None:
    add_spans(database, ids["T-1004"])
    report = Pruner(database).prune(now=T0 + timedelta(days=100), spans_older_than=None,
                                    runs_older_than=timedelta(days=101))  # fmt: skip
    assert (report.spans_before, report.spans, report.runs) == (None, 0, 0)
    assert (count(database, spans), count(database, runs)) == (3, 7)


def test_large_backlogs_are_deleted_in_batches(database: Database, ids: dict[str, str]) -> None:
    with database.engine.begin() as connection:
        connection.execute(insert(run_labels).values([
            {"run_id": run_id, "label": "escalation", "value": "overturned", "labeled_by": "x",
             "labeled_at": T0, "note": ""}
            for ticket, run_id in ids.items() if ticket not in ("T-1007", "T-1001")
        ]))  # fmt: skip
    add_spans(database, ids["T-1005"])
    report = Pruner(database, batch=2).prune(now=T0 + timedelta(days=100),
                                             spans_older_than=timedelta(days=1),
                                             runs_older_than=timedelta(days=1))  # fmt: skip
    assert (report.spans, report.runs, report.run_labels) == (3, 7, 7)
    assert (count(database, spans), count(database, runs), count(database, run_labels)) == (0, 0, 0)


def test_bad_input_is_refused(database: Database) -> None:
    pruner = Pruner(database)
    with pytest.raises(UserError, match="must be positive"):
        pruner.prune(now=T0, spans_older_than=timedelta(0), runs_older_than=None)
    with pytest.raises(UserError, match="timezone-aware"):
        pruner.prune(now=datetime(2026, 1, 1), spans_older_than=None, runs_older_than=None)
    with pytest.raises(ValueError, match="batch"):
        Pruner(database, batch=0)
