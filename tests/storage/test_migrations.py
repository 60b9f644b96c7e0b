"""Migrations create exactly the tables the code describes, on SQLite and Postgres."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, text, update
from sqlalchemy.exc import DBAPIError

from charter.core.errors import DatabaseUnavailable
from charter.storage import Database, current_revision, head_revision, upgrade
from charter.storage.migrate import ensure_schema
from charter.storage.tables import audit_records, metadata


def test_upgrade_creates_the_schema_the_code_describes(db_url: str) -> None:
    database = Database(db_url)
    try:
        assert current_revision(database) is None
        assert upgrade(database) == (None, head_revision())
        assert current_revision(database) == head_revision()
        with database.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        assert differences == []
        assert upgrade(database) == (head_revision(), head_revision())  # idempotent
    finally:
        database.dispose()


def test_audit_records_refuse_update_and_delete(db_url: str) -> None:
    database = Database(db_url)
    try:
        upgrade(database)
        row = {c.name: "x" for c in audit_records.columns if c.name != "row_id"}
        row["position"] = 1
        with database.engine.begin() as connection:
            connection.execute(insert(audit_records).values(**row))
        with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as c:
            c.execute(update(audit_records).values(verdict="allow"))
        with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as c:
            c.execute(text("DELETE FROM audit_records"))
    finally:
        database.dispose()


def test_embedded_sqlite_is_upgraded_on_open_but_postgres_must_be_upgraded_on_purpose(
    db_url: str,
) -> None:
    database = Database(db_url)
    try:
        if database.dialect == "sqlite":
            ensure_schema(database)
            assert current_revision(database) == head_revision()
        else:
            with pytest.raises(DatabaseUnavailable, match="run 'charter db upgrade'"):
                ensure_schema(database)
            assert current_revision(database) is None  # nothing was changed
    finally:
        database.dispose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/x", "Charter supports sqlite and postgresql"),
        ("not a url", "is not a URL"),
    ],
)
def test_unsupported_or_malformed_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(DatabaseUnavailable, match=message):
        Database(url)


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    database = Database("postgresql://charter:s3cret-pw@127.0.0.1:1/nowhere")
    with pytest.raises(DatabaseUnavailable) as caught:
        database.check()
    assert "cannot reach the database" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)
    assert "***" in str(caught.value)


def test_processes_opening_a_new_sqlite_file_at_once_all_succeed(tmp_path: Path) -> None:
    # Several processes starting on one fresh file race to create the schema.
    script = (
        "import sys; from charter.storage import Database; "
        "from charter.storage.migrate import ensure_schema; "
        "d = Database(sys.argv[1]); ensure_schema(d); d.dispose()"
    )
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    processes = [
        subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    errors = [p.communicate(timeout=60)[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, errors
    database = Database(url)
    assert current_revision(database) == head_revision()
    database.dispose()
