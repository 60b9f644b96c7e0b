"""``charter approvals`` end to end on SQLite and Postgres: list, show and the decisions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from charter.cli import approvals
from charter.core.canonical import canonical_json, sha256_hex
from charter.core.clock import SystemClock
from charter.core.events import EventBus
from charter.execution.approval_store import ApprovalStore
from charter.execution.approvals import ApprovalRequest
from charter.identity.roles import RoleGrants
from charter.observability.audit import AuditLog
from charter.storage import Database, upgrade

ARGUMENTS = {"amount_usd": "350", "ticket": "T-1001"}
SHA = sha256_hex(canonical_json(ARGUMENTS))

cli = typer.Typer()
cli.add_typer(approvals.app, name="approvals")


@dataclass(frozen=True)
class Decided:
    request_id: str
    verdict: str
    decided_by: str


@dataclass
class Inbox:
    env: dict[str, str]
    store: ApprovalStore
    database: Database

    def invoke(self, *args: str, **env: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, ["approvals", *args], env={**self.env, **env})
        return result.exit_code, result.stdout, result.stderr

    def decided(self) -> list[Decided]:
        """The decisions the audit log recorded (the CLI publishes them to it)."""
        with AuditLog(self.database) as log:
            return [
                Decided(str(r.entry.approval_request_id), str(r.entry.verdict), r.entry.user)
                for r in log.records()
                if r.entry.kind == "approval_decision"
            ]


@pytest.fixture
def inbox(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    database = Database(db_url)
    upgrade(database)  # Postgres is upgraded on purpose, never by the CLI
    clock = SystemClock()
    roles = RoleGrants(database, clock)
    roles.grant("acme", "alice", "approver", by="admin")
    roles.grant("acme", "bob", "approver", by="admin")
    store = ApprovalStore(database, clock, EventBus(), roles)
    now = clock.now()
    for i, (tenant, user, tool) in enumerate(
        [("acme", "carol", "issue_refund"), ("globex", "zed", "delete_record")]
    ):
        request = ApprovalRequest(
            id=f"apr_{i + 1}",
            run_id=f"run_{i + 1}",
            tenant=tenant,
            requested_by=user,
            tool=tool,
            arguments=ARGUMENTS,
            arguments_sha256=SHA,
            reason="amount_usd > 200" if i == 0 else "always",
            rule_id=f"require_approval_for[{i}]",
            requested_at=now - timedelta(minutes=5 - i),
        )
        store.request(request, charter_name="support-triage")
    env = {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_DATABASE_URL": db_url}
    result = Inbox(env, store, database)
    monkeypatch.delenv("CHARTER_OPERATOR", raising=False)
    monkeypatch.delenv("CHARTER_TENANT", raising=False)
    try:
        yield result
    finally:
        database.dispose()


def test_list_prints_one_aligned_line_per_request_newest_first(inbox: Inbox) -> None:
    code, out, err = inbox.invoke("list")
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["apr_2", "apr_1"]
    assert lines[1].split() == [
        "apr_1", "5m", "acme", "carol", "issue_refund", SHA[:12], "pending",
        "amount_usd", ">", "200",
    ]  # fmt: skip
    # Aligned: every column starts at the same offset on every line.
    assert lines[0].index("pending") == lines[1].index("pending")
    assert lines[0].index(SHA[:12]) == lines[1].index(SHA[:12])


def test_list_filters_and_json(inbox: Inbox) -> None:
    code, out, _ = inbox.invoke("list", "--tenant", "acme", "--json")
    assert code == 0
    [only] = json.loads(out)["requests"]
    assert only["id"] == "apr_1"
    assert only["arguments"] == ARGUMENTS
    assert only["status"] == "pending"
    code, out, _ = inbox.invoke("list", "--status", "approved", "--json")
    assert (code, json.loads(out)["requests"]) == (0, [])
    code, out, _ = inbox.invoke("list", "--status", "approved")
    assert (code, out.strip()) == (0, "no approval requests with status 'approved'")
    code, out, _ = inbox.invoke("list", "-n", "1", "--json")
    assert [r["id"] for r in json.loads(out)["requests"]] == ["apr_2"]


def test_list_refuses_an_unknown_status(inbox: Inbox) -> None:
    code, _, err = inbox.invoke("list", "--status", "done")
    assert code == 2
    assert "status 'done' is not one of pending" in err
    code, out, _ = inbox.invoke("list", "--status", "done", "--json")
    assert code == 2
    assert json.loads(out)["ok"] is False


def test_show_prints_every_field_with_the_canonical_arguments_and_their_hash(
    inbox: Inbox,
) -> None:
    code, out, err = inbox.invoke("show", "apr_1")
    assert code == 0, err
    fields = {line.split()[0]: line.split(maxsplit=1)[1] for line in out.splitlines()}
    assert fields["arguments"] == canonical_json(ARGUMENTS)
    assert fields["arguments_sha256"] == SHA
    assert fields["decided_by"] == "-"
    # Every field of the record, and what it repeats (nothing here; test_approval_repeats_cli)
    assert fields.pop("repeat_of") == "-"
    assert set(fields) == set(inbox.store.get("apr_1").as_dict())
    code, out, _ = inbox.invoke("show", "apr_1", "--json")
    assert (code, json.loads(out)) == (0, {**inbox.store.get("apr_1").as_dict(), "repeat_of": None})


def test_show_says_when_the_hash_is_of_arguments_before_redaction(inbox: Inbox) -> None:
    request = ApprovalRequest(
        id="apr_redacted",
        run_id="run_3",
        tenant="acme",
        requested_by="carol",
        tool="issue_refund",
        arguments={"card": "[REDACTED]"},
        arguments_sha256=sha256_hex(canonical_json({"card": "4242"})),
        reason="r",
        rule_id="rule",
        requested_at=SystemClock().now(),
    )
    inbox.store.request(request, charter_name="support-triage")
    code, out, _ = inbox.invoke("show", "apr_redacted")
    assert code == 0
    assert "arguments shown with secrets redacted" in out


def test_show_of_an_unknown_id_exits_2(inbox: Inbox) -> None:
    code, _, err = inbox.invoke("show", "apr_nope")
    assert code == 2
    assert "approval request 'apr_nope' not found" in err


def test_approve_decides_and_publishes_once(inbox: Inbox) -> None:
    code, out, err = inbox.invoke("approve", "apr_1", "--as", "alice", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True
    assert report["approval"]["status"] == "approved"
    assert report["approval"]["decided_by"] == "alice"
    assert inbox.store.get("apr_1").status == "approved"
    [event] = inbox.decided()
    assert (event.request_id, event.verdict, event.decided_by) == ("apr_1", "approve", "alice")


@pytest.mark.parametrize(
    ("command", "status"),
    [("reject", "rejected"), ("terminate", "terminated"), ("escalate", "escalated")],
)
def test_other_decisions_need_a_reason(inbox: Inbox, command: str, status: str) -> None:
    code, _, err = inbox.invoke(command, "apr_1", "--as", "alice")
    assert code == 2
    assert f"a reason is required to {command} 'apr_1'" in err
    assert inbox.decided() == []
    code, out, err = inbox.invoke(command, "apr_1", "--as", "alice", "--reason", "wrong customer")
    assert code == 0, err
    assert out.startswith(f"{status} apr_1 (issue_refund in run run_1, tenant acme) by alice")
    assert inbox.store.get("apr_1").status == status
    assert len(inbox.decided()) == 1


def test_the_operator_comes_from_the_environment(inbox: Inbox) -> None:
    code, _, err = inbox.invoke("approve", "apr_1", CHARTER_OPERATOR="bob")
    assert code == 0, err
    assert inbox.store.get("apr_1").decided_by == "bob"


def test_a_decision_without_a_name_is_refused(inbox: Inbox) -> None:
    code, _, err = inbox.invoke("approve", "apr_1")
    assert code == 2
    assert "pass --as USER or set CHARTER_OPERATOR" in err
    assert inbox.store.get("apr_1").status == "pending"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["approve", "apr_1", "--as", "carol"], "separation of duties"),
        (["approve", "apr_1", "--as", "erin"], "'erin' does not hold the role 'approver'"),
        (["approve", "apr_2", "--as", "alice"], "in tenant 'globex'"),
        (["approve", "apr_nope", "--as", "alice"], "'apr_nope' not found"),
    ],
)
def test_refused_decisions_exit_2_with_the_reason_and_change_nothing(
    inbox: Inbox, args: list[str], message: str
) -> None:
    before = inbox.store.list()
    code, _, err = inbox.invoke(*args)
    assert code == 2
    assert message in err
    code, out, _ = inbox.invoke(*args, "--json")
    assert code == 2
    report = json.loads(out)
    assert report["ok"] is False
    assert message in report["error"]
    assert inbox.store.list() == before
    assert inbox.decided() == []


def test_deciding_twice_is_refused_naming_the_first_decision(inbox: Inbox) -> None:
    assert inbox.invoke("approve", "apr_1", "--as", "alice")[0] == 0
    code, _, err = inbox.invoke("reject", "apr_1", "--as", "bob", "--reason", "no")
    assert code == 2
    assert "'apr_1' was already approved by 'alice'" in err
    assert len(inbox.decided()) == 1


def test_an_unreachable_database_exits_2(inbox: Inbox) -> None:
    code, _, err = inbox.invoke("list", CHARTER_DATABASE_URL="mysql://nobody@localhost/x")
    assert code == 2
    assert "Charter supports sqlite and postgresql" in err
