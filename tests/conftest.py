"""Fixtures every test folder can use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from charter.storage import Database, upgrade
from tests.backends import BACKENDS, database_url
from tests.skip_summary import pytest_terminal_summary  # noqa: F401  (a hook: one skip line)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL, once for SQLite and once for Postgres."""
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    """A handle on ``db_url``, upgraded to the newest schema (Postgres is never upgraded
    implicitly). A module whose tests want it otherwise defines its own."""
    database = Database(db_url)
    upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """An empty Postgres database URL, for behaviour only a server has (lost connections)."""
    with database_url("postgres", tmp_path) as url:
        yield url
