"""``runs list`` and ``approvals list`` say what ``-n`` left out (issue 11, sibling of defect
15), on SQLite and Postgres: on stderr in text (stdout stays one line per row, for grep),
as ``total`` and ``truncated`` in JSON; and both read a read-only copy of the database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charter.cli.app import app
from charter.cli.output import tell_left_out
from charter.core.canonical import canonical_json, sha256_hex
from charter.core.clock import SystemClock
from charter.core.events import EventBus
from charter.execution.approval_store import ApprovalStore
from charter.execution.approvals import ApprovalRequest
from charter.identity.roles import RoleGrants
from charter.storage import Database, upgrade
from tests.cli.test_read_only_cli import _digest, _on_read_only_mount, _ro_uri
from tests.observability.test_cost import add_run

ARGUMENTS = {"amount_usd": "350", "ticket": "T-1001"}
SHA = sha256_hex(canonical_json(ARGUMENTS))
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Home:
    env: dict[str, str]
    database: Database

    def invoke(self, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, list(args), env=self.env)
        return result.exit_code, result.stdout, result.stderr


def _seed(database: Database) -> None:
    """7 runs (5 of acme, 2 of globex) and 7 approval requests (5 of acme, 4 of them
    pending and one of those expired; 2 of globex)."""
    upgrade(database)
    for n in range(7):
        tenant = "acme" if n < 5 else "globex"
        add_run(database, f"run_{n}", tenant=tenant, started=T0 + timedelta(minutes=n))
    clock = SystemClock()
    store = ApprovalStore(database, clock, EventBus(), RoleGrants(database, clock))
    now = clock.now()
    for n in range(7):
        store.request(
            ApprovalRequest(
                id=f"apr_{n}", run_id=f"run_{n}", tenant="acme" if n < 5 else "globex",
                requested_by="carol", tool="issue_refund", arguments=ARGUMENTS,
                arguments_sha256=SHA, reason="amount_usd > 200", rule_id="require_approval_for[0]",
                # apr_0 asked two days ago: past its expiry, it reads as expired.
                requested_at=now - (timedelta(days=2) if n == 0 else timedelta(minutes=10 - n)),
            ),
            charter_name="support-triage",
        )  # fmt: skip


@pytest.fixture
def home(db_url: str, tmp_path: Path) -> Iterator[Home]:
    database = Database(db_url)
    _seed(database)
    env = {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_DATABASE_URL": db_url,
           "COLUMNS": "300"}  # fmt: skip
    try:
        yield Home(env, database)
    finally:
        database.dispose()


# -- runs list ---------------------------------------------------------------------------------


def test_runs_list_says_how_many_older_runs_it_left_out(home: Home) -> None:
    code, out, err = home.invoke("runs", "list", "-n", "3")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["run_6", "run_5", "run_4"]
    assert "4 older runs not shown (the latest 3 of 7); use -n 7 to list them all" in err
    assert "not shown" not in out  # stdout stays the listing


def test_runs_list_json_has_the_total_and_whether_it_was_cut(home: Home) -> None:
    code, out, _ = home.invoke("runs", "list", "-n", "3", "--json")
    data = json.loads(out)
    assert code == 0
    assert [r["run_id"] for r in data["runs"]] == ["run_6", "run_5", "run_4"]
    assert (data["total"], data["truncated"]) == (7, True)


@pytest.mark.parametrize(
    ("args", "listed", "total"),
    [
        (("-n", "7"), 7, 7),
        (("-n", "50"), 7, 7),
        (("--tenant", "globex", "-n", "2"), 2, 2),
        (("--tenant", "nobody"), 0, 0),
    ],
)
def test_runs_list_that_shows_everything_says_nothing_more(
    home: Home, args: tuple[str, ...], listed: int, total: int
) -> None:
    code, out, err = home.invoke("runs", "list", *args)
    assert code == 0, err
    assert "not shown" not in out + err
    code, out, _ = home.invoke("runs", "list", *args, "--json")
    data = json.loads(out)
    assert (len(data["runs"]), data["total"], data["truncated"]) == (listed, total, False)


def test_runs_list_counts_within_its_filters(home: Home) -> None:
    _, out, _ = home.invoke("runs", "list", "--tenant", "acme", "-n", "2", "--json")
    data = json.loads(out)
    assert (len(data["runs"]), data["total"], data["truncated"]) == (2, 5, True)
    _, _, err = home.invoke("runs", "list", "--tenant", "acme", "-n", "2")
    assert "3 older runs not shown (the latest 2 of 5); use -n 5 to list them all" in err
    since = (T0 + timedelta(minutes=4)).isoformat()
    _, out, _ = home.invoke("runs", "list", "--since", since, "-n", "1", "--json")
    data = json.loads(out)
    assert (data["total"], data["truncated"]) == (3, True)


# -- approvals list ----------------------------------------------------------------------------


def test_approvals_list_says_how_many_older_requests_it_left_out(home: Home) -> None:
    code, out, err = home.invoke("approvals", "list", "-n", "2")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["apr_6", "apr_5"]
    assert (
        "5 older approval requests not shown (the latest 2 of 7); use -n 7 to list them all" in err
    )
    assert "not shown" not in out


def test_approvals_list_json_has_the_total_and_whether_it_was_cut(home: Home) -> None:
    code, out, _ = home.invoke("approvals", "list", "-n", "2", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["ok"] is True
    assert [r["id"] for r in data["requests"]] == ["apr_6", "apr_5"]
    assert (data["total"], data["truncated"]) == (7, True)
    code, out, _ = home.invoke("approvals", "list", "--json")
    data = json.loads(out)
    assert (len(data["requests"]), data["total"], data["truncated"]) == (7, 7, False)


def test_approvals_list_counts_as_it_filters_expiry_included(home: Home) -> None:
    # apr_0 is stored pending but past its expiry: it is counted where it is listed.
    code, out, _ = home.invoke(
        "approvals", "list", "--tenant", "acme", "--status", "pending", "-n", "1", "--json"
    )
    data = json.loads(out)
    assert [r["id"] for r in data["requests"]] == ["apr_4"]
    assert (data["total"], data["truncated"]) == (4, True)
    code, out, _ = home.invoke("approvals", "list", "--status", "expired", "--json")
    data = json.loads(out)
    assert ([r["id"] for r in data["requests"]], data["total"]) == (["apr_0"], 1)
    code, out, err = home.invoke("approvals", "list", "--status", "approved")
    assert (code, out.strip(), err) == (0, "no approval requests with status 'approved'", "")


# -- the message, at the edges -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("shown", "total", "most", "said"),
    [
        (3, 3, 10_000, None),
        (0, 0, 10_000, None),
        (3, 2, 10_000, None),  # a row added between the count and the read: nothing left out
        (1, 2, 10_000, "1 older things not shown (the latest 1 of 2); use -n 2 to list them all"),
        (
            10_000,
            25_000,
            10_000,
            "15000 older things not shown (the latest 10000 of 25000); -n lists at most 10000: "
            "narrow the filters to see the rest",
        ),
        (5, 9, None, "4 older things not shown (the latest 5 of 9); use -n 9 to list them all"),
    ],
)
def test_the_left_out_note(
    capsys: pytest.CaptureFixture[str], shown: int, total: int, most: int | None, said: str | None
) -> None:
    tell_left_out(shown, total, "things", most=most)
    captured = capsys.readouterr()
    assert captured.out == ""
    if said is None:
        assert captured.err == ""
    else:
        assert said in " ".join(captured.err.split())


# -- both read a read-only copy ------------------------------------------------------------------


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A directory holding only a SQLite file with the runs and requests above: an archived
    copy (SQLite: Postgres read-only is a READ ONLY transaction, tested in tests/storage)."""
    target = tmp_path / "archive"
    database = Database(f"sqlite:///{target / 'charter.sqlite3'}")
    try:
        _seed(database)
    finally:
        database.dispose()
    for leftover in ("charter.sqlite3-wal", "charter.sqlite3-shm"):
        assert not (target / leftover).exists()
    return target


