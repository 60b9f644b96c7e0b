"""``charter kill`` refuses a scope that names nothing this database knows, unless --force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from charter.observability.audit import AuditLog
from tests.cli.test_kill_roles_cli import invoke, triage_env


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """A database where support-triage has run for tenant acme, and nothing else."""
    return triage_env(db_url, tmp_path)


def active(env: dict[str, str]) -> list[str]:
    code, out, _ = invoke(env, "kill", "--list", "--json")
    assert code == 0
    return [k["scope"] for k in json.loads(out)["kills"]]


@pytest.mark.parametrize(
    ("scope", "known"),
    [("charter:no-such-charter", "known charters: support-triage"),
     ("charter:suport-triage", "known charters: support-triage"),
     ("tenant:acmee", "known tenants: acme")],
)  # fmt: skip
def test_a_scope_nothing_here_knows_is_refused_with_the_known_names(
    env: dict[str, str], scope: str, known: str
) -> None:
    code, out, err = invoke(env, "kill", scope, "--reason", "incident", "--as", "oncall")
    assert code == 2, out + err
    message = " ".join(err.split())
    assert f"{scope!r} names no" in message
    assert known in message
    assert "--force" in message
    assert active(env) == []  # nothing was killed

    code, out, _ = invoke(env, "kill", scope, "--reason", "incident", "--as", "oncall", "--json")
    assert code == 2
    report = json.loads(out)
    assert report["ok"] is False
    assert known in report["error"]
    assert active(env) == []


def test_force_kills_an_unknown_scope_with_a_warning_and_records_it(env: dict[str, str]) -> None:
    code, out, err = invoke(env, "kill", "charter:new-agent", "--reason", "not yet, wait",
                            "--as", "oncall", "--force")  # fmt: skip
    assert code == 0, out + err
    assert "warning: 'charter:new-agent' names no charter this database knows" in err
    assert "killed charter:new-agent: not yet, wait" in out
    assert active(env) == ["charter:new-agent"]
    with AuditLog.open(env["CHARTER_DATABASE_URL"]) as log:
        kills = [r.entry for r in log.records() if r.entry.kind == "kill_switch"]
    assert [(e.outcome, e.reason) for e in kills] == [("kill", "not yet, wait")]

    code, out, err = invoke(env, "kill", "tenant:initech", "--reason", "abuse", "--as", "oncall",
                            "--force", "--json")  # fmt: skip
    assert code == 0, out + err
    report = json.loads(out)
    assert report["killed"]["scope"] == "tenant:initech"
    assert "names no tenant this database knows" in report["warning"]
    assert "warning:" in err


def test_a_known_scope_needs_no_force_and_prints_no_warning(env: dict[str, str]) -> None:
    for scope in ("charter:support-triage", "tenant:acme", "all"):
        code, out, err = invoke(env, "kill", scope, "--reason", "incident", "--as", "oncall")
        assert code == 0, out + err
        assert "warning" not in err
    assert sorted(active(env)) == ["all", "charter:support-triage", "tenant:acme"]


def test_revive_of_a_scope_that_is_not_killed_says_so(env: dict[str, str]) -> None:
    code, out, err = invoke(env, "revive", "charter:suport-triage", "--as", "oncall")
    assert code == 2, out + err
    assert "scope 'charter:suport-triage' is not killed; active: none" in " ".join(err.split())
