"""Where DBOS keeps its records, and a client for processes that host no runs.

On SQLite DBOS's system database is a file beside Charter's, opened in WAL mode; on Postgres
it is Charter's own database (DBOS keeps its tables in the ``dbos`` schema). Processes that
only enqueue runs or deliver decisions (the CLI) use a ``DBOSClient``: always with the JSON
serializer, because the process that starts a workflow chooses its serializer, and a client
on DBOS's default would make the worker pickle that run end to end (docs/dbos-notes.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy
from dbos import DBOS, DBOSClient, DBOSPortableJSONSerializer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from charter.core.errors import DatabaseUnavailable
from charter.core.settings import Settings
from charter.storage.database import sqlite_wal_pragmas

__all__ = ["APP_NAME", "dbos_client", "dbos_tables_exist", "migrate_dbos", "system_database"]

APP_NAME = "charter"


def system_database(settings: Settings) -> tuple[str, sqlalchemy.Engine | None]:
    """DBOS's system database URL, and for SQLite a WAL-mode engine DBOS should use."""
    url = make_url(settings.database)
    if url.get_backend_name() == "postgresql":
        return url.set(drivername="postgresql+psycopg").render_as_string(False), None
    path = settings.home / "dbos.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    system_url = f"sqlite:///{path}"
    engine = sqlalchemy.create_engine(system_url, connect_args={"timeout": 30})
    sqlalchemy.event.listen(engine, "connect", sqlite_wal_pragmas)
    return system_url, engine


def dbos_tables_exist(settings: Settings) -> bool:
    """Whether DBOS's tables exist: without them no durable run exists to tell anything."""
    url = make_url(settings.database)
    if url.get_backend_name() != "postgresql":
        return (settings.home / "dbos.sqlite3").exists()
    engine = sqlalchemy.create_engine(url.set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as connection:
            found = connection.execute(
                sqlalchemy.text("SELECT to_regclass('dbos.workflow_status')")
            ).scalar()
        return found is not None
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(
            f"cannot reach the database {url.render_as_string(True)}: "
            f"{type(exc).__name__}; is it running?"
        ) from None
    finally:
        engine.dispose()


def migrate_dbos(settings: Settings) -> None:
    """Create or upgrade DBOS's tables (a worker does this when it starts, a client never)."""
    url, engine = system_database(settings)
    if engine is not None:
        # Open it once with our pragmas first, so the file is in WAL mode from the start.
        with engine.connect():
            pass
        engine.dispose()
    try:
        DBOS.migrate(url)
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(
            f"cannot create DBOS's tables: {type(exc).__name__}: {exc}"
        ) from None


@contextmanager
def dbos_client(settings: Settings) -> Iterator[DBOSClient]:
    """A JSON-serializing client on DBOS's system database, closed on exit."""
    url, engine = system_database(settings)
    kwargs: dict[str, Any] = {
        "serializer": DBOSPortableJSONSerializer(),
        "application_name": APP_NAME,
        "retry_connection_errors": False,
    }
    if engine is not None:
        kwargs["system_database_engine"] = engine
    try:
        client = DBOSClient(system_database_url=url, **kwargs)
        try:
            yield client
        finally:
            client.destroy()
    finally:
        if engine is not None:
            engine.dispose()
