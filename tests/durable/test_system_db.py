"""DBOS's SQLite system database: WAL, and transactions that really are transactions."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy

from charter import Settings
from charter.durable import system_database


def test_the_sqlite_system_database_is_in_wal_mode_and_rolls_back(tmp_path: Path) -> None:
    # Found by the crash campaign: with the driver in autocommit, DBOS's two-statement
    # "status SUCCESS + output" transaction was torn by a SIGKILL between the statements.
    url, engine = system_database(Settings(home=tmp_path, secrets_dir=tmp_path / "s"))
    assert engine is not None
    assert url.endswith("dbos.sqlite3")
    try:
        with engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            connection.commit()
        assert mode == "wal"
        with engine.connect() as connection:
            transaction = connection.begin()
            connection.execute(sqlalchemy.text("INSERT INTO t VALUES (1)"))
            connection.execute(sqlalchemy.text("INSERT INTO t VALUES (2)"))
            transaction.rollback()
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    finally:
        engine.dispose()
