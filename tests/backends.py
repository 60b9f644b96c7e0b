"""Real databases for tests: a SQLite file, and a fresh Postgres database per test.

Postgres comes from ``CHARTER_TEST_POSTGRES_URL`` (an admin URL such as
``postgresql://postgres@127.0.0.1:5432/test``). Without it Postgres cases skip with a reason;
with ``CHARTER_REQUIRE_POSTGRES=1`` (as CI sets) a missing server fails instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

BACKENDS = ("sqlite", "postgres")


def postgres_admin_url() -> str | None:
    url = os.environ.get("CHARTER_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("CHARTER_REQUIRE_POSTGRES") == "1":
        pytest.fail("CHARTER_REQUIRE_POSTGRES=1 but CHARTER_TEST_POSTGRES_URL is not set")
    return None


@contextmanager
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database of ``backend``, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'charter.sqlite3'}"
        return
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip("Postgres tests need CHARTER_TEST_POSTGRES_URL (CI sets it)")
    name = f"charter_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(
        make_url(admin).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        engine.dispose()
        if os.environ.get("CHARTER_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"Postgres at {admin} is required but unreachable: {exc.orig}")
        pytest.skip(f"Postgres at {admin} is unreachable")
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
