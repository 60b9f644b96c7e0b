"""The audit log: round trips, per-tenant chains, tamper detection, concurrency, bad input.

Every test that touches storage runs twice through ``db_url``: on a SQLite file and on a fresh
Postgres database. Tampering is done the way an attacker with database access would do it: a
connection of its own that first switches the append-only triggers off. Each tamper test
checks that ``verify`` names the right tenant and the *first* bad position, not just that it
fails.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, CursorResult, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool

from charter.core.canonical import canonical_json, sha256_hex
from charter.core.errors import AuditUnavailable, UserError
from charter.observability import audit as audit_module
from charter.observability.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditLog,
    AuditRecord,
    ChainBreak,
    VerifyReport,
)
from charter.storage import Database, upgrade

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_entry(i: int = 0, *, tenant: str = "acme", **overrides: Any) -> AuditEntry:
    values: dict[str, Any] = {
        "kind": "tool_call",
        "at": T0 + timedelta(seconds=i),
        "tenant": tenant,
        "user": "alice",
        "service_principal": "svc-support",
        "roles": ("support", "refunds"),
        "environment": "prod",
        "run_id": f"run-{i // 3}",
        "charter_name": "support-desk",
        "charter_sha256": "c" * 64,
        "model": "test-model",
        "prompt_sha256": "p" * 64,
        "tool": "refund",
        "arguments": {"order_id": f"o-{i}", "amount": i},
        "arguments_sha256": "a" * 64,
        "verdict": "deny",
        "reason": f"reason {i}",
        "rule_id": "R1",
        "stage": "policy",
        "outcome": "denied",
        "trace_id": "t" * 32,
        "span_id": "s" * 16,
    }
    values.update(overrides)
    return AuditEntry(**values)


def expected_hash(prev_hash: str, entry: AuditEntry, position: int) -> str:
    """The documented hashing rule, computed independently of the module's fast path."""
    payload = {f.name: getattr(entry, f.name) for f in fields(AuditEntry)}
    payload["at"] = entry.at.astimezone(UTC).isoformat(timespec="microseconds")
    payload["roles"] = list(entry.roles)
    payload["position"] = position
    for optional in ("event_id", "fee_usd"):
        if payload[optional] is None:
            del payload[optional]  # left out, so older records keep their hashes
    return sha256_hex(prev_hash + "\n" + canonical_json(payload))


@pytest.fixture
def url(db_url: str) -> str:
    """``db_url`` with Charter's schema in place (Postgres is only upgraded on purpose)."""
    database = Database(db_url)
    try:
        upgrade(database)
    finally:
        database.dispose()
    return db_url


@pytest.fixture
def log(url: str) -> Iterator[AuditLog]:
    with AuditLog.open(url) as opened:
        yield opened


def is_sqlite(log: AuditLog) -> bool:
    return log.database.dialect == "sqlite"


def fill(log: AuditLog, tenants: dict[str, int]) -> None:
    """Append ``count`` entries for each tenant, interleaved so row ids and positions differ."""
    remaining = dict(tenants)
    i = 0
    while any(remaining.values()):
        for tenant, left in remaining.items():
            if left:
                log.append(make_entry(i, tenant=tenant))
                remaining[tenant] = left - 1
                i += 1


@contextmanager
def attacker(log: AuditLog) -> Iterator[Connection]:
    """A transaction as an attacker would use it: append-only triggers switched off first."""
    with log.database.engine.begin() as conn:
        if is_sqlite(log):
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_records_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_records_no_delete")
        else:
            conn.exec_driver_sql(
                "ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_change"
            )
        yield conn


def sql(conn: Connection, statement: str, **params: Any) -> CursorResult[Any]:
    return conn.execute(text(statement), params)


def reseal(log: AuditLog, record: AuditRecord, **fields: Any) -> None:
    """Rewrite ``record``'s payload with ``fields`` set and seal it again, as a forger who
    knows the chain would: its hash and its tenant's head agree with the forged payload, so
    only a check of what the payload holds can catch it."""
    with attacker(log) as conn:
        payload = sql(
            conn, "SELECT payload FROM audit_records WHERE row_id = :r", r=record.row_id
        ).scalar_one()
        forged = canonical_json({**json.loads(payload), **fields})
        digest = sha256_hex(f"{record.prev_hash}\n{forged}")
        sql(
            conn,
            "UPDATE audit_records SET payload = :p, hash = :h WHERE row_id = :r",
            p=forged,
            h=digest,
            r=record.row_id,
        )
        sql(
            conn,
            "UPDATE audit_heads SET hash = :h WHERE tenant = :t",
            h=digest,
            t=record.entry.tenant,
        )


def row_id_of(conn: Connection, tenant: str, position: int) -> int:
    found = sql(
        conn,
        "SELECT row_id FROM audit_records WHERE tenant = :tenant AND position = :position",
        tenant=tenant,
        position=position,
    ).scalar_one()
    return int(found)


def count(log: AuditLog, table: str) -> int:
    with log.database.engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())


@contextmanager
def failing_trigger(log: AuditLog, table: str, verb: str) -> Iterator[None]:
    """Every ``verb`` on ``table`` fails with 'disk on fire' until the block ends."""
    with log.database.engine.begin() as conn:
        if is_sqlite(log):
            conn.exec_driver_sql(
                f"CREATE TRIGGER break_it BEFORE {verb} ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION disk_on_fire() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'disk on fire'; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                f"CREATE TRIGGER break_it BEFORE {verb} ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION disk_on_fire()"
            )
    try:
        yield
    finally:
        with log.database.engine.begin() as conn:
            if is_sqlite(log):
                conn.exec_driver_sql("DROP TRIGGER break_it")
            else:
                conn.exec_driver_sql(f"DROP TRIGGER break_it ON {table}")
                conn.exec_driver_sql("DROP FUNCTION disk_on_fire()")


