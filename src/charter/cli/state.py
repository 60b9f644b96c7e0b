"""Opening Charter's state for a CLI command: the database, and the audit log on a bus.

Commands that change governance state (kill, revive, approval decisions) publish on the bus
this returns, so each change is in the audit log before the command reports success.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from charter.cli.output import fail, stderr
from charter.core.errors import UserError
from charter.core.events import EventBus
from charter.core.settings import Settings
from charter.observability.audit import AuditLog
from charter.observability.audit_recorder import AuditRecorder
from charter.storage import Database

__all__ = ["State", "open_state"]


@dataclass(frozen=True, slots=True)
class State:
    database: Database
    audit: AuditLog
    bus: EventBus


@contextmanager
def open_state(
    as_json: bool, *, must_exist: bool = False, read_only: bool = False
) -> Iterator[State]:
    """The configured database with the audit log subscribed to a fresh bus.

    ``must_exist``: refuse to create an embedded SQLite file. ``read_only``: for commands
    that only read: open the database read-only (nothing is created, upgraded or written,
    so it works on a read-only mount, an archived copy or a SELECT-only role); what such a
    reader cannot see is said on stderr. Errors (bad URL, unreachable, out of date) exit 2
    with the message.
    """
    settings = Settings.from_env()
    try:
        database = Database(settings.database, read_only=read_only)
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    if must_exist and database.dialect == "sqlite" and not _sqlite_file_exists(database):
        database.dispose()
        fail(
            f"no Charter database at {database.shown_url}; run something first, or set "
            "CHARTER_HOME / CHARTER_DATABASE_URL to where Charter keeps its state",
            as_json=as_json,
        )
    try:
        audit = AuditLog(database)
    except UserError as exc:
        database.dispose()
        fail(str(exc), as_json=as_json)
    # After opening the log: it may add one (an archive read at its older schema).
    for note in database.notes:
        stderr.print(f"note: {note}", markup=False, soft_wrap=True)
    bus = EventBus()
    bus.subscribe(AuditRecorder(audit))
    try:
        yield State(database, audit, bus)
    finally:
        audit.close()
        database.dispose()


def _sqlite_file_exists(database: Database) -> bool:
    target = database.sqlite_file
    return target is not None and (target.path is None or target.path.exists())
