"""Schema migrations (Alembic), run programmatically: ``charter db upgrade``.

Migrations are ordered, forward-only and never edited once they land; a change to the schema
is a new file in ``migrations/versions``. The embedded SQLite default is upgraded on open so
``charter demo`` needs no setup; a shared Postgres database is upgraded only on purpose, by
``charter db upgrade``, and Charter refuses to run against an out-of-date one.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError

from charter.core.errors import DatabaseUnavailable
from charter.storage.database import Database

__all__ = ["current_revision", "ensure_schema", "head_revision", "upgrade"]

_SCRIPTS = Path(__file__).with_name("migrations")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def head_revision() -> str:
    """The newest migration this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(database: Database) -> str | None:
    """The migration the database is at (None when it has no Charter schema yet)."""
    try:
        with database.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(
            f"cannot read the schema version of {database.shown_url}: {exc.__class__.__name__}; "
            "check CHARTER_DATABASE_URL and that the server is running"
        ) from None


def upgrade(database: Database) -> tuple[str | None, str]:
    """Bring the schema to the newest migration; returns (from, to) revisions."""
    before = current_revision(database)
    config = _config()
    # SQLite: take the write lock first (BEGIN IMMEDIATE). A deferred transaction that reads
    # the schema version and then writes fails at once, without waiting, when another process
    # migrated in between; an immediate one waits its turn and then finds nothing to do.
    immediate = database.engine.connect().execution_options(sqlite_begin="IMMEDIATE")
    with immediate as connection, connection.begin():
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return before, head_revision()


def ensure_schema(database: Database) -> None:
    """Upgrade an embedded SQLite file; refuse a Postgres database that is behind."""
    current = current_revision(database)
    head = head_revision()
    if current == head:
        return
    if database.dialect == "sqlite":
        upgrade(database)
        return
    raise DatabaseUnavailable(
        f"the database at {database.shown_url} is at schema {current or 'none'}, this Charter "
        f"needs {head}; run 'charter db upgrade' (with CHARTER_DATABASE_URL set) first"
    )