def assert_break(report: VerifyReport, tenant: str, position: int, problem: str) -> ChainBreak:
    assert not report.ok
    assert report.first_break is not None
    assert (report.first_break.tenant, report.first_break.position) == (tenant, position)
    assert problem in report.first_break.problem
    return report.first_break


def assert_contiguous(records: list[AuditRecord]) -> None:
    by_tenant: dict[str, list[AuditRecord]] = {}
    for record in records:
        by_tenant.setdefault(record.entry.tenant, []).append(record)
    for chain in by_tenant.values():
        chain.sort(key=lambda r: r.position)
        assert [r.position for r in chain] == list(range(1, len(chain) + 1))
        assert chain[0].prev_hash == GENESIS_HASH
        for before, after in pairwise(chain):
            assert after.prev_hash == before.hash
            assert after.row_id > before.row_id


# -- round trip ------------------------------------------------------------------------------


def test_append_returns_sealed_record_and_reads_back_identically(log: AuditLog) -> None:
    entries = [make_entry(i) for i in range(3)]
    appended = [log.append(e) for e in entries]

    assert [r.position for r in appended] == [1, 2, 3]
    assert appended[0].prev_hash == GENESIS_HASH
    assert appended[1].prev_hash == appended[0].hash
    for record in appended:
        assert record.hash == expected_hash(record.prev_hash, record.entry, record.position)
    assert log.tail() == appended
    assert list(log.records()) == appended
    assert list(log.records("acme")) == appended
    assert [r.entry for r in log.tail()] == entries


def test_tail_is_newest_last_and_respects_limit_and_tenant(log: AuditLog) -> None:
    fill(log, {"acme": 4, "globex": 3})

    assert [(r.entry.tenant, r.position) for r in log.tail(3)] == [
        ("acme", 3),
        ("globex", 3),
        ("acme", 4),
    ]
    assert [r.position for r in log.tail(2, tenant="acme")] == [3, 4]
    assert log.tail(0) == []
    assert len(log.tail(100)) == 7
    assert log.tail(tenant="nobody") == []


def test_tail_rejects_negative_limit(log: AuditLog) -> None:
    with pytest.raises(ValueError, match="negative"):
        log.tail(-1)


def test_records_pages_through_a_long_log_in_chain_order(log: AuditLog) -> None:
    fill(log, {"acme": 400, "globex": 150})

    everything = list(log.records())
    assert [r.row_id for r in everything] == sorted(r.row_id for r in everything)
    assert len(everything) == 550
    acme = list(log.records("acme"))
    assert [r.position for r in acme] == list(range(1, 401))
    assert_contiguous(everything)


def test_as_dict_is_flat_json_with_utc_iso_time(log: AuditLog) -> None:
    at = datetime(2025, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    record = log.append(make_entry(0, at=at, arguments={"amount": 5, "tags": ("a", "b")}))

    data = record.as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["at"] == "2025-03-01T12:30:00.000000+00:00"
    assert data["roles"] == ["support", "refunds"]
    assert data["arguments"] == {"amount": 5, "tags": ["a", "b"]}
    assert {"position", "row_id", "prev_hash", "hash"} <= data.keys()
    assert set(data) == {f.name for f in fields(AuditEntry)} | {
        "position",
        "row_id",
        "prev_hash",
        "hash",
    }
    # The same instant comes back (in UTC), so the read-back entry compares equal.
    (read,) = log.records()
    assert read.entry.at == at
    assert read.entry.at.tzinfo == UTC


def test_queryable_columns_hold_the_entry_fields(log: AuditLog) -> None:
    log.append(make_entry(0, verdict="allow", tool="lookup"))
    log.append(make_entry(1))

    order_id = (
        "json_extract(payload, '$.arguments.order_id')"
        if is_sqlite(log)
        else "payload::json -> 'arguments' ->> 'order_id'"
    )
    with log.database.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            f'SELECT position, tool, verdict, "user", {order_id} FROM audit_records '
            "WHERE tenant = 'acme' AND verdict = 'deny'"
        ).all()
        if is_sqlite(log):
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    assert [tuple(row) for row in rows] == [(2, "refund", "deny", "alice", "o-1")]


# -- chains ----------------------------------------------------------------------------------


def test_tenants_have_independent_chains(log: AuditLog) -> None:
    fill(log, {"acme": 3, "globex": 2})

    acme = list(log.records("acme"))
    globex = list(log.records("globex"))
    assert [r.position for r in acme] == [1, 2, 3]
    assert [r.position for r in globex] == [1, 2]
    assert acme[0].prev_hash == globex[0].prev_hash == GENESIS_HASH
    assert globex[1].prev_hash == globex[0].hash
    assert {r.entry.tenant for r in acme} == {"acme"}
    assert log.verify("acme").records_checked == 3


def test_verify_passes_on_a_clean_log(log: AuditLog) -> None:
    fill(log, {"globex": 2, "acme": 3})

    report = log.verify()
    assert report == VerifyReport(
        ok=True, records_checked=5, tenants=("acme", "globex"), first_break=None
    )
    assert report.as_dict() == {
        "ok": True,
        "records_checked": 5,
        "tenants": ["acme", "globex"],
        "first_break": None,
    }
    assert log.verify("globex").records_checked == 2


