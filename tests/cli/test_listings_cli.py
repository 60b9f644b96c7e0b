"""A listing the CLI cuts short says how many it left out and how to see them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from charter.cli.app import app
from charter.cli.governance import _print_whatif
from charter.core.events import EventBus
from charter.governance.changelog import GovernanceLog
from charter.storage import Database, upgrade
from charter.testing import FakeClock

ACTIONS = 7


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("CHARTER_HOME", str(home))
    monkeypatch.delenv("CHARTER_DATABASE_URL", raising=False)
    database = Database(f"sqlite:///{home / 'charter.sqlite3'}")
    try:
        upgrade(database)
        log = GovernanceLog(database, FakeClock(), EventBus())
        with database.engine.begin() as connection:
            for n in range(ACTIONS):
                log.record(
                    connection,
                    charter_name="desk",
                    action="rollback",
                    actor="bob",
                    reason=f"reason {n}",
                    environment="prod",
                )
    finally:
        database.dispose()
    return home


def test_changelog_says_how_many_older_entries_it_left_out(home: Path) -> None:
    result = CliRunner().invoke(app, ["changelog", "-n", "3"])
    assert result.exit_code == 0, result.output
    assert "reason 6" in result.stdout
    assert "reason 3" not in result.stdout
    # On stderr, as every listing says it: stdout stays the listing.
    assert "4 older entries not shown (the latest 3 of 7); use -n 7" in result.stderr


def test_changelog_that_shows_everything_says_nothing_more(home: Path) -> None:
    result = CliRunner().invoke(app, ["changelog", "-n", str(ACTIONS)])
    assert result.exit_code == 0, result.output
    assert "reason 0" in result.stdout
    assert "not shown" not in result.stdout + result.stderr


def _change(n: int) -> dict[str, Any]:
    return {
        "run_id": f"run_{n}",
        "tool": "issue_refund",
        "arguments": {"amount": n},
        "old_verdict": "allow",
        "old_rule": "r",
        "new_verdict": "deny",
        "new_rule": "deny[0]",
        "new_reason": "no",
    }


@pytest.mark.parametrize(("count", "more"), [(12, "... and 7 more"), (5, None), (0, None)])
def test_whatif_says_how_many_changes_its_examples_leave_out(
    capsys: pytest.CaptureFixture[str], count: int, more: str | None
) -> None:
    _print_whatif(
        {
            "calls_replayed": 40,
            "runs_replayed": 10,
            "environment": "prod",
            "charter_name": "desk",
            "candidate_sha256": "ab" * 32,
            "newly_denied": [_change(n) for n in range(count)],
            "newly_approval_required": [],
            "newly_allowed": [],
        }
    )
    out = capsys.readouterr().out
    assert f"newly denied: {count}" in out
    assert out.count("run_") == min(count, 5)
    if more:
        assert f"{more} (use --json to list them)" in out
    else:
        assert "more (use --json" not in out
