"""Reading commands on a read-only copy of the database: they read, say so, and write nothing.

Tests run as root, which ignores file permissions, so read-only storage is made two ways
that hold for root: a SQLite URI with ``mode=ro`` (in process), and a real read-only bind
mount inside a private mount namespace (``unshare``; the command runs in a subprocess
there). The second is the operator's case: an archive on a read-only mount, a WAL-mode file
copied without its ``-wal``/``-shm``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from charter_examples.support_desk.demo import CHARTER_PATH
from typer.testing import CliRunner

from charter.cli.app import app
from charter.observability.audit import AuditLog
from tests.observability.test_audit import make_entry

CLI = [sys.executable, "-c", "from charter.cli.app import main; main()"]
# Each reading command, and the exit codes that are answers (slo report: 1 is "breached").
READERS = [
    (["audit", "verify"], {0}),
    (["audit", "tail"], {0}),
    (["cost"], {0}),
    (["slo", "report", str(CHARTER_PATH)], {0, 1}),
    (["metrics", "show"], {0}),
    (["db", "status"], {0}),
]


def _ids(readers: list[tuple[list[str], set[int]]]) -> list[str]:
    return [" ".join(command[:2]) for command, _ in readers]


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CHARTER_HOME after ``charter demo``: runs, costs, audit records."""
    home = tmp_path_factory.mktemp("demo") / "home"
    result = CliRunner().invoke(app, ["demo", "--json"], env={"CHARTER_HOME": str(home)})
    assert result.exit_code == 0, result.output
    return home


@pytest.fixture
def copy(demo_home: Path, tmp_path: Path) -> Path:
    """A copy of the demo's database file alone (WAL mode, without -wal or -shm)."""
    target = tmp_path / "archive" / "charter.sqlite3"
    target.parent.mkdir()
    shutil.copyfile(demo_home / "charter.sqlite3", target)
    return target


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ro_uri(path: Path) -> dict[str, str]:
    return {"CHARTER_DATABASE_URL": f"sqlite:///file:{path}?mode=ro&uri=true"}


def test_verify_reads_a_read_only_uri_and_says_so(copy: Path) -> None:
    before = _digest(copy)
    result = CliRunner().invoke(app, ["audit", "verify"], env=_ro_uri(copy))
    assert result.exit_code == 0, result.output
    assert "read-only copy: verifying without writing (the URL opens it read-only)" in (
        result.stdout
    )
    assert "audit chain intact" in result.stdout
    assert _digest(copy) == before
    result = CliRunner().invoke(app, ["audit", "verify", "--json"], env=_ro_uri(copy))
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["storage_read_only"] is True
    assert data["records_checked"] > 0


def test_verify_on_writable_storage_says_nothing_about_read_only(copy: Path) -> None:
    result = CliRunner().invoke(
        app, ["audit", "verify", "--json"], env={"CHARTER_DATABASE_URL": f"sqlite:///{copy}"}
    )
    data = json.loads(result.stdout)
    assert (data["ok"], data["storage_read_only"], data["storage_note"]) == (True, False, None)


@pytest.mark.parametrize(("command", "answers"), READERS, ids=_ids(READERS))
def test_every_reading_command_works_on_a_read_only_uri(
    copy: Path, command: list[str], answers: set[int]
) -> None:
    before = _digest(copy)
    result = CliRunner().invoke(app, command, env=_ro_uri(copy))
    assert result.exit_code in answers, result.output
    assert "Traceback" not in result.output
    assert _digest(copy) == before


def test_upgrade_through_a_read_only_uri_is_a_clear_error(copy: Path) -> None:
    result = CliRunner().invoke(app, ["db", "upgrade"], env=_ro_uri(copy))
    assert result.exit_code == 2
    assert "open read-only, so its schema cannot be upgraded" in result.stderr
    assert "server" not in result.stderr


def test_tail_says_how_many_older_records_it_left_out(copy: Path) -> None:
    env = _ro_uri(copy)
    with AuditLog.open(env["CHARTER_DATABASE_URL"]) as log:
        total = log.count()
    result = CliRunner().invoke(app, ["audit", "tail", "-n", "3"], env=env)
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 3  # stdout stays one line per record
    assert (
        f"{total - 3} older records not shown (the latest 3 of {total}); use -n {total} to "
        "list them all"
    ) in " ".join(result.stderr.split())
    result = CliRunner().invoke(app, ["audit", "tail", "-n", str(total)], env=env)
    assert "not shown" not in result.stderr


def _unshare() -> list[str]:
    command = ["unshare", "--mount", "--map-root-user"]
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare to make a read-only mount")
    probe = subprocess.run([*command, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private mount namespace here: {probe.stderr.decode()}")
    return command


def _on_read_only_mount(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``charter ARGS`` with CHARTER_HOME on ``directory`` bind-mounted read-only."""
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    env = {**os.environ, "CHARTER_HOME": str(directory), "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("CHARTER_DATABASE_URL", None)
    return subprocess.run(
        [*_unshare(), "sh", "-c", script, str(directory), *CLI, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_verify_works_on_a_read_only_mount(copy: Path) -> None:
    before = _digest(copy)
    done = _on_read_only_mount(copy.parent, "audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "read-only copy: verifying without writing" in done.stdout
    assert "(it is on a read-only mount)" in done.stdout
    assert "audit chain intact" in done.stdout
    assert "server" not in done.stdout + done.stderr
    assert _digest(copy) == before
    assert sorted(p.name for p in copy.parent.iterdir()) == ["charter.sqlite3"]


@pytest.mark.parametrize(("command", "answers"), READERS[1:], ids=_ids(READERS[1:]))
def test_every_reading_command_works_on_a_read_only_mount(
    copy: Path, command: list[str], answers: set[int]
) -> None:
    done = _on_read_only_mount(copy.parent, *command)
    assert done.returncode in answers, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_a_writing_command_on_a_read_only_mount_says_the_storage_is_read_only(
    copy: Path,
) -> None:
    done = _on_read_only_mount(copy.parent, "db", "upgrade")
    assert done.returncode == 2
    assert "read-only storage (it is on a read-only mount)" in done.stderr
    assert "charter audit verify" in done.stderr  # what still works
    assert "server is running" not in done.stderr
    assert "Traceback" not in done.stderr


def test_a_copy_with_its_wal_but_no_shm_on_a_read_only_mount_says_what_is_unseen(
    tmp_path: Path,
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    live = tmp_path / "live" / "charter.sqlite3"
    with AuditLog.open(f"sqlite:///{live}") as log:
        for i in range(3):
            log.append(make_entry(i))
        with sqlite3.connect(live) as connection:  # the schema and 3 records into the file
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for i in range(3, 5):
            log.append(make_entry(i))
        # Copied while the log is open: the last 2 commits are in the -wal only.
        for suffix in ("", "-wal"):
            shutil.copyfile(f"{live}{suffix}", archive / f"charter.sqlite3{suffix}")
    done = _on_read_only_mount(archive, "audit", "verify", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "charter.sqlite3-wal beside it holds commits not yet copied" in done.stderr
    report = json.loads(done.stdout)
    assert report["storage_read_only"] is True
    assert report["records_checked"] == 3  # what the file holds, consistent on its own
