"""Governance commands: the reading ones open storage read-only (issue 11, sibling of defect
9), and every person acting says who they are as an operator (``--as`` or
``CHARTER_OPERATOR``), never as the run's user (``CHARTER_USER``).

Read-only storage is made as in ``test_read_only_cli``: a ``mode=ro`` SQLite URI in process,
and a real read-only bind mount in a private mount namespace (root ignores permissions).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charter.cli.app import app
from tests.cli.test_read_only_cli import _digest, _on_read_only_mount, _ro_uri

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_desk"


def _copy_example(target: Path) -> Path:
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return target


def _invoke(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CHARTER_HOME where v1 serves dev and v2 is being rolled out there; the charters'
    directories beside it (``v1``, ``v2``)."""
    root = tmp_path_factory.mktemp("governance")
    home = root / "home"
    env = {"CHARTER_HOME": str(home), "CHARTER_OPERATOR": "alice"}
    v1 = _copy_example(root / "v1")
    v2 = _copy_example(root / "v2")
    prompt = v2 / "prompts" / "support.md"
    prompt.write_text(prompt.read_text(encoding="utf-8") + "\nKeep answers short.\n", "utf-8")
    for args in (
        ("release", "create", str(v1), "-m", "first"),
        ("release", "create", str(v2), "-m", "shorter answers"),
        ("promote", "support-triage@v1", "--to", "dev", "--reason", "try it"),
        ("promote", "support-triage@v2", "--to", "dev", "--reason", "try it too"),
        ("rollout", "start", "support-triage", "v2", "--env", "dev", "--reason", "canary"),
    ):
        code, out, err = _invoke(env, *args)
        assert code == 0, (args, out, err)
    return root


def _readers(root: Path) -> list[list[str]]:
    return [
        ["release", "list"],
        ["release", "show", "support-triage@v1"],
        ["release", "diff", "support-triage@v1", "support-triage@v2"],
        ["changelog"],
        ["rollout", "status", "support-triage", "--env", "dev"],
        ["whatif", str(root / "v2" / "charter.yaml"), "--against", "dev"],
        ["whatif", "support-triage@v2", "--against", "dev"],
        ["autonomy", "report", str(root / "v1" / "charter.yaml")],
    ]


READER_IDS = ["release list", "release show", "release diff", "changelog", "rollout status",
              "whatif file", "whatif release", "autonomy report"]  # fmt: skip


@pytest.fixture
def archive(story: Path, tmp_path: Path) -> Path:
    """A copy of the story's database file alone, in a directory of its own: no materialised
    releases beside it, nothing else."""
    target = tmp_path / "archive"
    target.mkdir()
    shutil.copyfile(story / "home" / "charter.sqlite3", target / "charter.sqlite3")
    return target


@pytest.mark.parametrize("index", range(len(READER_IDS)), ids=READER_IDS)
def test_each_reading_command_works_on_a_read_only_uri_and_writes_nothing(
    story: Path, archive: Path, index: int
) -> None:
    command = _readers(story)[index]
    database = archive / "charter.sqlite3"
    before = _digest(database)
    env = {"CHARTER_HOME": str(archive), **_ro_uri(database)}
    code, out, err = _invoke(env, *command, "--json")
    assert code == 0, out + err
    json.loads(out)
    assert _digest(database) == before
    # Nothing of Charter's is written beside it (a WAL reader's -shm and -wal are SQLite's).
    written = {p.name for p in archive.iterdir()} - {"charter.sqlite3-shm", "charter.sqlite3-wal"}
    assert written == {"charter.sqlite3"}


