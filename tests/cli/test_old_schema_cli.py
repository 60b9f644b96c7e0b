"""``charter audit verify`` and ``audit tail`` read an archive an older Charter left, and say
so; commands that read tables which changed since refuse it clearly (issue 11, sibling of
defect 9). On SQLite (a ``mode=ro`` URI) and Postgres (a read-only session)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from charter.cli.app import app
from charter.storage import head_revision
from tests.storage.test_old_schema_archive import RECORDS, archive


def _read_only_env(db_url: str) -> dict[str, str]:
    if db_url.startswith("sqlite:///"):
        path = db_url.removeprefix("sqlite:///")
        return {"CHARTER_DATABASE_URL": f"sqlite:///file:{path}?mode=ro&uri=true"}
    return {"CHARTER_DATABASE_URL": db_url}  # reading commands open it read-only


def test_audit_verify_reads_an_archive_at_schema_0005_and_says_so(
    db_url: str, tmp_path: Path
) -> None:
    archive(db_url, tmp_path, "0005")
    env = _read_only_env(db_url)
    result = CliRunner().invoke(app, ["audit", "verify"], env=env)
    assert result.exit_code == 0, result.output
    assert "audit chain intact: 9 records, 2 tenant(s)" in result.stdout
    note = (
        f"note: this copy is at schema 0005, older than this Charter's {head_revision()}; "
        "reading it as it is"
    )
    assert note in " ".join(result.stderr.split())

    result = CliRunner().invoke(app, ["audit", "verify", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["records_checked"] == RECORDS

    result = CliRunner().invoke(app, ["audit", "tail", "-n", "2"], env=env)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2


def test_a_command_reading_tables_that_changed_since_refuses_the_archive_clearly(
    db_url: str, tmp_path: Path
) -> None:
    archive(db_url, tmp_path, "0005")
    result = CliRunner().invoke(app, ["runs", "list"], env=_read_only_env(db_url))
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert f"is at schema 0005 and this Charter needs {head_revision()}" in message
    assert "open read-only, so it is not upgraded" in message
    assert "Traceback" not in result.output
