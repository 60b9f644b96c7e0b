"""A launched durable engine on a fresh database: SQLite, then Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from charter import Runtime, Settings
from charter.durable import DurableEngine
from charter.identity.secrets import EnvSecretProvider
from charter.storage import Database
from charter.storage.migrate import upgrade
from tests.durable.support import SECRET


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    database = Database(db_url)
    try:
        upgrade(database)  # Postgres is never migrated behind the operator's back
    finally:
        database.dispose()
    return Settings(home=tmp_path / "home", secrets_dir=tmp_path / "secrets",
                    database_url=db_url)  # fmt: skip


@pytest.fixture
def engine(settings: Settings) -> Iterator[DurableEngine]:
    runtime = Runtime(settings, secret_providers=[EnvSecretProvider(SECRET)])
    durable = DurableEngine(
        runtime, executor_id=f"test-{uuid.uuid4().hex[:8]}", approval_timeout_seconds=30
    )
    durable.launch(reset=settings.database.startswith("sqlite"))
    try:
        yield durable
    finally:
        durable.destroy()
        runtime.close()