READERS = [
    ["runs", "list"],
    ["runs", "show", "run_3"],
    ["approvals", "list"],
    ["approvals", "show", "apr_3"],
    ["roles", "list"],
    ["kill", "--list"],
]
READER_IDS = [" ".join(command[:2]) for command in READERS]


@pytest.mark.parametrize("command", READERS, ids=READER_IDS)
def test_the_inbox_and_runs_readers_work_on_a_read_only_uri(
    archive: Path, command: list[str]
) -> None:
    database = archive / "charter.sqlite3"
    before = _digest(database)
    result = CliRunner().invoke(
        app, [*command, "--json"], env={"CHARTER_HOME": str(archive), **_ro_uri(database)}
    )
    assert result.exit_code in (0, 1), result.stdout + result.stderr  # runs show: 1 = failed
    assert json.loads(result.stdout)
    assert _digest(database) == before


@pytest.mark.parametrize("command", READERS, ids=READER_IDS)
def test_the_inbox_and_runs_readers_work_on_a_read_only_mount(
    archive: Path, command: list[str]
) -> None:
    before = _digest(archive / "charter.sqlite3")
    done = _on_read_only_mount(archive, *command, "--json")
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout)
    assert _digest(archive / "charter.sqlite3") == before
    assert sorted(p.name for p in archive.iterdir()) == ["charter.sqlite3"]
