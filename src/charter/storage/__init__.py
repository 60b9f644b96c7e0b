"""Charter's own records in SQL: the embedded SQLite file by default, Postgres by URL."""

from charter.storage.database import Database
from charter.storage.migrate import current_revision, head_revision, upgrade

__all__ = ["Database", "current_revision", "head_revision", "upgrade"]
