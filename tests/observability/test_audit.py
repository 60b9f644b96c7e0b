"""The audit log: round trips, per-tenant chains, tamper detection, concurrency, bad input.

Tampering is done the way an attacker with file access would do it: a raw ``sqlite3``
connection that first drops the append-only triggers. Each tamper test checks that ``verify``
names the right tenant and the *first* bad position, not just that it fails.
"""

from __future__ import annotations

import json
import sqlite3
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

from charter.core.canonical import canonical_json, sha256_hex
from charter.core.errors import AuditUnavailable, UserError
from charter.observability.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditLog,
    AuditRecord,
    ChainBreak,
    VerifyReport,
)

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
    return sha256_hex(prev_hash + "\n" + canonical_json(payload))


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AuditLog]:
    with AuditLog(tmp_path / "audit" / "audit.db") as opened:
        yield opened


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
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection as an attacker would use it: append-only triggers dropped first."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER IF EXISTS audit_records_no_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_records_no_delete")
        yield conn
    finally:
        conn.close()


def row_id_of(conn: sqlite3.Connection, tenant: str, position: int) -> int:
    (row_id,) = conn.execute(
        "SELECT row_id FROM audit_records WHERE tenant = ? AND position = ?", (tenant, position)
    ).fetchone()
    return int(row_id)


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

    conn = sqlite3.connect(log.path)
    try:
        rows = conn.execute(
            "SELECT position, tool, verdict, json_extract(payload, '$.arguments.order_id') "
            "FROM audit_records WHERE tenant = 'acme' AND verdict = 'deny'"
        ).fetchall()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    finally:
        conn.close()
    assert rows == [(2, "refund", "deny", "o-1")]
    assert (version, mode) == (1, "wal")


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


def test_chain_continues_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with AuditLog(path) as first:
        last = first.append(make_entry(0))
    with AuditLog(path) as second:
        record = second.append(make_entry(1))
        assert (record.position, record.prev_hash) == (2, last.hash)
        assert second.verify().ok


# -- tamper detection ------------------------------------------------------------------------


@pytest.fixture
def tampered(tmp_path: Path) -> Iterator[tuple[AuditLog, Path]]:
    """A log with acme records 1..5 and globex records 1..3, interleaved."""
    path = tmp_path / "audit.db"
    with AuditLog(path) as opened:
        fill(opened, {"acme": 5, "globex": 3})
        assert opened.verify().ok
        yield opened, path


def test_triggers_refuse_plain_update_and_delete(tampered: tuple[AuditLog, Path]) -> None:
    _, path = tampered
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit_records SET verdict = 'allow'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit_records")
    finally:
        conn.close()


def test_column_edit_is_caught(tampered: tuple[AuditLog, Path]) -> None:
    log, path = tampered
    with raw(path) as conn:
        conn.execute(
            "UPDATE audit_records SET verdict = 'allow' WHERE tenant = 'acme' AND position = 3"
        )
        row_id = row_id_of(conn, "acme", 3)

    found = assert_break(log.verify(), "acme", 3, "column 'verdict'")
    assert found.row_id == row_id
    # Reading still works: the payload is the source of truth, and it still says deny.
    assert next(r for r in log.records("acme") if r.position == 3).entry.verdict == "deny"


def test_payload_edit_is_caught(tampered: tuple[AuditLog, Path]) -> None:
    log, path = tampered
    with raw(path) as conn:
        conn.execute(
            "UPDATE audit_records SET payload = replace(payload, '\"deny\"', '\"allow\"') "
            "WHERE tenant = 'acme' AND position = 2"
        )

    assert_break(log.verify(), "acme", 2, "hash mismatch")


def test_deleted_middle_record_is_caught(tampered: tuple[AuditLog, Path]) -> None:
    log, path = tampered
    with raw(path) as conn:
        conn.execute("DELETE FROM audit_records WHERE tenant = 'acme' AND position = 3")

    found = assert_break(log.verify(), "acme", 3, "record 3 is missing (deleted?)")
    assert found.row_id is None


def test_deleted_last_record_is_caught_by_the_head(tampered: tuple[AuditLog, Path]) -> None:
    log, path = tampered
    with raw(path) as conn:
        conn.execute("DELETE FROM audit_records WHERE tenant = 'globex' AND position = 3")

    report = log.verify()
    assert_break(report, "globex", 3, "chain head says 3 records but only 2 found (truncated?)")
    assert report.records_checked == 7  # acme's 5 and globex's 2 were all still checked


