"""Fixtures shared by the governance tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from charter import Settings
from charter.core.events import EventBus
from charter.governance.service import Governance
from charter.storage import Database, upgrade
from charter.testing.clock import FakeClock
from tests.backends import BACKENDS, database_url


@pytest.fixture(params=BACKENDS)
def gov(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Governance]:
    """Governance on an upgraded database of each backend; what it publishes is collected
    in ``gov.events``."""
    with database_url(request.param, tmp_path) as url:
        settings = Settings(home=tmp_path, secrets_dir=tmp_path / "s", database_url=url)
        database = Database(settings.database)
        upgrade(database)
        bus = EventBus()
        events: list[object] = []
        bus.subscribe(events.append)
        governance = Governance(
            database, FakeClock(datetime(2026, 11, 24, tzinfo=UTC)), bus, settings
        )
        governance.events = events  # type: ignore[attr-defined]
        yield governance
        database.dispose()
