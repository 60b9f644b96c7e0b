"""Migration 0008: counts that grow without bound are 64-bit on Postgres too (issue 11,
sibling of defect 2). A run without a token limit may pass 2**31 tokens; on a 32-bit column
Postgres refused its end, and the run stayed ``running`` in every listing. SQLite's
INTEGER is 64-bit already; the migration changes nothing there but the revision."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, inspect, select, update

from charter.core.events import EventBus, RunFinished, RunIdentity, RunStarted
from charter.governance.changelog import GovernanceLog
from charter.observability.runs import RunRecorder, RunStore
from charter.storage import Database, head_revision, upgrade
from charter.storage.tables import deployments, governance_events, runs
from charter.testing import FakeClock
from tests.observability.test_cost import add_run
from tests.storage.support import database_at

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BEYOND_32_BITS = 2**31  # one past the largest 32-bit integer
BIG = 3 * 10**12  # tokens of a very long run, well past 32 bits

# Every column that counts without a bound (per run, or over a database's lifetime).
WIDE = [
    ("runs", "tool_calls"),
    ("runs", "tool_errors"),
    ("runs", "denied_calls"),
    ("runs", "model_calls"),
    ("runs", "total_tokens"),
    ("deployments", "generation"),
    ("governance_events", "id"),
]


@pytest.fixture
def at_0007(db_url: str) -> Iterator[Database]:
    with database_at(db_url, "0007") as database:
        yield database


def _identity(run_id: str) -> RunIdentity:
    return RunIdentity(
        run_id=run_id, charter_name="desk", charter_sha256="0" * 64, tenant="acme",
        user="alice", service_principal="", roles=(), environment="dev", model="scripted:x",
        prompt_sha256="0" * 64, trace_id="0" * 32,
    )  # fmt: skip


def test_a_run_past_2_to_the_31_tokens_is_recorded_and_read_back(db_url: str) -> None:
    database = Database(db_url)
    try:
        upgrade(database)
        recorder = RunRecorder(database)
        run = _identity("run_long")
        recorder(RunStarted(run, T0, "0" * 64))
        totals = {"tool_calls": BEYOND_32_BITS, "tool_errors": BEYOND_32_BITS,
                  "denied_calls": BEYOND_32_BITS, "model_calls": BEYOND_32_BITS,
                  "total_tokens": BIG, "cost_usd": "12345.678", "tool_fees_usd": "0",
                  "elapsed_seconds": 86_400.0}  # fmt: skip
        recorder(RunFinished(run, T0 + timedelta(days=1), "succeeded", "done", None, totals))
        assert recorder.errors == 0  # on Postgres the end was refused: a 32-bit column
        row = RunStore(database).get("run_long")
        assert row.outcome == "succeeded"
        assert (row.total_tokens, row.tool_calls, row.model_calls) == (
            BIG,
            BEYOND_32_BITS,
            BEYOND_32_BITS,
        )
        assert row.unreadable == ()
    finally:
        database.dispose()


def test_upgrading_keeps_every_row_and_takes_64_bit_counts(at_0007: Database) -> None:
    database = at_0007
    add_run(database, "run_old", started=T0)
    log = GovernanceLog(database, FakeClock(T0), EventBus())
    with database.engine.begin() as connection:
        for n in range(3):
            log.record(connection, charter_name="desk", action="rollback", actor="bob",
                       reason=f"reason {n}", environment="prod")  # fmt: skip
        connection.execute(
            insert(deployments).values(
                charter_name="desk", environment="prod", weights="{}", stable_release="r",
                candidate_release=None, stage=0, generation=7, updated_at=T0, updated_by="ops",
            )
        )  # fmt: skip

    assert upgrade(database) == ("0007", head_revision())

    with database.engine.connect() as connection:
        old = connection.execute(select(runs).where(runs.c.id == "run_old")).one()
        events = connection.execute(
            select(governance_events.c.id, governance_events.c.reason).order_by(
                governance_events.c.id
            )
        ).all()
        generation = connection.execute(select(deployments.c.generation)).scalar_one()
    assert (old.tool_calls, old.total_tokens, old.cost_usd) == (1, 10, "1.50")
    assert [e.reason for e in events] == ["reason 0", "reason 1", "reason 2"]
    assert generation == 7
    # Past 32 bits now, on both backends.
    with database.engine.begin() as connection:
        connection.execute(
            update(runs)
            .where(runs.c.id == "run_old")
            .values(**{column: BIG for table, column in WIDE if table == "runs"})
        )
        connection.execute(update(deployments).values(generation=BIG))
    assert RunStore(database).get("run_old").total_tokens == BIG


def test_governance_events_keep_numbering_past_32_bits(at_0007: Database) -> None:
    database = at_0007
    upgrade(database)
    log = GovernanceLog(database, FakeClock(T0), EventBus())
    with database.engine.begin() as connection:
        log.record(connection, charter_name="desk", action="rollback", actor="bob",
                   reason="first", environment="prod")  # fmt: skip
        # A row numbered past 32 bits, then one numbered by the database after it.
        connection.execute(
            insert(governance_events).values(
                id=BIG, at=T0, charter_name="desk", environment="prod", action="rollback",
                actor="bob", release_id=None, reason="far", details="{}",
            )
        )  # fmt: skip
    if database.dialect == "postgresql":
        with database.engine.begin() as connection:
            connection.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('governance_events', 'id'), {BIG})"
            )
    with database.engine.begin() as connection:
        log.record(connection, charter_name="desk", action="rollback", actor="bob",
                   reason="next", environment="prod")  # fmt: skip
    with database.engine.connect() as connection:
        ids = connection.execute(
            select(governance_events.c.id).order_by(governance_events.c.id)
        ).scalars()
        assert list(ids)[-1] == BIG + 1


def test_the_wide_columns_are_64_bit(db_url: str) -> None:
    database = Database(db_url)
    try:
        upgrade(database)
        with database.engine.connect() as connection:
            found = {
                (table, c["name"]): str(c["type"]).upper()
                for table in {t for t, _ in WIDE}
                for c in inspect(connection).get_columns(table)
            }
        wide = "INTEGER" if database.dialect == "sqlite" else "BIGINT"  # SQLite's is 64-bit
        assert {key: found[key] for key in WIDE} == dict.fromkeys(WIDE, wide)
    finally:
        database.dispose()