def test_whole_tenant_deleted_is_caught_by_the_head(tampered: tuple[AuditLog, Path]) -> None:
    log, path = tampered
    with raw(path) as conn:
        conn.execute("DELETE FROM audit_records WHERE tenant = 'globex'")

    report = log.verify()
    assert_break(report, "globex", 1, "only 0 found")
    assert report.tenants == ("acme", "globex")


def test_deleted_head_is_caught(tampered: tuple[AuditLog, Path]) -> None:
    log, path = tampered
    with raw(path) as conn:
        conn.execute("DELETE FROM audit_heads WHERE tenant = 'acme'")

    assert_break(log.verify(), "acme", 5, "chain head is missing")


def test_altered_head_is_caught(tampered: tuple[AuditLog, Path]) -> None:
    log, path = tampered
    with raw(path) as conn:
        conn.execute("UPDATE audit_heads SET hash = ? WHERE tenant = 'acme'", ("f" * 64,))

    assert_break(log.verify(), "acme", 5, "chain head does not match record 5")


def test_head_rolled_back_is_caught(tampered: tuple[AuditLog, Path]) -> None:
    log, path = tampered
    with raw(path) as conn:
        conn.execute("UPDATE audit_heads SET position = 4 WHERE tenant = 'acme'")

    assert_break(log.verify(), "acme", 5, "head rolled back")


def test_swapped_positions_are_caught_as_reordering(tampered: tuple[AuditLog, Path]) -> None:
    log, path = tampered
    with raw(path) as conn:
        two, four = row_id_of(conn, "acme", 2), row_id_of(conn, "acme", 4)
        # UNIQUE(tenant, position) forces a detour through a free position.
        conn.execute("UPDATE audit_records SET position = -1 WHERE row_id = ?", (two,))
        conn.execute("UPDATE audit_records SET position = 2 WHERE row_id = ?", (four,))
        conn.execute("UPDATE audit_records SET position = 4 WHERE row_id = ?", (two,))

    found = assert_break(log.verify(), "acme", 2, "records out of order")
    assert found.row_id == four


def test_swapped_contents_are_caught_as_reordering(tampered: tuple[AuditLog, Path]) -> None:
    """Swap everything but the position columns: each row now claims the other's place."""
    log, path = tampered
    columns = "payload, prev_hash, hash, verdict, reason, run_id, at"
    with raw(path) as conn:
        two, four = row_id_of(conn, "acme", 2), row_id_of(conn, "acme", 4)
        row_two = conn.execute(f"SELECT {columns} FROM audit_records WHERE row_id = ?", (two,))
        values_two = row_two.fetchone()
        row_four = conn.execute(f"SELECT {columns} FROM audit_records WHERE row_id = ?", (four,))
        values_four = row_four.fetchone()
        assignments = ", ".join(f"{c} = ?" for c in columns.split(", "))
        update = f"UPDATE audit_records SET {assignments} WHERE row_id = ?"
        conn.execute(update, (*values_four, two))
        conn.execute(update, (*values_two, four))

    assert_break(log.verify(), "acme", 2, "records out of order")


def test_swapped_row_ids_are_caught(tampered: tuple[AuditLog, Path]) -> None:
    log, path = tampered
    with raw(path) as conn:
        two, three = row_id_of(conn, "acme", 2), row_id_of(conn, "acme", 3)
        conn.execute("UPDATE audit_records SET row_id = -1 WHERE row_id = ?", (two,))
        conn.execute("UPDATE audit_records SET row_id = ? WHERE row_id = ?", (two, three))
        conn.execute("UPDATE audit_records SET row_id = ? WHERE row_id = -1", (three,))

    assert_break(log.verify(), "acme", 3, "row_id goes backwards")


def test_edited_prev_hash_is_caught(tampered: tuple[AuditLog, Path]) -> None:
    log, path = tampered
    with raw(path) as conn:
        conn.execute(
            "UPDATE audit_records SET prev_hash = ? WHERE tenant = 'globex' AND position = 2",
            ("e" * 64,),
        )

    assert_break(log.verify(), "globex", 2, "hash mismatch")


def test_rehashed_record_breaks_the_link_to_the_next(tampered: tuple[AuditLog, Path]) -> None:
    """An attacker who recomputes the edited record's hash is caught at the next record."""
    log, path = tampered
    with raw(path) as conn:
        payload, prev_hash = conn.execute(
            "SELECT payload, prev_hash FROM audit_records WHERE tenant = 'acme' AND position = 3"
        ).fetchone()
        data = json.loads(payload)
        data["reason"] = "nothing to see"
        forged = canonical_json(data)
        conn.execute(
            "UPDATE audit_records SET payload = ?, reason = ?, hash = ? "
            "WHERE tenant = 'acme' AND position = 3",
            (forged, "nothing to see", sha256_hex(f"{prev_hash}\n{forged}")),
        )

    assert_break(log.verify(), "acme", 4, "chain link broken")


