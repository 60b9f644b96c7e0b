"""Issue 11, defect 5, through the real CLI: a person is one person however they type it.

    charter roles grant Alice --tenant acme --role approver --as admin
    charter approvals approve apr_... --as Alice      # a request filed by alice

used to decide the request; it must be refused as separation of duties. The same holds for
every command that records or compares who did something.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charter import Runtime, Settings
from charter.cli.app import app
from charter.core.canonical import canonical_json, sha256_hex
from charter.core.clock import SystemClock
from charter.core.events import EventBus
from charter.execution.approval_store import ApprovalStore
from charter.execution.approvals import ApprovalRequest
from charter.identity.principal import Principal
from charter.identity.roles import RoleGrants
from charter.storage import Database, upgrade
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.harness import example_charter

ARGUMENTS = {"amount_usd": "350", "ticket_id": "T-1001"}


def charter(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    database = Database(db_url)
    upgrade(database)  # a shared Postgres database is upgraded on purpose
    database.dispose()
    for name in ("CHARTER_OPERATOR", "CHARTER_USER", "CHARTER_TENANT"):
        monkeypatch.delenv(name, raising=False)
    return {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_DATABASE_URL": db_url}


def file_request(env: dict[str, str], requested_by: str) -> str:
    """A request as a run acting for ``requested_by`` files it."""
    database = Database(env["CHARTER_DATABASE_URL"])
    try:
        clock = SystemClock()
        store = ApprovalStore(database, clock, EventBus(), RoleGrants(database, clock))
        request = ApprovalRequest(
            id="apr_issue11",
            run_id="run_issue11",
            tenant="acme",
            requested_by=requested_by,
            tool="issue_refund",
            arguments=ARGUMENTS,
            arguments_sha256=sha256_hex(canonical_json(ARGUMENTS)),
            reason="amount_usd > 200",
            rule_id="require_approval_for[0]",
            requested_at=clock.now(),
        )
        return store.request(request, charter_name="support-triage").id
    finally:
        database.dispose()


def test_the_issue_commands_alice_cannot_approve_what_alice_asked_for(
    env: dict[str, str],
) -> None:
    code, out, err = charter(
        env, "roles", "grant", "Alice", "--tenant", "acme", "--role", "approver", "--as", "admin"
    )
    assert code == 0, out + err
    assert "granted alice holds 'approver' in tenant 'acme'" in out
    request_id = file_request(env, "alice")

    for spelling in ("Alice", "ALICE", " alice ", "\uff21lice"):
        code, out, err = charter(env, "approvals", "approve", request_id, "--as", spelling)
        assert code == 2, (spelling, out, err)
        assert "'alice' requested 'apr_issue11'" in err
        assert "separation of duties" in err
    code, out, _ = charter(env, "approvals", "show", request_id, "--json")
    assert json.loads(out)["status"] == "pending"

    # Another person decides, and is recorded in canonical form.
    charter(env, "roles", "grant", "bob", "--tenant", "acme", "--role", "approver", "--as", "admin")
    code, out, err = charter(env, "approvals", "approve", request_id, "--as", "BOB", "--json")
    assert code == 0, out + err
    assert json.loads(out)["approval"]["decided_by"] == "bob"


def test_roles_of_one_person_are_one_set_whatever_the_spelling(env: dict[str, str]) -> None:
    grant = ("roles", "grant", "Alice", "--tenant", "acme", "--role", "approver")
    assert charter(env, *grant, "--as", "Admin")[0] == 0
    code, out, _ = charter(
        env, "roles", "grant", "ALICE", "--tenant", "acme", "--role", "approver", "--as", "root",
        "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out) == {
        "ok": True, "changed": False, "tenant": "acme", "user": "alice", "role": "approver",
        "by": "root",
    }  # fmt: skip
    code, out, _ = charter(env, "roles", "list", "--json")
    assert [(g["user"], g["granted_by"]) for g in json.loads(out)["grants"]] == [("alice", "admin")]
    code, out, err = charter(
        env, "roles", "revoke", "ALICE", "--tenant", "acme", "--role", "approver", "--as", "admin"
    )
    assert code == 0, out + err
    assert "revoked alice's role 'approver'" in out
    code, out, _ = charter(env, "roles", "list", "--tenant", "acme")
    assert out.strip() == "no role grants in tenant 'acme'"


@pytest.mark.parametrize(
    "name", ["ali\u200bce", "\u0430lice", "\u202eecila", "al ice", "alice\u0000"], ids=ascii
)
def test_a_name_that_cannot_be_a_person_exits_2_saying_why(env: dict[str, str], name: str) -> None:
    code, out, err = charter(
        env, "roles", "grant", name, "--tenant", "acme", "--role", "approver", "--as", "admin"
    )
    assert code == 2, out + err
    assert "is not a valid identifier" in err
    request_id = file_request(env, "carol")
    code, out, err = charter(env, "approvals", "approve", request_id, "--as", name, "--json")
    assert code == 2
    assert "is not a valid identifier" in json.loads(out)["error"]


def test_kill_and_revive_record_the_operator_canonical(env: dict[str, str]) -> None:
    # A tenant the database knows (a kill of an unknown scope is refused).
    charter(env, "roles", "grant", "bob", "--tenant", "acme", "--role", "approver", "--as", "admin")
    code, out, err = charter(
        env, "kill", "tenant:acme", "--reason", "incident", "--as", "Ops", "--json"
    )
    assert code == 0, out + err
    assert json.loads(out)["killed"]["killed_by"] == "ops"
    code, out, _ = charter(env, "kill", "--list", "--json")
    assert [kill["killed_by"] for kill in json.loads(out)["kills"]] == ["ops"]
    code, out, err = charter(env, "revive", "tenant:acme", "--as", "OPS", "--json")
    assert code == 0, out + err
    assert json.loads(out)["revived"]["killed_by"] == "ops"


def test_runs_are_listed_and_labeled_by_people_in_canonical_form(
    env: dict[str, str], tmp_path: Path
) -> None:
    settings = Settings(
        home=Path(env["CHARTER_HOME"]),
        secrets_dir=tmp_path / "secrets",
        database_url=env["CHARTER_DATABASE_URL"],
    )
    model = ScriptedModel([reply("", tool_call("escalate_to_human", "c1", reason="legal"))])
    with Runtime(settings) as runtime:
        result = asyncio.run(
            runtime.run_agent(
                example_charter(), model, "help", principal=Principal("Alice", "acme")
            )
        )
    assert (result.outcome, result.user) == ("escalated", "alice")

    code, out, err = charter(env, "runs", "list", "--user", "ALICE", "--json")
    assert code == 0, out + err
    assert [run["run_id"] for run in json.loads(out)["runs"]] == [result.run_id]
    assert json.loads(out)["runs"][0]["user"] == "alice"
    code, out, err = charter(
        env, "runs", "label", result.run_id, "--escalation", "confirmed", "--as", "Lead", "--json"
    )
    assert code == 0, out + err
    assert json.loads(out)["labeled_by"] == "lead"