def test_verify_of_empty_log_and_unknown_tenant_is_ok(log: AuditLog) -> None:
    assert log.verify() == VerifyReport(True, 0, (), None)
    log.append(make_entry(0))
    assert log.verify("nobody") == VerifyReport(True, 0, (), None)


def test_chain_continues_after_reopening(url: str) -> None:
    with AuditLog.open(url) as first:
        last = first.append(make_entry(0))
    with AuditLog.open(url) as second:
        record = second.append(make_entry(1))
        assert (record.position, record.prev_hash) == (2, last.hash)
        assert second.verify().ok


def test_a_borrowed_database_is_left_to_its_owner(url: str) -> None:
    database = Database(url)
    try:
        with AuditLog(database) as log:
            log.append(make_entry(0))
            assert log.database is database
        # Closing the log closed its own connection only: the caller's pool is intact.
        pool = database.engine.pool
        assert isinstance(pool, QueuePool)
        assert pool.checkedin() >= 1
        with AuditLog(database) as again:
            assert again.append(make_entry(1)).position == 2
    finally:
        database.dispose()


def test_appends_proceed_while_a_reader_holds_a_snapshot(log: AuditLog) -> None:
    log.append(make_entry(0))
    with log.database.engine.connect() as reader:
        if not is_sqlite(log):
            reader.execution_options(isolation_level="REPEATABLE READ")
        assert reader.exec_driver_sql("SELECT count(*) FROM audit_records").scalar_one() == 1
        # The reader's transaction is still open; the writer neither waits nor fails.
        assert log.append(make_entry(1)).position == 2
        assert log.verify().records_checked == 2
        assert reader.exec_driver_sql("SELECT count(*) FROM audit_records").scalar_one() == 1


# -- tamper detection ------------------------------------------------------------------------


@pytest.fixture
def tampered(log: AuditLog) -> AuditLog:
    """A log with acme records 1..5 and globex records 1..3, interleaved."""
    fill(log, {"acme": 5, "globex": 3})
    assert log.verify().ok
    return log


def test_triggers_refuse_plain_update_and_delete(tampered: AuditLog) -> None:
    engine = tampered.database.engine
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_records SET verdict = 'allow'")
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit_records")
    assert tampered.verify().ok