@pytest.mark.parametrize("index", range(len(READER_IDS)), ids=READER_IDS)
def test_each_reading_command_works_on_a_read_only_mount(
    story: Path, archive: Path, index: int
) -> None:
    command = _readers(story)[index]
    before = _digest(archive / "charter.sqlite3")
    done = _on_read_only_mount(archive, *command, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    json.loads(done.stdout)
    assert _digest(archive / "charter.sqlite3") == before
    assert sorted(p.name for p in archive.iterdir()) == ["charter.sqlite3"]


def test_reading_commands_read_what_the_writers_wrote(story: Path, archive: Path) -> None:
    env = {"CHARTER_HOME": str(archive), **_ro_uri(archive / "charter.sqlite3")}
    _, out, _ = _invoke(env, "changelog", "--json")
    assert [e["action"] for e in json.loads(out)] == [
        "release_created", "release_created", "promoted", "promoted", "rollout_started",
    ]  # fmt: skip
    _, out, _ = _invoke(env, "rollout", "status", "support-triage", "--env", "dev", "--json")
    status = json.loads(out)
    assert status["candidate"] is not None
    assert status["guard"] is not None  # judged through the stable release's own files


def test_a_reader_on_a_missing_database_says_so_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "nothing-here"
    code, out, _ = _invoke({"CHARTER_HOME": str(home)}, "release", "list", "--json")
    assert code == 2
    assert "no Charter database" in json.loads(out)["error"]
    assert not home.exists()


def test_a_writing_command_on_a_read_only_mount_says_the_storage_is_read_only(
    story: Path, archive: Path
) -> None:
    done = _on_read_only_mount(
        archive, "release", "create", str(story / "v1"), "--as", "alice", "-m", "again"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


# -- who acts: CHARTER_OPERATOR, never CHARTER_USER -------------------------------------------


@pytest.fixture
def fresh(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    return {"CHARTER_HOME": str(home)}


def test_the_run_user_never_becomes_a_release_author(fresh: dict[str, str], tmp_path: Path) -> None:
    v1 = _copy_example(tmp_path / "v1")
    env = {**fresh, "CHARTER_USER": "mallory"}
    code, out, err = _invoke(env, "release", "create", str(v1), "-m", "first", "--json")
    assert code == 2, out + err  # who releases? not the user runs act for
    assert "mallory" not in out
    code, out, err = _invoke(
        {**env, "CHARTER_OPERATOR": "alice"}, "release", "create", str(v1), "-m", "first", "--json"
    )
    assert code == 0, out + err
    assert json.loads(out)["author"] == "alice"


def test_the_run_user_never_becomes_the_promoter(fresh: dict[str, str], tmp_path: Path) -> None:
    v1 = _copy_example(tmp_path / "v1")
    code, out, err = _invoke(
        {**fresh, "CHARTER_OPERATOR": "alice"}, "release", "create", str(v1), "-m", "first"
    )
    assert code == 0, out + err
    # The shell of a run acting for bob: CHARTER_USER=bob must not promote as bob.
    env = {**fresh, "CHARTER_USER": "bob"}
    code, out, err = _invoke(env, "promote", "support-triage@v1", "--to", "dev", "--json")
    assert code == 2, out + err
    code, out, _ = _invoke(env, "changelog", "--json")
    assert [e["action"] for e in json.loads(out)] == ["release_created"]
    # The operator is who promotes.
    code, out, err = _invoke(
        {**env, "CHARTER_OPERATOR": "carol"}, "promote", "support-triage@v1", "--to", "dev",
        "--json",
    )  # fmt: skip
    assert code == 0, out + err
    assert json.loads(out)["promoted_by"] == "carol"


@pytest.mark.parametrize(
    "args",
    [
        ["rollout", "set", "support-triage", "v1=100", "--env", "dev", "--reason", "r"],
        ["rollout", "start", "support-triage", "v1", "--env", "dev", "--reason", "r"],
        ["rollout", "advance", "support-triage", "--env", "dev", "--reason", "r"],
        ["rollback", "support-triage", "--env", "dev", "--reason", "r"],
    ],
    ids=["rollout set", "rollout start", "rollout advance", "rollback"],
)
def test_every_governance_as_option_reads_the_operator(
    fresh: dict[str, str], args: list[str]
) -> None:
    env = {**fresh, "CHARTER_USER": "bob"}
    code, out, err = _invoke(env, *args)
    assert code == 2, out + err
    assert "--as" in err  # missing: say who you are
    assert not Path(fresh["CHARTER_HOME"]).exists()  # refused before anything was opened


def test_no_as_option_reads_the_run_users_variable() -> None:
    """Every ``--as`` in the CLI is an operator's: its variable is CHARTER_OPERATOR."""
    import click
    import typer.main

    command = typer.main.get_command(app)
    found: list[str] = []

    def walk(cmd: click.Command, path: str) -> None:
        subcommands = getattr(cmd, "commands", None)
        if subcommands is not None:
            for name, sub in subcommands.items():
                walk(sub, f"{path} {name}")
            return
        for param in cmd.params:
            if "--as" in getattr(param, "opts", ()):
                found.append(f"{path}: {param.envvar}")

    walk(command, "charter")
    assert found, "no --as option found"
    assert [f for f in found if not f.endswith(": CHARTER_OPERATOR")] == []
