"""Read-only opens: reading and verifying a database without writing a byte of it.

Tests run as root, and root ignores file permissions, so "read-only" is made in ways that
hold for root too: SQLite URIs with ``mode=ro`` / ``immutable=1``, a Postgres role granted
only SELECT, and, in ``tests/cli/test_read_only_cli.py``, a real read-only bind mount.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from charter.core.errors import AuditUnavailable, DatabaseReadOnly, DatabaseUnavailable
from charter.observability.audit import AuditLog
from charter.storage import Database, current_revision, head_revision, upgrade
from charter.storage.migrate import ensure_schema
from tests.observability.test_audit import make_entry
from tests.storage.support import at_revision

RECORDS = 7


def _fill(url: str) -> None:
    database = Database(url)
    upgrade(database)  # Postgres is only upgraded on purpose
    database.dispose()
    with AuditLog.open(url) as log:
        for i in range(RECORDS):
            log.append(make_entry(i))


def _files(path: Path) -> dict[str, str]:
    """Every file of a SQLite database (main, -wal, -shm) with its content's digest."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.parent.iterdir())
        if p.name.startswith(path.name)
    }


def assert_unwritten(path: Path, before: dict[str, str]) -> None:
    """The database file and its companions are as they were. A WAL reader may leave an
    empty ``-wal`` and a ``-shm`` index it needed (SQLite's reader protocol): nothing else."""
    after = _files(path)
    for name, digest in before.items():
        assert after.get(name) == digest, name
    added = set(after) - set(before)
    assert added <= {f"{path.name}-wal", f"{path.name}-shm"}
    if f"{path.name}-wal" in added:
        assert path.with_name(f"{path.name}-wal").stat().st_size == 0


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" else None


def test_a_read_only_log_verifies_and_never_writes(db_url: str) -> None:
    _fill(db_url)
    path = _sqlite_path(db_url)
    before = _files(path) if path else {}
    with AuditLog.open(db_url, read_only=True) as log:
        assert log.database.read_only
        report = log.verify()
        assert report.ok, report
        assert report.records_checked == RECORDS
        assert [r.position for r in log.tail(3)] == [5, 6, 7]
        assert log.count() == RECORDS
        assert log.count("acme") == RECORDS
        assert log.count("nobody") == 0
        with pytest.raises(AuditUnavailable, match="open read-only"):
            log.append(make_entry(99))
        # Below the log, the connection itself refuses to write.
        with (
            pytest.raises(DBAPIError, match=r"read-only|readonly"),
            log.database.engine.begin() as connection,
        ):
            connection.execute(text("DELETE FROM audit_heads"))
    if path:
        assert_unwritten(path, before)
    with AuditLog.open(db_url) as log:
        assert log.verify().records_checked == RECORDS


def test_a_read_only_open_never_upgrades_an_old_schema(db_url: str) -> None:
    at_revision(db_url, "0005")
    database = Database(db_url, read_only=True)
    try:
        with pytest.raises(DatabaseReadOnly) as caught:
            ensure_schema(database)
        message = str(caught.value)
        assert "at schema 0005" in message
        assert f"needs {head_revision()}" in message
        assert "charter db upgrade" in message
        # The audit log names the tables it reads, unchanged since 0003: it reads the copy as
        # it is, and says so (tests/storage/test_old_schema_archive.py), still not upgrading.
        AuditLog(database).close()
        assert any("reading it as it is" in note for note in database.notes)
        assert current_revision(database) == "0005"  # untouched
    finally:
        database.dispose()


