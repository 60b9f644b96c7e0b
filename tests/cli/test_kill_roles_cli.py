"""``charter kill``, ``charter revive`` and ``charter roles``, on SQLite and Postgres."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from charter.cli import kill, roles
from charter.core.events import RunIdentity, RunStarted
from charter.execution.kill_store import KillSwitchStore
from charter.execution.kill_switch import ActiveKill
from charter.observability.runs import RunRecorder
from charter.storage import Database, upgrade
from charter.testing.clock import FakeClock

# The lead wires these into the real app; here they are registered the same way.
app = typer.Typer()
app.command()(kill.kill)
app.command()(kill.revive)
app.add_typer(roles.app, name="roles")

UNREACHABLE = "postgresql://x:s3cret@127.0.0.1:1/none"


def triage_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """The CLI's environment on ``db_url``, where support-triage has run for tenant acme
    (so killing either is not refused as a typo), and nothing else."""
    database = Database(db_url)
    upgrade(database)  # a shared Postgres database is upgraded on purpose, as in production
    identity = RunIdentity("run_1", "support-triage", "c" * 64, "acme", "alice", "", (), "dev",
                           "scripted:m", "p" * 64, "t" * 32)  # fmt: skip
    RunRecorder(database)(RunStarted(identity, datetime(2026, 3, 1, tzinfo=UTC), "i" * 64))
    database.dispose()
    return {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_DATABASE_URL": db_url}


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return triage_env(db_url, tmp_path)


def invoke(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_kill_list_and_revive(env: dict[str, str]) -> None:
    code, out, err = invoke(
        env, "kill", "charter:support-triage", "--reason", "refund loop", "--as", "alice"
    )
    assert code == 0, out + err
    assert "killed charter:support-triage: refund loop (by alice at " in out

    code, out, _ = invoke(env, "kill", "--list")
    assert code == 0
    assert "charter:support-triage: refund loop (by alice" in out

    code, out, _ = invoke(env, "kill", "--list", "--json")
    [active] = json.loads(out)["kills"]
    assert active["scope"] == "charter:support-triage"
    assert active["killed_by"] == "alice"

    code, out, err = invoke(env, "revive", "charter:support-triage", "--as", "bob")
    assert code == 0, out + err
    assert "revived charter:support-triage" in out
    assert "revived by bob" in out

    code, out, _ = invoke(env, "kill", "--list")
    assert (code, out.strip()) == (0, "no kill switch is active")


def test_json_output_and_operator_from_the_environment(env: dict[str, str]) -> None:
    env = {**env, "CHARTER_OPERATOR": "oncall@ops"}
    code, out, _ = invoke(env, "kill", "all", "--reason", "provider outage", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True
    assert report["killed"]["scope"] == "all"
    assert report["killed"]["killed_by"] == "oncall@ops"

    code, out, _ = invoke(env, "revive", "all", "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["revived"]["reason"], report["revived_by"]) == ("provider outage", "oncall@ops")


def test_a_kill_from_the_cli_is_seen_by_a_running_store(env: dict[str, str]) -> None:
    database = Database(env["CHARTER_DATABASE_URL"])
    with KillSwitchStore(database, FakeClock()) as store:
        assert store.active_for("support-triage", "acme") is None
        assert invoke(env, "kill", "tenant:acme", "--reason", "abuse", "--as", "ops")[0] == 0
        assert store.active_for("support-triage", "acme") == ActiveKill("tenant:acme", "abuse")
    database.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("kill", "team:acme", "--reason", "r", "--as", "ops"), "must be 'all'"),
        (("kill", "charter:Bad Name", "--reason", "r", "--as", "ops"), "names no possible"),
        (("kill", "all", "--as", "ops"), "needs --reason"),
        (("kill", "all", "--reason", "   ", "--as", "ops"), "needs a reason"),
        (("kill", "all", "--reason", "x" * 501, "--as", "ops"), "keep it to 500"),
        (("kill", "all", "--reason", "r"), "--as"),
        (("kill", "all", "--reason", "r", "--as", "not valid"), "not a valid identifier"),
        (("kill", "--reason", "r", "--as", "ops"), "name the SCOPE"),
        (("kill", "all", "--list"), "--list takes no SCOPE"),
        (("revive", "tenant:x", "--as", "ops"), "scope 'tenant:x' is not killed; active: none"),
        (("revive", "tenant:x"), "--as"),
        (("revive",), "name the SCOPE"),
    ],
)
def test_bad_input_exits_2_with_the_reason(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    code, out, err = invoke(env, *args)
    assert code == 2, out + err
    assert message in err.replace("\n", " ")
    code, out, _ = invoke(env, *args, "--json")
    assert code == 2
    report = json.loads(out)
    assert report["ok"] is False
    assert message in report["error"]


def test_killing_twice_exits_2_and_keeps_the_first(env: dict[str, str]) -> None:
    assert invoke(env, "kill", "all", "--reason", "first", "--as", "alice")[0] == 0
    code, _, err = invoke(env, "kill", "all", "--reason", "second", "--as", "bob")
    assert code == 2
    assert "already killed by alice" in err
    assert "first" in err
    _, out, _ = invoke(env, "kill", "--list", "--json")
    assert [k["reason"] for k in json.loads(out)["kills"]] == ["first"]


@pytest.mark.parametrize(
    "args",
    [
        ("kill", "all", "--reason", "r", "--as", "ops"),
        ("kill", "--list"),
        ("revive", "all", "--as", "ops"),
        ("roles", "grant", "lead@acme", "--tenant", "acme", "--role", "approver", "--as", "a"),
        ("roles", "list"),
    ],
)
def test_an_unreachable_database_exits_2_without_the_password(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    env = {"CHARTER_HOME": str(tmp_path), "CHARTER_DATABASE_URL": UNREACHABLE}
    code, out, err = invoke(env, *args)
    assert code == 2, out + err
    assert "127.0.0.1:1/none" in err
    assert "s3cret" not in out + err
    assert "Traceback" not in out + err


def test_the_embedded_default_database_needs_no_setup(tmp_path: Path) -> None:
    env = {"CHARTER_HOME": str(tmp_path / "home")}
    assert invoke(env, "kill", "all", "--reason", "r", "--as", "ops")[0] == 0
    assert (tmp_path / "home" / "charter.sqlite3").exists()


def test_roles_grant_list_revoke(env: dict[str, str]) -> None:
    grant = ("roles", "grant", "lead@acme", "--tenant", "acme", "--role", "approver")
    code, out, err = invoke(env, *grant, "--as", "admin")
    assert code == 0, out + err
    assert "granted lead@acme holds 'approver' in tenant 'acme'" in out

    code, out, _ = invoke(env, *grant, "--as", "admin")
    assert code == 0
    assert "already; nothing to do" in out
    code, out, _ = invoke(env, *grant, "--as", "admin", "--json")
    assert json.loads(out)["changed"] is False

    invoke(env, "roles", "grant", "ann@globex", "--tenant", "globex", "--role", "approver",
           "--as", "admin")  # fmt: skip
    code, out, _ = invoke(env, "roles", "list")
    assert code == 0
    assert "acme lead@acme approver (granted by admin at " in out
    assert "globex ann@globex approver" in out
    code, out, _ = invoke(env, "roles", "list", "--tenant", "acme", "--json")
    assert [g["user"] for g in json.loads(out)["grants"]] == ["lead@acme"]

    code, out, err = invoke(
        env, "roles", "revoke", "lead@acme", "--tenant", "acme", "--role", "approver",
        "--as", "admin", "--json",
    )  # fmt: skip
    assert code == 0, out + err
    assert json.loads(out)["revoked"]["granted_by"] == "admin"
    code, out, _ = invoke(env, "roles", "list", "--tenant", "acme")
    assert (code, out.strip()) == (0, "no role grants in tenant 'acme'")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("revoke", "lead@acme", "--tenant", "acme", "--role", "approver", "--as", "admin"),
         "does not hold role 'approver'"),
        (("grant", "bad user", "--tenant", "acme", "--role", "approver", "--as", "admin"),
         "user 'bad user' is not a valid identifier"),
        (("grant", "lead@acme", "--tenant", "acme corp", "--role", "approver", "--as", "admin"),
         "tenant 'acme corp' is not a valid identifier"),
        (("grant", "lead@acme", "--tenant", "acme", "--role", "", "--as", "admin"),
         "role '' is not a valid identifier"),
        (("grant", "lead@acme", "--tenant", "acme", "--role", "approver"), "--as"),
        (("list", "--tenant", "bad tenant"), "not a valid identifier"),
    ],
)  # fmt: skip
def test_roles_bad_input_exits_2(env: dict[str, str], args: tuple[str, ...], message: str) -> None:
    code, out, err = invoke(env, "roles", *args)
    assert code == 2, out + err
    assert message in err.replace("\n", " ")
    code, out, _ = invoke(env, "roles", *args, "--json")
    assert (code, json.loads(out)["ok"]) == (2, False)
    assert message in json.loads(out)["error"]
