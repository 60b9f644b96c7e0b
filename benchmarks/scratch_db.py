"""A fresh, migrated Postgres database for one benchmark configuration, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from charter.storage import Database, upgrade


@contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str]:
    """Create a database on the server of ``admin_url``, migrate it, yield its URL, drop it."""
    name = f"charter_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(make_url(admin_url).set(drivername="postgresql+psycopg"),
                           isolation_level="AUTOCOMMIT")  # fmt: skip
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        try:
            database = Database(url)
            upgrade(database)
            database.dispose()
            yield url
        finally:
            with engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