def test_non_canonical_payload_is_caught_even_if_rehashed(tampered: tuple[AuditLog, Path]) -> None:
    log, path = tampered
    with raw(path) as conn:
        payload, prev_hash = conn.execute(
            "SELECT payload, prev_hash FROM audit_records WHERE tenant = 'acme' AND position = 5"
        ).fetchone()
        forged = json.dumps(json.loads(payload), indent=1)
        digest = sha256_hex(f"{prev_hash}\n{forged}")
        conn.execute(
            "UPDATE audit_records SET payload = ?, hash = ? WHERE tenant = 'acme' AND position = 5",
            (forged, digest),
        )
        conn.execute("UPDATE audit_heads SET hash = ? WHERE tenant = 'acme'", (digest,))

    assert_break(log.verify(), "acme", 5, "payload is not a sealed audit entry")


def test_record_moved_to_another_tenant_is_caught(tampered: tuple[AuditLog, Path]) -> None:
    log, path = tampered
    with raw(path) as conn:
        # acme's record 4 becomes globex's record 4, which is sealed with position 4 too.
        conn.execute(
            "UPDATE audit_records SET tenant = 'globex' WHERE tenant = 'acme' AND position = 4"
        )
        conn.execute("UPDATE audit_heads SET position = 4 WHERE tenant = 'globex'")

    assert_break(log.verify(), "acme", 4, "record 4 is missing")
    assert_break(log.verify("globex"), "globex", 4, "moved here from tenant 'acme'")


def test_first_break_is_in_the_first_tenant_in_sorted_order(
    tampered: tuple[AuditLog, Path],
) -> None:
    log, path = tampered
    with raw(path) as conn:
        conn.execute("UPDATE audit_records SET reason = 'x' WHERE tenant = 'globex'")
        conn.execute("UPDATE audit_records SET reason = 'x' WHERE tenant = 'acme' AND position > 3")

    assert_break(log.verify(), "acme", 4, "column 'reason'")
    assert_break(log.verify("globex"), "globex", 1, "column 'reason'")


def test_verify_of_one_tenant_ignores_damage_elsewhere(tampered: tuple[AuditLog, Path]) -> None:
    log, path = tampered
    with raw(path) as conn:
        conn.execute("DELETE FROM audit_records WHERE tenant = 'acme' AND position = 1")

    assert log.verify("globex") == VerifyReport(True, 3, ("globex",), None)
    report = log.verify()
    assert_break(report, "acme", 1, "record 1 is missing")
    assert report.as_dict()["first_break"] == {
        "tenant": "acme",
        "position": 1,
        "row_id": None,
        "problem": "record 1 is missing (deleted?)",
    }


def test_unreadable_payload_makes_reads_fail_loudly(tampered: tuple[AuditLog, Path]) -> None:
    log, path = tampered
    with raw(path) as conn:
        conn.execute(
            "UPDATE audit_records SET payload = 'not json' WHERE tenant = 'acme' AND position = 2"
        )

    with pytest.raises(AuditUnavailable, match="record 2 of tenant 'acme'"):
        list(log.records("acme"))
    assert_break(log.verify(), "acme", 2, "hash mismatch")


# -- concurrency -----------------------------------------------------------------------------


def test_fifty_threads_appending_at_once_keep_chains_contiguous(log: AuditLog) -> None:
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


def test_two_logs_on_one_file_interleave_safely(tmp_path: Path) -> None:
    """Two AuditLog objects stand in for two processes: each has its own connection."""
    path = tmp_path / "shared.db"
    with AuditLog(path) as first, AuditLog(path) as second:
        for i in range(6):
            writer = first if i % 2 == 0 else second
            writer.append(make_entry(i, tenant="acme"))
            writer.append(make_entry(i, tenant=f"t{i % 2}"))

        start = threading.Barrier(8)

        def worker(k: int) -> None:
            start.wait()
            writer = first if k % 2 == 0 else second
            for i in range(10):
                writer.append(make_entry(i, tenant="acme"))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        records = list(first.records())
        assert_contiguous(records)
        assert [r.position for r in second.records("acme")] == list(range(1, 87))
        assert (
            first.verify() == second.verify() == VerifyReport(True, 92, ("acme", "t0", "t1"), None)
        )


# -- failures --------------------------------------------------------------------------------


