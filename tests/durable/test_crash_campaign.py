"""Issue 3's crash test: >= 100 runs while workers are SIGKILLed at random and restarted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends import database_url
from tests.durable.crash_campaign import campaign


@pytest.mark.slow
def test_100_runs_on_sqlite_survive_a_worker_killed_at_random(tmp_path: Path) -> None:
    report = campaign(tmp_path / "home", runs=105, kills=8, workers=1)
    print(report.as_dict())
    assert report.problems == []
    assert report.kills == 8
    assert sum(report.outcomes.values()) == 105
    assert report.effects.get("refund", 0) > 0
    assert report.effects.get("email", 0) > 0


@pytest.mark.slow
def test_100_runs_on_postgres_shared_by_two_workers_killed_at_random(tmp_path: Path) -> None:
    with database_url("postgres", tmp_path) as url:
        report = campaign(tmp_path / "home", runs=105, kills=8, workers=2, database_url=url)
    print(report.as_dict())
    assert report.problems == []
    assert report.kills == 8
    assert sum(report.outcomes.values()) == 105
