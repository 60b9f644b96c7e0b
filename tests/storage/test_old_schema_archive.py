"""A read-only reader accepts an older schema when what it reads is there and unchanged
(issue 11, sibling of defect 9).

Read-only opens refused any database behind the code ("needs 0008"), yet ``charter audit
verify`` on an archived copy is the very case a read-only open exists for, and the audit
tables have not changed since migration 0003. A reader names the tables it reads
(``ensure_schema(database, reads=...)``); a read-only database at or past the revision those
tables last changed at is read as it is, with a note saying so. Older than that, or newer
than this code, stays refused. Archives are built as an older Charter left them: migrated to
the older revision, holding records this Charter wrote (copied row by row).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import MetaData, Table, insert, select, text

from charter.core.errors import AuditUnavailable, DatabaseReadOnly, DatabaseUnavailable
from charter.observability.audit import AUDIT_TABLES, AuditLog
from charter.storage import Database, current_revision, head_revision, tables
from charter.storage.migrate import READABLE_SINCE, ensure_schema
from tests.backends import database_url
from tests.observability.test_audit import make_entry
from tests.storage.support import at_revision, opened

RECORDS = 9


@contextmanager
def source_of(db_url: str, tmp_path: Path) -> Iterator[str]:
    """Another empty database of ``db_url``'s kind, to write records in at head."""
    kind = "postgres" if db_url.startswith("postgresql") else "sqlite"
    folder = tmp_path / "source"
    folder.mkdir()
    with database_url(kind, folder) as url:
        yield url


def archive(db_url: str, tmp_path: Path, revision: str, records: int = RECORDS) -> None:
    """``db_url`` at ``revision``, holding ``records`` audit records (two tenants)."""
    with source_of(db_url, tmp_path) as source:
        at_revision(source, "head")  # Postgres is only upgraded on purpose
        with AuditLog.open(source) as log:
            for i in range(records):
                log.append(make_entry(i, tenant="acme" if i % 3 else "globex"))
        at_revision(db_url, revision)
        copy_tables(source, db_url, ("audit_records", "audit_heads"))


def copy_tables(source_url: str, target_url: str, tables: tuple[str, ...]) -> None:
    """Copy each table's rows, the columns the target has (an older table has fewer)."""
    source, target = Database(source_url), Database(target_url)
    try:
        for name in tables:
            into = Table(name, MetaData(), autoload_with=target.engine)
            columns = [c.name for c in into.columns]
            with source.engine.connect() as reading:
                origin = Table(name, MetaData(), autoload_with=source.engine)
                rows = [dict(row._mapping) for row in reading.execute(select(origin))]
            with target.engine.begin() as writing:
                writing.execute(insert(into), [{c: row[c] for c in columns} for row in rows])
    finally:
        source.dispose()
        target.dispose()


def test_the_audit_log_reads_an_archive_at_an_older_schema_as_it_is(
    db_url: str, tmp_path: Path
) -> None:
    archive(db_url, tmp_path, "0005")
    with AuditLog.open(db_url, read_only=True) as log:
        report = log.verify()
        assert report.ok, report
        assert report.records_checked == RECORDS
        assert sorted(report.tenants) == ["acme", "globex"]
        assert [r.position for r in log.tail(2, tenant="acme")] == [5, 6]
        assert log.count() == RECORDS
        (note,) = log.database.notes
        assert note.startswith(
            f"this copy is at schema 0005, older than this Charter's "
            f"{head_revision()}; reading it as it is"
        )
        database = log.database
        assert current_revision(database) == "0005"  # never upgraded


def test_the_oldest_schema_the_audit_tables_read_at_is_their_last_change(
    db_url: str, tmp_path: Path
) -> None:
    # 0003 added audit_records.event_id: from there on the log reads as it is.
    assert max(READABLE_SINCE[t] for t in AUDIT_TABLES) == "0003"
    archive(db_url, tmp_path, "0003")
    with AuditLog.open(db_url, read_only=True) as log:
        assert log.verify().records_checked == RECORDS


def test_an_archive_older_than_the_tables_it_reads_is_refused_saying_what_they_need(
    db_url: str, tmp_path: Path
) -> None:
    archive(db_url, tmp_path, "0002")
    with opened(db_url, read_only=True) as database:
        with pytest.raises(DatabaseReadOnly) as caught:
            ensure_schema(database, reads=AUDIT_TABLES)
        message = str(caught.value)
        assert "is at schema 0002" in message
        assert "reading audit_records needs 0003 or newer" in message
        assert "charter db upgrade" in message
        with pytest.raises(AuditUnavailable, match="needs 0003 or newer"):
            AuditLog(database)
        assert current_revision(database) == "0002"


def test_a_reader_that_names_no_tables_still_needs_the_newest_schema(
    db_url: str, tmp_path: Path
) -> None:
    archive(db_url, tmp_path, "0005")
    with opened(db_url, read_only=True) as database:
        with pytest.raises(DatabaseReadOnly, match=f"needs {head_revision()}"):
            ensure_schema(database)
        assert database.notes == ()


def test_a_writable_open_of_an_older_database_is_upgraded_or_refused_as_before(
    db_url: str, tmp_path: Path
) -> None:
    archive(db_url, tmp_path, "0005")
    with opened(db_url) as database:
        if db_url.startswith("sqlite"):
            ensure_schema(database, reads=AUDIT_TABLES)  # the embedded file is upgraded
            assert current_revision(database) == head_revision()
        else:  # a shared Postgres database is upgraded only on purpose
            with pytest.raises(DatabaseUnavailable, match="run 'charter db upgrade'"):
                ensure_schema(database, reads=AUDIT_TABLES)
            assert current_revision(database) == "0005"


def test_an_archive_newer_than_this_charter_stays_refused(db_url: str, tmp_path: Path) -> None:
    archive(db_url, tmp_path, "head")
    with opened(db_url) as writable, writable.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with opened(db_url, read_only=True) as database:
        with pytest.raises(DatabaseUnavailable, match="'9999', which this Charter does not know"):
            ensure_schema(database, reads=AUDIT_TABLES)
        with pytest.raises(AuditUnavailable, match="a newer Charter wrote it"):
            AuditLog(database)


def test_a_table_no_revision_is_declared_for_needs_the_newest_schema(
    db_url: str, tmp_path: Path
) -> None:
    archive(db_url, tmp_path, "0005")
    needs = f"reading runs needs {head_revision()}"
    with opened(db_url, read_only=True) as database, pytest.raises(DatabaseReadOnly, match=needs):
        ensure_schema(database, reads=("audit_records", "runs"))


@pytest.mark.parametrize("table", sorted(READABLE_SINCE))
def test_a_table_has_the_columns_this_code_reads_from_the_revision_declared_for_it(
    tmp_path: Path, table: str
) -> None:
    # A migration that changes a declared table's columns must move its READABLE_SINCE entry:
    # at the declared revision the table already has exactly the columns of storage.tables.
    url = f"sqlite:///{tmp_path / 'shape.sqlite3'}"
    at_revision(url, READABLE_SINCE[table])
    database = Database(url)
    try:
        found = {c.name for c in Table(table, MetaData(), autoload_with=database.engine).columns}
    finally:
        database.dispose()
    assert found == {c.name for c in tables.metadata.tables[table].columns}