def test_a_read_only_open_of_an_empty_database_is_a_clear_error(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        Database(db_url).check()  # creates the (empty) file
    database = Database(db_url, read_only=True)
    try:
        with pytest.raises(DatabaseReadOnly, match="not yet given Charter's schema"):
            ensure_schema(database)
        assert current_revision(database) is None
    finally:
        database.dispose()


@pytest.mark.parametrize("read_only", [False, True])
def test_a_schema_newer_than_this_charter_is_refused_not_upgraded(
    db_url: str, read_only: bool
) -> None:
    database = Database(db_url)
    upgrade(database)
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    database.dispose()
    database = Database(db_url, read_only=read_only)
    try:
        with pytest.raises(DatabaseUnavailable, match="'9999', which this Charter does not know"):
            ensure_schema(database)
        assert current_revision(database) == "9999"
    finally:
        database.dispose()


def test_a_missing_sqlite_file_opened_read_only_is_refused_and_not_created(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nowhere" / "charter.sqlite3"
    with pytest.raises(DatabaseUnavailable, match="no Charter database at"):
        Database(f"sqlite:///{path}", read_only=True)
    assert not path.parent.exists()


@pytest.mark.parametrize("params", ["mode=ro", "immutable=1"])
def test_a_sqlite_uri_that_asks_for_read_only_is_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, params: str
) -> None:
    path = tmp_path / "db" / "charter.sqlite3"
    _fill(f"sqlite:///{path}")
    before = _files(path)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///file:{path}?{params}&uri=true"
    with AuditLog.open(url) as log:  # read-only because the URL says so
        assert log.database.read_only
        assert log.database.read_only_reason() == "the URL opens it read-only"
        assert log.verify().records_checked == RECORDS
        with pytest.raises(AuditUnavailable, match="open read-only"):
            log.append(make_entry(99))
    assert_unwritten(path, before)
    # The URI's path is the file's, not a directory named "file:" under the working one.
    assert not (tmp_path / "file:").exists()


def test_a_writable_sqlite_uri_opens_the_file_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "db" / "charter.sqlite3"
    monkeypatch.chdir(tmp_path)
    with AuditLog.open(f"sqlite:///file:{path}?uri=true") as log:
        log.append(make_entry(0))
    assert path.exists()
    assert not (tmp_path / "file:").exists()


def test_an_immutable_copy_says_what_its_wal_file_holds(tmp_path: Path) -> None:
    path = tmp_path / "charter.sqlite3"
    with AuditLog.open(f"sqlite:///{path}") as log:
        log.append(make_entry(0))
        wal = path.with_name(f"{path.name}-wal")
        assert wal.stat().st_size > 0  # the log is open: its last commit is in the WAL
        database = Database(f"sqlite:///file:{path}?immutable=1&uri=true")
        try:
            (note,) = database.notes
            assert "charter.sqlite3-wal" in note
            assert "not seen" in note
        finally:
            database.dispose()


def test_a_writable_handle_on_writable_storage_has_no_read_only_reason(db_url: str) -> None:
    database = Database(db_url)
    try:
        upgrade(database)
        assert not database.read_only
        assert database.read_only_reason() is None
        assert database.notes == ()
    finally:
        database.dispose()


@pytest.fixture
def select_only_url(pg_url: str) -> Iterator[str]:
    """A URL of ``pg_url``'s database as a role granted only SELECT on its tables."""
    _fill(pg_url)
    role = f"charter_reader_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(pg_url).set(drivername="postgresql+psycopg"))
    with admin.begin() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN"))
        connection.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
    try:
        yield make_url(pg_url).set(username=role).render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role"
                ),
                {"role": role},
            )
            connection.execute(text(f"DROP OWNED BY {role}"))
            connection.execute(text(f"DROP ROLE {role}"))
        admin.dispose()


def test_a_select_only_postgres_role_verifies_and_is_told_it_is_read_only(
    select_only_url: str,
) -> None:
    with AuditLog.open(select_only_url, read_only=True) as log:
        assert log.database.read_only_reason() == "this role may not write to it"
        report = log.verify()
        assert report.ok
        assert report.records_checked == RECORDS
    # The same role opened for writing is refused when it writes, not before it reads.
    with (
        AuditLog.open(select_only_url) as log,
        pytest.raises(AuditUnavailable, match="could not write"),
    ):
        log.append(make_entry(99))


def test_a_file_that_is_not_sqlite_opened_read_only_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "charter.sqlite3"
    path.write_bytes(b"not a database, just bytes " * 100)
    before = _files(path)
    with pytest.raises(DatabaseUnavailable, match="cannot read the SQLite file"):
        Database(f"sqlite:///{path}", read_only=True)
    assert _files(path) == before


def test_a_sqlite_uri_naming_another_host_is_refused() -> None:
    with pytest.raises(DatabaseUnavailable, match="names another host"):
        Database("sqlite:///file://fileserver/var/charter.sqlite3?mode=ro&uri=true")


def test_an_in_memory_database_cannot_be_opened_read_only() -> None:
    with pytest.raises(DatabaseUnavailable, match="in-memory SQLite database"):
        Database("sqlite://", read_only=True)
