"""What the storage tests share: handles that are disposed, databases at an older revision."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config

from charter.storage import Database, current_revision, migrate

__all__ = ["at_revision", "database_at", "opened", "upgrade_to"]


def upgrade_to(database: Database, revision: str) -> None:
    """Migrate ``database`` up to ``revision`` and no further."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrate.__file__).with_name("migrations")))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@contextmanager
def opened(url: str, *, read_only: bool = False) -> Iterator[Database]:
    """A handle on ``url``, disposed afterwards."""
    database = Database(url, read_only=read_only)
    try:
        yield database
    finally:
        database.dispose()


def at_revision(url: str, revision: str) -> None:
    """Migrate the empty database at ``url`` up to ``revision`` and no further."""
    with opened(url) as database:
        upgrade_to(database, revision)


@contextmanager
def database_at(url: str, revision: str) -> Iterator[Database]:
    """A handle on the empty database at ``url``, migrated up to ``revision`` (checked)."""
    with opened(url) as database:
        upgrade_to(database, revision)
        assert current_revision(database) == revision
        yield database
