"""One database handle for SQLite and Postgres alike.

SQLite files are opened in WAL mode with ``synchronous=NORMAL`` (a commit survives a process
crash; the last commits may be lost on power loss) and a busy timeout, so several processes
can share one file. Postgres URLs use psycopg 3. Nothing else differs above this module except
the few statements each dialect spells differently (see ``dialect``).

A handle opened ``read_only`` never writes: SQLite files are opened ``mode=ro`` (or
``immutable=1`` on storage that cannot take a reader's ``-shm`` file, see ``sqlite_file``)
with ``query_only`` on, and no directory is created; every Postgres transaction is
``READ ONLY``. Schemas are never upgraded through it (``migrate.ensure_schema``). Reading
commands (audit verify and tail, runs and approvals list/show, cost, SLO reports, metrics,
releases, the changelog, rollout status, what-if, the autonomy report) use one, so they work
on a read-only mount, an archived copy, a standby server or a role granted only SELECT.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from charter.core.errors import DatabaseUnavailable, first_line
from charter.storage.sqlite_file import SqliteFile

__all__ = ["Database", "Dialect", "from_db_time"]

Dialect = Literal["sqlite", "postgresql"]
_BUSY_TIMEOUT_MS = 5000


class Database:
    """A SQLAlchemy engine for Charter's records, with its URL shown without secrets.

    Args:
        url: A ``sqlite://`` or ``postgresql://`` URL.
        read_only: Never write: no file or directory is created, no pragma or schema change
            is made, Postgres transactions are read-only. A SQLite URI with ``mode=ro`` or
            ``immutable=1`` is read-only whatever this says.

    Attributes:
        read_only: Whether this handle never writes.
        sqlite_file: Where a SQLite URL points (None on Postgres).
        notes: What a read-only reader of this storage does not see (e.g. an unreadable
            ``-wal`` file beside an immutable SQLite copy); empty as a rule.

    Raises:
        DatabaseUnavailable: the URL is malformed, of an unsupported kind, or unreachable;
            read-only: the SQLite file does not exist or cannot be read.
    """

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise DatabaseUnavailable(
                f"database URL {redact_url(url)!r} is not a URL; use sqlite:///path/to/file "
                "or postgresql://user@host:5432/dbname"
            ) from exc
        self.url = url
        self.shown_url = redact_url(url)
        self.sqlite_file: SqliteFile | None = None
        self.notes: tuple[str, ...] = ()
        self._sqlite_mode: str | None = None  # how a read-only handle opened its file
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            self.dialect: Dialect = "sqlite"
            target = SqliteFile.of(parsed)
            self.sqlite_file = target
            self.read_only = read_only or target.asks_read_only
            timeout = _BUSY_TIMEOUT_MS / 1000
            if self.read_only:
                connect, self._sqlite_mode = target.read_only_connector(timeout)
                self.notes = target.notes(self._sqlite_mode)
                self.engine = create_engine("sqlite+pysqlite://", creator=connect)
                event.listen(self.engine, "connect", _sqlite_read_only_pragmas)
            else:
                if target.path is not None:
                    target.path.parent.mkdir(parents=True, exist_ok=True)
                self.engine = create_engine(
                    parsed.set(drivername="sqlite+pysqlite"),
                    connect_args={"timeout": timeout, "check_same_thread": False},
                )
                event.listen(self.engine, "connect", sqlite_pragmas)
            # pysqlite's own transaction handling defers BEGIN; take control so a write
            # transaction can be started as BEGIN IMMEDIATE where ordering matters.
            event.listen(self.engine, "begin", _sqlite_begin)
        elif backend == "postgresql":
            self.dialect = "postgresql"
            self.read_only = read_only
            connect_args: dict[str, Any] = {}
            if read_only:
                # Every transaction READ ONLY: a write fails instead of happening. Options
                # the URL already carries are kept.
                options = parsed.query.get("options", "")
                connect_args["options"] = f"{options} -c default_transaction_read_only=on"
            self.engine = create_engine(
                parsed.set(drivername="postgresql+psycopg"),
                pool_pre_ping=True,
                connect_args=connect_args,
            )
        else:
            raise DatabaseUnavailable(
                f"database URL {redact_url(url)!r} is {backend!r}; Charter supports sqlite "
                "and postgresql"
            )

    def check(self) -> None:
        """Connect once, so a wrong URL fails here with a clear message."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except (OperationalError, SQLAlchemyError) as exc:
            raise DatabaseUnavailable(self.failure("cannot reach the database", exc)) from None

    def failure(self, what: str, exc: BaseException) -> str:
        """``what`` went wrong at this database, the driver's first line, and what to check.

        A SQLite file on read-only storage opened for writing says so, and that reading
        commands work on it; other SQLite failures name the file; Postgres ones the server.
        """
        message = f"{what} at {self.shown_url}: {first_line(exc)}"
        if self.dialect == "postgresql":
            return f"{message}; check CHARTER_DATABASE_URL and that the server is running"
        reason = None if self.read_only else self.read_only_reason()
        if reason is not None:
            return (
                f"{message}; the database is on read-only storage ({reason}); this command "
                "writes, so it needs a writable copy; reading commands (charter audit verify, "
                "audit tail, runs list/show, approvals list/show, cost, slo report, metrics "
                "show, release list/show/diff, changelog, rollout status, whatif, autonomy "
                "report, db status) work on it as it is"
            )
        return f"{message}; check CHARTER_DATABASE_URL and that the file is a readable SQLite file"

    def read_only_reason(self) -> str | None:
        """Why this storage takes no writes from this process, or None if it does.

        SQLite: the URL asks for a read-only open, the file or its directory is not writable
        (a read-only mount, an archive), asked of the file system. Postgres: the server is a
        standby in recovery, or the role may not insert into the audit log.

        Raises:
            DatabaseUnavailable: Postgres cannot be asked.
        """
        if self.sqlite_file is not None:
            return self.sqlite_file.read_only_reason(self._sqlite_mode)
        try:
            with self.engine.connect() as connection:
                standby, may_insert = connection.execute(text(_POSTGRES_WRITABLE)).one()
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(self.failure("cannot ask the server", exc)) from None
        if standby:
            return "the server is a read-only standby"
        if may_insert is False:
            return "this role may not write to it"
        return None

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


def _sqlite_read_only_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # No journal_mode: setting it writes. query_only makes any write an error, not a change.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA query_only = ON")
    finally:
        cursor.close()


# Whether the server is a standby, and whether this role may insert into the audit log
# (NULL before the schema exists: nothing says it could not).
_POSTGRES_WRITABLE = """
SELECT pg_is_in_recovery(),
       CASE WHEN to_regclass('audit_records') IS NULL THEN NULL
            ELSE has_table_privilege('audit_records', 'INSERT') END
"""


def _sqlite_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")