def test_column_edit_is_caught(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        sql(
            conn,
            "UPDATE audit_records SET verdict = 'allow' WHERE tenant = 'acme' AND position = 3",
        )
        row_id = row_id_of(conn, "acme", 3)

    found = assert_break(log.verify(), "acme", 3, "column 'verdict'")
    assert found.row_id == row_id
    # Reading still works: the payload is the source of truth, and it still says deny.
    assert next(r for r in log.records("acme") if r.position == 3).entry.verdict == "deny"


def test_user_column_edit_is_caught(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        sql(
            conn,
            "UPDATE audit_records SET \"user\" = 'mallory' "
            "WHERE tenant = 'globex' AND position = 2",
        )

    assert_break(log.verify(), "globex", 2, "column 'user'")


def test_payload_edit_is_caught(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        sql(
            conn,
            "UPDATE audit_records SET payload = replace(payload, '\"deny\"', '\"allow\"') "
            "WHERE tenant = 'acme' AND position = 2",
        )

    assert_break(log.verify(), "acme", 2, "hash mismatch")


def test_deleted_middle_record_is_caught(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        sql(conn, "DELETE FROM audit_records WHERE tenant = 'acme' AND position = 3")

    found = assert_break(log.verify(), "acme", 3, "record 3 is missing (deleted?)")
    assert found.row_id is None


def test_deleted_last_record_is_caught_by_the_head(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        sql(conn, "DELETE FROM audit_records WHERE tenant = 'globex' AND position = 3")

    report = log.verify()
    assert_break(report, "globex", 3, "chain head says 3 records but only 2 found (truncated?)")
    assert report.records_checked == 7  # acme's 5 and globex's 2 were all still checked


def test_whole_tenant_deleted_is_caught_by_the_head(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        sql(conn, "DELETE FROM audit_records WHERE tenant = 'globex'")

    report = log.verify()
    assert_break(report, "globex", 1, "only 0 found")
    assert report.tenants == ("acme", "globex")


def test_deleted_head_is_caught(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        sql(conn, "DELETE FROM audit_heads WHERE tenant = 'acme'")

    assert_break(log.verify(), "acme", 5, "chain head is missing")


def test_altered_head_is_caught(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        sql(conn, "UPDATE audit_heads SET hash = :h WHERE tenant = 'acme'", h="f" * 64)

    assert_break(log.verify(), "acme", 5, "chain head does not match record 5")


def test_head_rolled_back_is_caught(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        sql(conn, "UPDATE audit_heads SET position = 4 WHERE tenant = 'acme'")

    assert_break(log.verify(), "acme", 5, "head rolled back")


def test_swapped_positions_are_caught_as_reordering(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        two, four = row_id_of(conn, "acme", 2), row_id_of(conn, "acme", 4)
        # UNIQUE(tenant, position) forces a detour through a free position.
        sql(conn, "UPDATE audit_records SET position = -1 WHERE row_id = :r", r=two)
        sql(conn, "UPDATE audit_records SET position = 2 WHERE row_id = :r", r=four)
        sql(conn, "UPDATE audit_records SET position = 4 WHERE row_id = :r", r=two)

    found = assert_break(log.verify(), "acme", 2, "records out of order")
    assert found.row_id == four


def test_swapped_contents_are_caught_as_reordering(tampered: AuditLog) -> None:
    """Swap everything but the position columns: each row now claims the other's place."""
    log = tampered
    columns = ("payload", "prev_hash", "hash", "verdict", "reason", "run_id", "at")
    select = f"SELECT {', '.join(columns)} FROM audit_records WHERE row_id = :r"
    update = (
        f"UPDATE audit_records SET {', '.join(f'{c} = :{c}' for c in columns)} WHERE row_id = :r"
    )
    with attacker(log) as conn:
        two, four = row_id_of(conn, "acme", 2), row_id_of(conn, "acme", 4)
        values_two = sql(conn, select, r=two).one()._asdict()
        values_four = sql(conn, select, r=four).one()._asdict()
        sql(conn, update, r=two, **values_four)
        sql(conn, update, r=four, **values_two)

    assert_break(log.verify(), "acme", 2, "records out of order")


def test_swapped_row_ids_are_caught(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        two, three = row_id_of(conn, "acme", 2), row_id_of(conn, "acme", 3)
        sql(conn, "UPDATE audit_records SET row_id = -1 WHERE row_id = :r", r=two)
        sql(conn, "UPDATE audit_records SET row_id = :new WHERE row_id = :r", new=two, r=three)
        sql(conn, "UPDATE audit_records SET row_id = :new WHERE row_id = -1", new=three)

    assert_break(log.verify(), "acme", 3, "row_id goes backwards")


def test_edited_prev_hash_is_caught(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        sql(
            conn,
            "UPDATE audit_records SET prev_hash = :h WHERE tenant = 'globex' AND position = 2",
            h="e" * 64,
        )

    assert_break(log.verify(), "globex", 2, "hash mismatch")


def test_rehashed_record_breaks_the_link_to_the_next(tampered: AuditLog) -> None:
    """An attacker who recomputes the edited record's hash is caught at the next record."""
    log = tampered
    with attacker(log) as conn:
        row = sql(
            conn,
            "SELECT payload, prev_hash FROM audit_records WHERE tenant = 'acme' AND position = 3",
        ).one()
        payload, prev_hash = row.payload, row.prev_hash
        data = json.loads(payload)
        data["reason"] = "nothing to see"
        forged = canonical_json(data)
        sql(
            conn,
            "UPDATE audit_records SET payload = :p, reason = :r, hash = :h "
            "WHERE tenant = 'acme' AND position = 3",
            p=forged,
            r="nothing to see",
            h=sha256_hex(f"{prev_hash}\n{forged}"),
        )

    assert_break(log.verify(), "acme", 4, "chain link broken")


def test_non_canonical_payload_is_caught_even_if_rehashed(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        row = sql(
            conn,
            "SELECT payload, prev_hash FROM audit_records WHERE tenant = 'acme' AND position = 5",
        ).one()
        payload, prev_hash = row.payload, row.prev_hash
        forged = json.dumps(json.loads(payload), indent=1)
        digest = sha256_hex(f"{prev_hash}\n{forged}")
        sql(
            conn,
            "UPDATE audit_records SET payload = :p, hash = :h "
            "WHERE tenant = 'acme' AND position = 5",
            p=forged,
            h=digest,
        )
        sql(conn, "UPDATE audit_heads SET hash = :h WHERE tenant = 'acme'", h=digest)

    assert_break(log.verify(), "acme", 5, "payload is not a sealed audit entry")


def test_record_moved_to_another_tenant_is_caught(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        # acme's record 4 becomes globex's record 4, which is sealed with position 4 too.
        sql(
            conn,
            "UPDATE audit_records SET tenant = 'globex' WHERE tenant = 'acme' AND position = 4",
        )
        sql(conn, "UPDATE audit_heads SET position = 4 WHERE tenant = 'globex'")

    assert_break(log.verify(), "acme", 4, "record 4 is missing")
    assert_break(log.verify("globex"), "globex", 4, "moved here from tenant 'acme'")


def test_first_break_is_in_the_first_tenant_in_sorted_order(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        sql(conn, "UPDATE audit_records SET reason = 'x' WHERE tenant = 'globex'")
        sql(conn, "UPDATE audit_records SET reason = 'x' WHERE tenant = 'acme' AND position > 3")

    assert_break(log.verify(), "acme", 4, "column 'reason'")
    assert_break(log.verify("globex"), "globex", 1, "column 'reason'")


def test_verify_of_one_tenant_ignores_damage_elsewhere(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        sql(conn, "DELETE FROM audit_records WHERE tenant = 'acme' AND position = 1")

    assert log.verify("globex") == VerifyReport(True, 3, ("globex",), None)
    report = log.verify()
    assert_break(report, "acme", 1, "record 1 is missing")
    assert report.as_dict()["first_break"] == {
        "tenant": "acme",
        "position": 1,
        "row_id": None,
        "problem": "record 1 is missing (deleted?)",
    }


def test_unreadable_payload_makes_reads_fail_loudly(tampered: AuditLog) -> None:
    log = tampered
    with attacker(log) as conn:
        sql(
            conn,
            "UPDATE audit_records SET payload = 'not json' WHERE tenant = 'acme' AND position = 2",
        )

    with pytest.raises(AuditUnavailable, match="record 2 of tenant 'acme'"):
        list(log.records("acme"))
    assert_break(log.verify(), "acme", 2, "hash mismatch")


# -- concurrency -----------------------------------------------------------------------------


def test_fifty_threads_appending_at_once_keep_chains_contiguous(
    log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small statements, so a Postgres group commit is split over several multi-row INSERTs.
    monkeypatch.setattr(audit_module, "_POSTGRES_CHUNK", 3)
    threads_count, per_thread = 50, 8
    start = threading.Barrier(threads_count)
    results: list[AuditRecord] = []
    errors: list[BaseException] = []
    results_lock = threading.Lock()

    def worker(k: int) -> None:
        try:
            start.wait()
            mine = [
                log.append(make_entry(k * per_thread + i, tenant=f"tenant-{k % 3}"))
                for i in range(per_thread)
            ]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            return
        with results_lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(results) == threads_count * per_thread
    assert len({(r.entry.tenant, r.position) for r in results}) == len(results)
    assert_contiguous(results)
    # What each caller was told is exactly what is stored.
    assert sorted(results, key=lambda r: r.row_id) == list(log.records())
    assert log.verify() == VerifyReport(
        True, len(results), ("tenant-0", "tenant-1", "tenant-2"), None
    )


def test_two_logs_on_one_database_interleave_safely(url: str) -> None:
    """Two AuditLog objects stand in for two processes: each has its own connection and its
    own cached heads, which the other keeps making stale."""
    with AuditLog.open(url) as first, AuditLog.open(url) as second:
        for i in range(6):
            writer = first if i % 2 == 0 else second
            writer.append(make_entry(i, tenant="acme"))
            writer.append(make_entry(i, tenant=f"t{i % 2}"))

        start = threading.Barrier(8)
        errors: list[BaseException] = []

        def worker(k: int) -> None:
            start.wait()
            writer = first if k % 2 == 0 else second
            try:
                for i in range(10):
                    # Two tenants per thread, in both orders, so batches lock several heads.
                    writer.append(make_entry(i, tenant="acme"))
                    writer.append(make_entry(i, tenant="t0" if k % 4 < 2 else "t1"))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        records = list(first.records())
        assert_contiguous(records)
        assert [r.position for r in second.records("acme")] == list(range(1, 87))
        assert (
            first.verify() == second.verify() == VerifyReport(True, 172, ("acme", "t0", "t1"), None)
        )


# -- event ids -------------------------------------------------------------------------------


def stored_event_ids(log: AuditLog) -> list[str | None]:
    with log.database.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT event_id FROM audit_records ORDER BY row_id")
        return [event_id for (event_id,) in rows]


def test_reappending_an_event_id_returns_the_stored_record_and_writes_nothing(
    log: AuditLog,
) -> None:
    first = log.append(make_entry(0, event_id="run-1/step-1"))
    assert first.entry.event_id == "run-1/step-1"
    assert first.hash == expected_hash(GENESIS_HASH, first.entry, 1)
    # The same entry again, and one differing in other fields: the stored record wins.
    assert log.append(make_entry(0, event_id="run-1/step-1")) == first
    assert log.append(make_entry(9, event_id="run-1/step-1", reason="retried")) == first
    assert stored_event_ids(log) == ["run-1/step-1"]
    # The chain is unaffected: the next record follows the first.
    second = log.append(make_entry(1))
    assert (second.position, second.prev_hash) == (2, first.hash)
    assert list(log.records()) == [first, second]
    assert log.verify() == VerifyReport(True, 2, ("acme",), None)


def test_an_event_id_is_found_by_a_fresh_log_and_across_tenants(url: str) -> None:
    with AuditLog.open(url) as log:
        first = log.append(make_entry(0, event_id="e-1"))
        log.append(make_entry(1, tenant="globex"))
    with AuditLog.open(url) as reopened:  # nothing cached: the record is built from its row
        assert reopened.append(make_entry(0, event_id="e-1")) == first
        # Event ids are unique across tenants: the stored record is returned as it is.
        assert reopened.append(make_entry(0, tenant="globex", event_id="e-1")) == first
        assert reopened.append(make_entry(2, tenant="globex")).position == 2
        assert reopened.verify() == VerifyReport(True, 3, ("acme", "globex"), None)


def test_entries_without_event_id_hash_as_before_and_store_null(log: AuditLog) -> None:
    plain = [log.append(make_entry(i)) for i in range(3)]  # NULLs may repeat in the index
    tagged = log.append(make_entry(3, event_id="e-3"))
    with log.database.engine.connect() as conn:
        payloads = [p for (p,) in conn.exec_driver_sql("SELECT payload FROM audit_records")]
    assert ["event_id" in json.loads(p) for p in payloads] == [False, False, False, True]
    assert json.loads(payloads[-1])["event_id"] == "e-3"
    assert stored_event_ids(log) == [None, None, None, "e-3"]
    for record in [*plain, tagged]:
        assert record.hash == expected_hash(record.prev_hash, record.entry, record.position)
    assert [r.entry.event_id for r in log.records()] == [None, None, None, "e-3"]
    assert log.verify().ok


def test_many_threads_appending_one_event_id_write_one_record(log: AuditLog) -> None:
    threads_count = 20
    start = threading.Barrier(threads_count)
    results: list[AuditRecord] = []
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            start.wait()
            results.append(log.append(make_entry(k, event_id="the-event")))
            results.append(log.append(make_entry(k)))  # no event id: always written
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    tagged = [r for r in results if r.entry.event_id == "the-event"]
    assert len(tagged) == threads_count
    the_record = tagged[0]
    assert all(r == the_record for r in tagged)
    assert len({r.row_id for r in results}) == threads_count + 1
    assert stored_event_ids(log).count("the-event") == 1
    stored = list(log.records())
    assert the_record in stored
    assert_contiguous(stored)
    assert log.verify() == VerifyReport(True, threads_count + 1, ("acme",), None)


def test_duplicates_within_one_batch_and_in_the_database_write_nothing(log: AuditLog) -> None:
    """One group commit holding an event id already stored, and one several times over."""
    old = log.append(make_entry(0, event_id="old"))
    waiting = 12
    results: dict[int, AuditRecord] = {}
    errors: list[BaseException] = []

    def worker(k: int, entry: AuditEntry) -> None:
        try:
            results[k] = log.append(entry)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def event_of(k: int) -> str | None:
        return ["new", "old", None][k % 3]

    # Hold the write connection: the first appender leads a batch of one and waits; every
    # later appender queues behind it, so the next leader writes all of them in one batch.
    with log._db_lock:
        leader = threading.Thread(target=worker, args=(-1, make_entry(1, tenant="globex")))
        leader.start()
        while not log._leading:
            threading.Event().wait(0.001)
        threads = [
            threading.Thread(
                target=worker,
                args=(k, make_entry(10 + k, tenant="ab"[k % 2], event_id=event_of(k))),
            )
            for k in range(waiting)
        ]
        for thread in threads:
            thread.start()
        while len(log._pending) < waiting:
            threading.Event().wait(0.001)
    leader.join()
    for thread in threads:
        thread.join()

    assert errors == []
    assert all(results[k] == old for k in range(waiting) if event_of(k) == "old")
    new = [results[k] for k in range(waiting) if event_of(k) == "new"]
    assert all(r == new[0] for r in new)
    assert new[0].entry == make_entry(10, tenant="a", event_id="new")  # the first one queued
    plain = [results[k] for k in range(waiting) if event_of(k) is None]
    assert len({r.row_id for r in plain}) == len(plain) == waiting // 3
    assert sorted(stored_event_ids(log), key=str) == sorted(
        ["old", None, "new", *[None] * len(plain)], key=str
    )
    assert_contiguous(list(log.records()))
    assert log.verify().ok


def test_an_event_id_recorded_by_another_log_after_the_lookup_is_resolved(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other log commits between our lookup and our insert: the unique index refuses our
    record, the batch is retried and returns the other log's record."""
    with AuditLog.open(url) as first, AuditLog.open(url) as second:
        second.append(make_entry(0))  # cache a head, so the retry reads it afresh
        winner = first.append(make_entry(1, event_id="raced"))
        real_find = second._find_events
        lookups: list[list[str]] = []

        def find_too_early(event_ids: list[str]) -> dict[str, Any]:
            lookups.append(event_ids)
            return {} if len(lookups) == 1 else real_find(event_ids)

        monkeypatch.setattr(second, "_find_events", find_too_early)
        assert second.append(make_entry(1, event_id="raced")) == winner
        assert lookups == [["raced"], ["raced"]]
        assert stored_event_ids(first) == [None, "raced"]
        assert second.append(make_entry(2)).position == 3
        assert first.verify() == VerifyReport(True, 3, ("acme",), None)


def test_two_logs_racing_the_same_event_ids_write_each_once(url: str) -> None:
    with AuditLog.open(url) as first, AuditLog.open(url) as second:
        threads_count, events = 8, 10
        start = threading.Barrier(threads_count)
        results: list[AuditRecord] = []
        errors: list[BaseException] = []

        def worker(k: int) -> None:
            writer = first if k % 2 == 0 else second
            try:
                start.wait()
                for i in range(events):
                    results.append(
                        writer.append(make_entry(i, tenant=f"t{i % 2}", event_id=f"e-{i}"))
                    )
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        assert len(results) == threads_count * events
        by_event = {r.entry.event_id: r for r in results}
        assert len({(r.entry.event_id, r.row_id, r.hash) for r in results}) == events
        assert sorted(stored_event_ids(first), key=str) == sorted(by_event, key=str)
        assert sorted(first.records(), key=lambda r: r.row_id) == sorted(
            by_event.values(), key=lambda r: r.row_id
        )
        assert first.verify() == second.verify() == VerifyReport(True, events, ("t0", "t1"), None)


@pytest.mark.parametrize(
    ("position", "value"),
    [(2, "forged"), (2, None), (1, "planted")],  # changed, removed, added where there was none
)
def test_event_id_column_edit_is_caught(log: AuditLog, position: int, value: str | None) -> None:
    log.append(make_entry(0))
    log.append(make_entry(1, event_id="e-1"))
    log.append(make_entry(2, event_id="e-2"))
    with attacker(log) as conn:
        sql(
            conn,
            "UPDATE audit_records SET event_id = :value WHERE position = :position",
            value=value,
            position=position,
        )
    assert_break(log.verify(), "acme", position, "column 'event_id'")


def test_a_sealed_null_event_id_is_not_a_sealed_entry(log: AuditLog) -> None:
    """A null event id is never sealed (it is left out), so one that appears was forged."""
    log.append(make_entry(0))
    record = log.append(make_entry(1))
    reseal(log, record, event_id=None)
    assert_break(log.verify(), "acme", 2, "payload is not a sealed audit entry")


# -- failures --------------------------------------------------------------------------------


def test_failed_transaction_keeps_nothing_and_raises(log: AuditLog) -> None:
    log.append(make_entry(0))
    dbapi_error = log.database.engine.dialect.dbapi.Error  # type: ignore[union-attr]
    # The head upsert succeeds, then the records insert fails: all must be rolled back.
    with failing_trigger(log, "audit_records", "INSERT"):
        with pytest.raises(AuditUnavailable, match="disk on fire") as caught:
            log.append(make_entry(1))
        assert isinstance(caught.value.__cause__, dbapi_error)
        assert count(log, "audit_records") == 1
        with log.database.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT position FROM audit_heads").scalar_one() == 1

    assert log.append(make_entry(2)).position == 2
    assert log.verify().ok


def test_failed_group_commit_fails_every_caller(log: AuditLog) -> None:
    with failing_trigger(log, "audit_records", "INSERT"):
        start = threading.Barrier(10)
        outcomes: list[BaseException | AuditRecord] = []

        def worker(i: int) -> None:
            start.wait()
            try:
                outcomes.append(log.append(make_entry(i, tenant=f"t{i % 3}")))
            except AuditUnavailable as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(outcomes) == 10
        assert all(isinstance(o, AuditUnavailable) for o in outcomes)
        assert count(log, "audit_heads") == 0
    assert log.append(make_entry(0)).position == 1


def test_lost_connection_fails_one_batch_then_reconnects(pg_url: str) -> None:
    database = Database(pg_url)
    upgrade(database)  # Postgres is upgraded on purpose
    with AuditLog(database) as log:
        _lose_connection_and_recover(log)
    database.dispose()


def _lose_connection_and_recover(log: AuditLog) -> None:
    log.append(make_entry(0))
    with log.database.engine.connect() as admin:
        admin.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(AuditUnavailable, match="could not write"):
        log.append(make_entry(1))
    assert log.append(make_entry(2)).position == 2
    assert log.verify().ok


def test_unreachable_database_is_unavailable_and_hides_the_password(
    db_url: str, tmp_path: Path
) -> None:
    if db_url.startswith("sqlite"):
        bad = f"sqlite:///{tmp_path}"  # a directory
    else:
        bad = make_url(db_url).set(port=1, password="s3cret").render_as_string(False)
    with pytest.raises(AuditUnavailable, match="cannot open the audit log") as caught:
        AuditLog.open(bad)
    assert isinstance(caught.value, UserError)
    assert caught.value.code == "audit_unavailable"
    assert "s3cret" not in str(caught.value)
    database = Database(bad)
    try:
        with pytest.raises(AuditUnavailable, match="cannot open the audit log"):
            AuditLog(database)
    finally:
        database.dispose()


def test_schema_is_created_on_sqlite_but_must_be_upgraded_on_postgres(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        with AuditLog.open(db_url) as log:
            assert log.append(make_entry(0)).position == 1
    else:
        with pytest.raises(AuditUnavailable, match="charter db upgrade"):
            AuditLog.open(db_url)


def test_unknown_schema_revision_is_refused(log: AuditLog, url: str) -> None:
    with log.database.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00d'")
    with pytest.raises(AuditUnavailable, match="f00d"):
        AuditLog.open(url)


def test_malformed_url_is_unavailable() -> None:
    with pytest.raises(AuditUnavailable, match="not a URL"):
        AuditLog.open("not a url at all")
    with pytest.raises(AuditUnavailable, match="supports sqlite and postgresql"):
        AuditLog.open("mysql://root:pw@localhost/charter")


def test_sqlite_parent_that_is_a_file_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(AuditUnavailable, match="writable"):
        AuditLog.open(f"sqlite:///{blocker / 'audit.db'}")


def test_sqlite_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(AuditUnavailable, match="cannot open"):
        AuditLog.open(f"sqlite:///{path}")


def test_closed_log_refuses_everything(url: str) -> None:
    log = AuditLog.open(url)
    log.close()
    log.close()  # idempotent
    with pytest.raises(AuditUnavailable, match="closed"):
        log.append(make_entry(0))
    with pytest.raises(AuditUnavailable, match="closed"):
        log.tail()
    with pytest.raises(AuditUnavailable, match="closed"):
        list(log.records())
    with pytest.raises(AuditUnavailable, match="closed"):
        log.verify()


def test_verify_of_dropped_tables_is_unavailable_not_empty(log: AuditLog) -> None:
    log.append(make_entry(0))
    with log.database.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE audit_records")
        conn.exec_driver_sql("DROP TABLE audit_heads")
    with pytest.raises(AuditUnavailable, match="could not read the audit log"):
        log.verify()
    with pytest.raises(AuditUnavailable, match="could not read the audit log"):
        log.tail()


# -- bad entries -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"at": datetime(2025, 3, 1, 12, 0)}, ValueError, "timezone-aware"),
        ({"at": "2025-03-01T12:00:00Z"}, TypeError, "at must be a datetime"),
        ({"kind": "tool_called"}, ValueError, "kind must be one of"),
        ({"tenant": ""}, ValueError, "tenant must not be empty"),
        ({"user": None}, TypeError, "user must be a str"),
        ({"reason": 7}, TypeError, "reason must be a str"),
        ({"tool": 7}, TypeError, "tool must be a str or None"),
        ({"roles": ["support"]}, TypeError, "roles must be a tuple of str"),
        ({"roles": ("support", 1)}, TypeError, "roles must be a tuple of str"),
        ({"arguments": [1, 2]}, TypeError, "arguments must be a dict or None"),
        ({"event_id": 7}, TypeError, "event_id must be a str or None"),
    ],
)
def test_malformed_entries_are_rejected_on_construction(
    overrides: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make_entry(0, **overrides)


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"amount": float("nan")}, "NaN"),
        ({"note": "half a surrogate \ud800"}, "surrogate"),
        ({"ids": {1, 2}}, "not JSON-serializable"),
        ({"when": datetime(2025, 1, 1, tzinfo=UTC)}, "not JSON-serializable"),
    ],
)
def test_unserializable_arguments_fail_alone_and_write_nothing(
    log: AuditLog, arguments: dict[str, Any], match: str
) -> None:
    log.append(make_entry(0))
    with pytest.raises(ValueError, match=match):
        log.append(make_entry(1, arguments=arguments))
    assert log.append(make_entry(2)).position == 2
    assert log.verify() == VerifyReport(True, 2, ("acme",), None)


def test_surrogate_in_a_text_field_is_rejected(log: AuditLog) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        log.append(make_entry(0, reason="\udfff"))
    assert log.tail() == []


@pytest.mark.parametrize(("field", "value"), [("reason", "a\x00b"), ("tenant", "ac\x00me")])
def test_nul_in_a_column_field_is_rejected_on_every_backend(
    log: AuditLog, field: str, value: str
) -> None:
    with pytest.raises(ValueError, match=f"field '{field}' contains a NUL"):
        log.append(make_entry(0, **{field: value}))
    assert log.tail() == []


def test_nul_inside_arguments_round_trips(log: AuditLog) -> None:
    entry = make_entry(0, arguments={"note": "a\x00b"})
    log.append(entry)
    assert [r.entry for r in log.records()] == [entry]
    assert log.verify().ok


def test_records_with_none_and_empty_optional_fields_round_trip(log: AuditLog) -> None:
    entry = make_entry(
        0,
        kind="run_started",
        tool=None,
        arguments=None,
        arguments_sha256=None,
        verdict=None,
        rule_id=None,
        stage=None,
        roles=(),
        reason="",
        approval_request_id=None,
    )
    log.append(entry)
    assert [r.entry for r in log.records()] == [entry]
    assert log.verify().ok


# -- unicode ---------------------------------------------------------------------------------

UNICODE_ARGUMENTS: dict[str, Any] = {
    "note": "refund 💸 for ticket 🎫 #42",
    "hebrew": "החזר כספי ללקוח",
    "arabic": "استرداد المبلغ",
    "mixed": "abc \u202eevil\u202c def",
    "combining": "e\u0301",  # not normalized: e + combining acute, as the caller sent it
    "zwj": "👩‍💻",
    "nested": {"ключ": ["значение", "🙂"]},
}
# The same on every backend: the hash depends on the entry alone, never on the database.
UNICODE_HASH = "c2c82bf080081f23f10a00bccb8589ff4aeeefabf7a56b744ceb631e4db9b6b6"


def test_unicode_round_trips_and_hashes_stably(log: AuditLog) -> None:
    entry = make_entry(0, arguments=UNICODE_ARGUMENTS, reason="מדיניות 🛡️", tool="退款")
    record = log.append(entry)
    (read,) = log.records()
    assert read.entry == entry
    assert read.entry.arguments == UNICODE_ARGUMENTS
    assert read.hash == record.hash == expected_hash(GENESIS_HASH, entry, 1) == UNICODE_HASH
    assert log.verify().ok
    with log.database.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT tool, reason FROM audit_records").one() == (
            "退款",
            "מדיניות 🛡️",
        )


# -- properties ------------------------------------------------------------------------------

TENANTS = st.sampled_from(["acme", "globex", "initech", "ünïcode-🏢"])
TEXT = st.text(
    # Lone surrogates and NUL are refused (tested above); everything else must round trip.
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    max_size=20,
)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | TEXT
# Keys like "position" and "prompt_sha256" nested in arguments must not confuse sealing.
KEYS = TEXT | st.sampled_from(["position", "prompt_sha256", "tenant", "hash"])
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
ENTRY_SPECS = st.lists(
    st.tuples(TENANTS, TEXT, st.dictionaries(KEYS, JSON_VALUES, max_size=4) | st.none()),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=20,  # times two backends; each example is a fresh log
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(specs=ENTRY_SPECS, victim=st.integers(min_value=0), edit_column=st.booleans())
def test_any_log_verifies_and_any_reason_edit_is_caught(
    log: AuditLog,
    specs: list[tuple[str, str, dict[str, Any] | None]],
    victim: int,
    edit_column: bool,
) -> None:
    with attacker(log) as conn:  # start every example from an empty log
        sql(conn, "DELETE FROM audit_records")
        sql(conn, "DELETE FROM audit_heads")
    with AuditLog(log.database) as fresh:
        appended = [
            fresh.append(make_entry(i, tenant=tenant, reason=reason, arguments=arguments))
            for i, (tenant, reason, arguments) in enumerate(specs)
        ]
        for record in appended:
            assert record.hash == expected_hash(record.prev_hash, record.entry, record.position)
        assert_contiguous(appended)
        assert [r.entry for r in fresh.records()] == [r.entry for r in appended]
        report = fresh.verify()
        assert report.ok
        assert report.records_checked == len(specs)
        assert report.tenants == tuple(sorted({tenant for tenant, _, _ in specs}))

        target = appended[victim % len(appended)]
        forged_reason = target.entry.reason + "!"
        with attacker(log) as conn:
            if edit_column:
                sql(
                    conn,
                    "UPDATE audit_records SET reason = :reason WHERE row_id = :r",
                    reason=forged_reason,
                    r=target.row_id,
                )
            else:
                payload = sql(
                    conn, "SELECT payload FROM audit_records WHERE row_id = :r", r=target.row_id
                ).scalar_one()
                data = json.loads(payload)
                data["reason"] = forged_reason
                sql(
                    conn,
                    "UPDATE audit_records SET payload = :p WHERE row_id = :r",
                    p=canonical_json(data),
                    r=target.row_id,
                )

        broken = fresh.verify()
        assert_break(
            broken,
            target.entry.tenant,
            target.position,
            "column 'reason'" if edit_column else "hash mismatch",
        )
        assert broken.first_break is not None
        assert broken.first_break.row_id == target.row_id


def test_entries_are_immutable() -> None:
    entry = make_entry(0)
    with pytest.raises(AttributeError):
        entry.reason = "changed"  # type: ignore[misc]
    assert replace(entry, reason="changed").reason == "changed"
