"""Schema migrations (Alembic), run programmatically: ``charter db upgrade``.

Migrations are ordered, forward-only and never edited once they land; a change to the schema
is a new file in ``migrations/versions``. The embedded SQLite default is upgraded on open so
``charter demo`` needs no setup; a shared Postgres database is upgraded only on purpose, by
``charter db upgrade``, and Charter refuses to run against an out-of-date one. A database
opened read-only is never upgraded: one that is behind is refused with what to do instead,
unless the reader names the tables it reads and each of them is as this code reads it
(``READABLE_SINCE``): an archived copy made by an older Charter is then read as it is, with a
note saying so. A database at a migration this code does not know was written by a newer
Charter, and is refused rather than "upgraded" or read.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError

from charter.core.errors import DatabaseReadOnly, DatabaseUnavailable
from charter.storage.database import Database

__all__ = ["READABLE_SINCE", "current_revision", "ensure_schema", "head_revision", "upgrade"]

_SCRIPTS = Path(__file__).with_name("migrations")

#: For each table a read-only reader may name, the oldest revision at which it holds what
#: this code reads, in the shape it reads it: the last migration that added, dropped or
#: renamed one of its columns or changed what its rows mean. A migration that changes a
#: table listed here must move its entry (tests/storage/test_old_schema_archive.py checks
#: the columns). Widening a column's type (0008) does not count: a reader reads the narrower
#: one the same. A table not listed is read only at the newest revision.
READABLE_SINCE: Final = {
    "audit_records": "0003",  # event_id
    "audit_heads": "0001",
}


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
        raise DatabaseUnavailable(database.failure("cannot read the schema version", exc)) from None


def upgrade(database: Database) -> tuple[str | None, str]:
    """Bring the schema to the newest migration; returns (from, to) revisions.

    Raises:
        DatabaseReadOnly: ``database`` is open read-only.
        DatabaseUnavailable: It cannot be reached.
    """
    if database.read_only:
        raise DatabaseReadOnly(
            f"the database at {database.shown_url} is open read-only, so its schema cannot "
            "be upgraded; upgrade a writable copy (a URL without mode=ro or immutable=1)"
        )
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


def ensure_schema(database: Database, *, reads: Collection[str] = ()) -> None:
    """Upgrade an embedded SQLite file; refuse a Postgres database that is behind.

    Args:
        database: the database.
        reads: for a read-only reader, the tables it reads. A read-only database behind
            this code is read as it is when it is at or past ``READABLE_SINCE`` of each of
            them; a note saying so is added to ``database.notes``. Without ``reads`` a
            read-only reader needs the newest schema.

    Raises:
        DatabaseReadOnly: ``database`` is open read-only and its schema is behind what the
            reader needs.
        DatabaseUnavailable: It cannot be read, is a Postgres database that is behind, or
            was written by a newer Charter.
    """
    current = current_revision(database)
    head = head_revision()
    if current == head:
        return
    if current is not None and not _known(current):
        raise DatabaseUnavailable(
            f"the database at {database.shown_url} is at schema {current!r}, which this "
            f"Charter does not know (its newest is {head}): a newer Charter wrote it; use "
            "that version (or a newer one) to read it"
        )
    if database.read_only:
        _read_as_it_is(database, current, head, reads)
        return
    if database.dialect == "sqlite":
        upgrade(database)
        return
    raise DatabaseUnavailable(
        f"the database at {database.shown_url} is at schema {current or 'none'}, this Charter "
        f"needs {head}; run 'charter db upgrade' (with CHARTER_DATABASE_URL set) first"
    )


def _read_as_it_is(
    database: Database, current: str | None, head: str, reads: Collection[str]
) -> None:
    """Accept a read-only ``database`` at ``current`` for a reader of ``reads``, or refuse it.

    Raises:
        DatabaseReadOnly: it is behind what one of the tables needs (or has no schema).
    """
    order = _order()
    needs = {table: READABLE_SINCE.get(table, head) for table in reads}
    blocking = sorted(t for t, n in needs.items() if current is None or order[current] < order[n])
    if reads and not blocking:
        oldest = max(needs.values(), key=order.__getitem__)
        note = (
            f"this copy is at schema {current}, older than this Charter's {head}; reading it "
            f"as it is (what is read here, {', '.join(sorted(reads))}, is unchanged since "
            f"{oldest})"
        )
        if note not in database.notes:
            database.notes = (*database.notes, note)
        return
    have = f"at schema {current}" if current else "not yet given Charter's schema"
    if blocking:
        need = max((needs[t] for t in blocking), key=order.__getitem__)
        wanted = f"reading {', '.join(blocking)} needs {need} or newer"
    else:
        wanted = f"this Charter needs {head}"
    raise DatabaseReadOnly(
        f"the database at {database.shown_url} is {have} and {wanted}, but it is open "
        "read-only, so it is not upgraded: read it with the Charter version that wrote it, "
        "or upgrade a writable copy first (charter db upgrade)"
    )


def _order() -> dict[str, int]:
    """Each known revision's place, oldest first."""
    revisions = list(ScriptDirectory.from_config(_config()).walk_revisions())
    return {script.revision: index for index, script in enumerate(reversed(revisions))}


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except CommandError:
        return False