def test_failed_transaction_keeps_nothing_and_raises(log: AuditLog) -> None:
    log.append(make_entry(0))
    conn = sqlite3.connect(log.path, isolation_level=None)
    try:
        # The records insert succeeds, then the head update fails: all must be rolled back.
        conn.execute(
            "CREATE TRIGGER break_heads BEFORE UPDATE ON audit_heads "
            "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
        with pytest.raises(AuditUnavailable, match="disk on fire") as caught:
            log.append(make_entry(1))
        assert isinstance(caught.value.__cause__, sqlite3.Error)
        assert conn.execute("SELECT count(*) FROM audit_records").fetchone() == (1,)
        conn.execute("DROP TRIGGER break_heads")
    finally:
        conn.close()

    assert log.append(make_entry(2)).position == 2
    assert log.verify().ok


def test_failed_group_commit_fails_every_caller(log: AuditLog) -> None:
    conn = sqlite3.connect(log.path, isolation_level=None)
    try:
        conn.execute(
            "CREATE TRIGGER break_inserts BEFORE INSERT ON audit_records "
            "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
        start = threading.Barrier(10)
        outcomes: list[BaseException | AuditRecord] = []

        def worker(i: int) -> None:
            start.wait()
            try:
                outcomes.append(log.append(make_entry(i)))
            except AuditUnavailable as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(outcomes) == 10
        assert all(isinstance(o, AuditUnavailable) for o in outcomes)
        assert conn.execute("SELECT count(*) FROM audit_heads").fetchone() == (0,)
    finally:
        conn.close()


def test_directory_path_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(AuditUnavailable, match="cannot open the audit log") as caught:
        AuditLog(tmp_path)
    assert isinstance(caught.value, UserError)
    assert caught.value.code == "audit_unavailable"


def test_parent_that_is_a_file_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(AuditUnavailable, match="writable"):
        AuditLog(blocker / "audit.db")


def test_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(AuditUnavailable, match="cannot open"):
        AuditLog(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(AuditUnavailable, match="upgrade Charter"):
        AuditLog(path)


def test_closed_log_refuses_everything(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
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


def test_verify_of_deleted_file_is_unavailable_not_empty(log: AuditLog) -> None:
    log.append(make_entry(0))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{log.path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(AuditUnavailable):
        log.verify()


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


def test_unicode_round_trips_and_hashes_stably(tmp_path: Path) -> None:
    entry = make_entry(0, arguments=UNICODE_ARGUMENTS, reason="מדיניות 🛡️", tool="退款")
    hashes = []
    for name in ("one.db", "two.db"):
        with AuditLog(tmp_path / name) as log:
            record = log.append(entry)
            (read,) = log.records()
            assert read.entry == entry
            assert read.entry.arguments == UNICODE_ARGUMENTS
            assert read.hash == record.hash == expected_hash(GENESIS_HASH, entry, 1)
            assert log.verify().ok
            conn = sqlite3.connect(log.path)
            try:
                assert conn.execute("SELECT tool FROM audit_records").fetchone() == ("退款",)
            finally:
                conn.close()
            hashes.append(record.hash)
    assert hashes[0] == hashes[1]


# -- properties ------------------------------------------------------------------------------

TENANTS = st.sampled_from(["acme", "globex", "initech", "ünïcode-🏢"])
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),  # lone surrogates are refused
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


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=ENTRY_SPECS, victim=st.integers(min_value=0), edit_column=st.booleans())
def test_any_log_verifies_and_any_reason_edit_is_caught(
    tmp_path_factory: pytest.TempPathFactory,
    specs: list[tuple[str, str, dict[str, Any] | None]],
    victim: int,
    edit_column: bool,
) -> None:
    path = tmp_path_factory.mktemp("prop") / "audit.db"
    with AuditLog(path) as log:
        appended = [
            log.append(make_entry(i, tenant=tenant, reason=reason, arguments=arguments))
            for i, (tenant, reason, arguments) in enumerate(specs)
        ]
        for record in appended:
            assert record.hash == expected_hash(record.prev_hash, record.entry, record.position)
        assert_contiguous(appended)
        report = log.verify()
        assert report.ok
        assert report.records_checked == len(specs)
        assert report.tenants == tuple(sorted({tenant for tenant, _, _ in specs}))

        target = appended[victim % len(appended)]
        forged_reason = target.entry.reason + "!"
        with raw(path) as conn:
            if edit_column:
                conn.execute(
                    "UPDATE audit_records SET reason = ? WHERE row_id = ?",
                    (forged_reason, target.row_id),
                )
            else:
                (payload,) = conn.execute(
                    "SELECT payload FROM audit_records WHERE row_id = ?", (target.row_id,)
                ).fetchone()
                data = json.loads(payload)
                data["reason"] = forged_reason
                conn.execute(
                    "UPDATE audit_records SET payload = ? WHERE row_id = ?",
                    (canonical_json(data), target.row_id),
                )

        broken = log.verify()
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
