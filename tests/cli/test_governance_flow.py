"""Kill switches and approvals across processes, through the real CLI and the real database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from charter_examples.support_desk.demo import CHARTER_PATH
from charter_examples.support_desk.desk import SupportDesk
from typer.testing import CliRunner

from charter.cli.app import app
from charter.contract.loader import Charter
from charter.core.settings import Settings
from charter.execution.approvals import ApprovalRequest
from charter.identity.principal import Principal
from charter.identity.secrets import EnvSecretProvider
from charter.observability.audit import AuditLog
from charter.runtime import Runtime
from charter.storage import Database, upgrade


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    database = Database(db_url)
    upgrade(database)  # Postgres is upgraded on purpose; SQLite would be on open anyway
    database.dispose()
    return {
        "CHARTER_HOME": str(tmp_path / "home"),
        "CHARTER_DATABASE_URL": db_url,
        "CHARTER_SECRET_PAYMENTS_REFUND": "sk_test_flow_12345",
    }


def invoke(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def run_ticket(
    env: dict[str, str], ticket: str, user: str = "alice"
) -> tuple[int, dict[str, object]]:
    code, out, err = invoke(
        env, "run", str(CHARTER_PATH), "-i", f"Please handle ticket {ticket}.",
        "--user", user, "--tenant", "acme", "--role", "support", "--json",
    )  # fmt: skip
    assert out, err
    return code, json.loads(out)


def file_refund_request(env: dict[str, str]) -> ApprovalRequest:
    """Alice's $350 refund, called by host code on its own run: the request it files."""
    home = Path(env["CHARTER_HOME"])
    settings = Settings(home=home, secrets_dir=home / "secrets",
                        database_url=env["CHARTER_DATABASE_URL"])  # fmt: skip
    secrets = [EnvSecretProvider({"CHARTER_SECRET_PAYMENTS_REFUND": "sk_test_flow_12345"})]
    with Runtime(settings, secret_providers=secrets) as runtime:
        run = runtime.start_run(Charter.load(CHARTER_PATH),
                                Principal("alice", "acme", roles=("support",)),
                                resources=(SupportDesk.default(),))  # fmt: skip
        refund = {"ticket_id": "T-1002", "amount_usd": "350", "account": "acct-C-02"}
        result = asyncio.run(run.call_tool("issue_refund", refund))
    assert result.outcome == "approval_required"
    assert result.approval is not None
    return result.approval


def audit_kinds(db_url: str) -> list[tuple[str, str]]:
    with AuditLog.open(db_url) as log:
        return [(r.entry.kind, r.entry.outcome) for r in log.records()]


def test_a_kill_from_one_process_stops_runs_in_another_until_revived(
    env: dict[str, str],
) -> None:
    code, result = run_ticket(env, "T-1001")  # the charter has run here: a kill names it
    assert (code, result["outcome"]) == (0, "succeeded")
    code, out, err = invoke(env, "kill", "charter:support-triage", "--reason", "refund loop",
                            "--as", "oncall", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["killed"]["scope"] == "charter:support-triage"

    code, result = run_ticket(env, "T-1001")
    assert code == 1
    assert result["outcome"] == "killed"
    assert result["decision"]["rule_id"] == "kill-switch:charter:support-triage"
    assert result["tool_calls"] == []  # stopped before its first step

    code, _, err = invoke(env, "revive", "charter:support-triage", "--as", "oncall")
    assert code == 0, err
    code, result = run_ticket(env, "T-1001")
    assert code == 0
    assert result["outcome"] == "succeeded"

    kinds = audit_kinds(env["CHARTER_DATABASE_URL"])
    assert ("kill_switch", "kill") in kinds
    assert ("kill_switch", "revive") in kinds
    code, out, _ = invoke(env, "audit", "verify", "--json")
    assert code == 0
    assert json.loads(out)["ok"] is True


def test_an_approval_request_reaches_the_inbox_and_is_decided_by_an_approver(
    env: dict[str, str],
) -> None:
    # An in-process `charter run` cannot wait for a decision and files nothing; host code
    # calling the tool itself can retry once approved, so its call files a request.
    request = file_refund_request(env)
    request_id = request.id

    code, out, _ = invoke(env, "approvals", "list", "--json")
    assert code == 0
    [listed] = json.loads(out)["requests"]
    assert listed["id"] == request_id
    assert listed["status"] == "pending"
    assert listed["arguments_sha256"] == request.arguments_sha256

    # Separation of duties: the run's own user may not approve it, even with the role.
    assert invoke(env, "roles", "grant", "alice", "--tenant", "acme", "--role", "approver",
                  "--as", "admin")[0] == 0  # fmt: skip
    code, _, err = invoke(env, "approvals", "approve", request_id, "--as", "alice")
    assert code == 2
    assert "alice" in err
    # Without the approver role: refused, nothing changed.
    code, _, err = invoke(env, "approvals", "approve", request_id, "--as", "lead")
    assert code == 2
    assert "approver" in err

    assert invoke(env, "roles", "grant", "lead", "--tenant", "acme", "--role", "approver",
                  "--as", "admin")[0] == 0  # fmt: skip
    code, out, err = invoke(env, "approvals", "approve", request_id, "--as", "lead",
                            "--reason", "customer is a VIP", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["approval"]["status"] == "approved"
    code, _, err = invoke(env, "approvals", "approve", request_id, "--as", "lead")
    assert code == 2
    assert "already" in err

    kinds = audit_kinds(env["CHARTER_DATABASE_URL"])
    assert kinds.count(("approval_decision", "approve")) == 1
