"""One database handle for SQLite and Postgres alike.

SQLite files are opened in WAL mode with ``synchronous=NORMAL`` (a commit survives a process
crash; the last commits may be lost on power loss) and a busy timeout, so several processes
can share one file. Postgres URLs use psycopg 3. Nothing else differs above this module except
the few statements each dialect spells differently (see ``dialect``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from charter.core.errors import DatabaseUnavailable

__all__ = ["Database", "Dialect", "from_db_time"]

Dialect = Literal["sqlite", "postgresql"]
_BUSY_TIMEOUT_MS = 5000


class Database:
    """A SQLAlchemy engine for Charter's records, with its URL shown without secrets.

    Raises:
        DatabaseUnavailable: the URL is malformed, of an unsupported kind, or unreachable.
    """

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise DatabaseUnavailable(
                f"database URL {redact_url(url)!r} is not a URL; use sqlite:///path/to/file "
                "or postgresql://user@host:5432/dbname"
            ) from exc
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            self.dialect: Dialect = "sqlite"
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(
                parsed.set(drivername="sqlite+pysqlite"),
                connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            )
            event.listen(self.engine, "connect", sqlite_pragmas)
            # pysqlite's own transaction handling defers BEGIN; take control so a write
            # transaction can be started as BEGIN IMMEDIATE where ordering matters.
            event.listen(self.engine, "begin", _sqlite_begin)
        elif backend == "postgresql":
            self.dialect = "postgresql"
            self.engine = create_engine(
                parsed.set(drivername="postgresql+psycopg"), pool_pre_ping=True
            )
        else:
            raise DatabaseUnavailable(
                f"database URL {redact_url(url)!r} is {backend!r}; Charter supports sqlite "
                "and postgresql"
            )
        self.url = url
        self.shown_url = redact_url(url)

    def check(self) -> None:
        """Connect once, so a wrong URL fails here with a clear message."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except (OperationalError, SQLAlchemyError) as exc:
            raise DatabaseUnavailable(
                f"cannot reach the database at {self.shown_url}: {_first_line(exc)}; check "
                "CHARTER_DATABASE_URL and that the server is running"
            ) from None

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.shown_url!r})"


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to print and log."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def from_db_time(value: datetime) -> datetime:
    """A timestamp read back from Charter's tables, as UTC: SQLite hands back naive values
    (everything is written as UTC), Postgres aware ones in the session's time zone."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level: SQLAlchemy's "begin" hook issues BEGIN itself.
    dbapi_connection.isolation_level = None
    sqlite_wal_pragmas(dbapi_connection, _record)


def sqlite_wal_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL, NORMAL sync, a busy timeout and foreign keys, leaving transactions to the driver.

    For engines whose owner relies on the driver's own transaction handling (DBOS's): with
    the driver in autocommit and no "begin" hook, their transactions would silently be
    statement by statement, and a crash between two statements would tear them apart.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def _first_line(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__
