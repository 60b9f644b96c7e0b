"""Which kill scopes a database knows: a typo in a scope is refused, not taken for a kill."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from charter import Settings
from charter.core.errors import UserError
from charter.core.events import EventBus, KillSwitchChanged, RunIdentity, RunStarted
from charter.governance.kill_scopes import check_kill_scope, require_known_scope
from charter.governance.service import Governance
from charter.identity.roles import RoleGrants
from charter.observability.audit import AuditLog
from charter.observability.audit_recorder import AuditRecorder
from charter.observability.runs import RunRecorder
from charter.storage import Database
from charter.testing.clock import FakeClock

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_desk"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def record_run(database: Database, charter: str, tenant: str, run_id: str = "run_1") -> None:
    """A run as the runtime records it when it starts."""
    identity = RunIdentity(run_id, charter, "c" * 64, tenant, "alice", "", (), "dev",
                           "scripted:m", "p" * 64, "t" * 32)  # fmt: skip
    recorder = RunRecorder(database)
    recorder(RunStarted(identity, T0, "i" * 64, f"{run_id}/started"))
    assert recorder.errors == 0


def test_all_is_always_known(database: Database) -> None:
    assert check_kill_scope(database, "all").known
    assert require_known_scope(database, "all", force=False) is None


def test_an_empty_database_knows_no_charter_and_says_so(database: Database) -> None:
    check = check_kill_scope(database, "charter:support-triage")
    assert (check.known, check.kind, check.known_names) == (False, "charter", ())
    with pytest.raises(UserError) as raised:
        require_known_scope(database, "charter:support-triage", force=False)
    message = str(raised.value)
    assert "'charter:support-triage' names no charter this database knows" in message
    assert "no charter has runs, releases or deployments here yet" in message
    assert "--force" in message


def test_a_charter_with_runs_is_known_and_a_typo_of_it_is_refused(database: Database) -> None:
    record_run(database, "support-triage", "acme")

    assert check_kill_scope(database, "charter:support-triage").known
    assert check_kill_scope(database, "tenant:acme").known
    with pytest.raises(UserError, match=r"known charters: support-triage\. Check the spelling"):
        require_known_scope(database, "charter:suport-triage", force=False)
    with pytest.raises(UserError, match=r"known tenants: acme\. Check the spelling"):
        require_known_scope(database, "tenant:acmee", force=False)


def test_force_lets_an_unknown_scope_through_with_a_warning(database: Database) -> None:
    warning = require_known_scope(database, "charter:new-agent", force=True)
    assert warning is not None
    assert "'charter:new-agent' names no charter this database knows" in warning
    assert "--force" in warning
    # Force does not excuse a malformed scope: no run could ever match it.
    with pytest.raises(UserError, match="names no possible charter"):
        require_known_scope(database, "charter:New Agent", force=True)
    with pytest.raises(UserError, match="must be 'all'"):
        require_known_scope(database, "team:acme", force=True)


def test_a_released_charter_is_known_before_its_first_run(
    database: Database, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path, secrets_dir=tmp_path / "s", database_url=database.url)
    governance = Governance(database, FakeClock(T0), EventBus(), settings)
    governance.releases.create(EXAMPLE, author="alice", message="first")

    assert check_kill_scope(database, "charter:support-triage").known


def test_a_tenant_with_only_role_grants_is_known(database: Database) -> None:
    RoleGrants(database, FakeClock(T0)).grant("globex", "lead", "approver", by="admin")
    assert check_kill_scope(database, "tenant:globex").known
    assert not check_kill_scope(database, "tenant:initech").known


def test_a_tenant_with_only_audit_records_is_known(database: Database) -> None:
    with AuditLog(database) as audit:
        AuditRecorder(audit)(KillSwitchChanged(T0, "tenant:umbrella", "kill", "abuse", "ops"))
    assert check_kill_scope(database, "tenant:umbrella").known
    # Governance records of charter-wide kills go to a pseudo-tenant, which is not listed.
    with AuditLog(database) as audit:
        AuditRecorder(audit)(KillSwitchChanged(T0, "all", "kill", "outage", "ops"))
    assert "_governance" not in check_kill_scope(database, "tenant:initech").known_names


def test_a_long_list_of_known_names_is_cut_and_counted(database: Database) -> None:
    for i in range(25):
        record_run(database, f"agent-{i:02d}", "acme", run_id=f"run_{i}")
    with pytest.raises(UserError) as raised:
        require_known_scope(database, "charter:agent-99", force=False)
    message = str(raised.value)
    assert "agent-00, agent-01" in message
    assert "agent-19 (and 5 more)" in message
    assert "agent-20" not in message


def test_an_unreachable_database_is_reported_without_its_password(tmp_path: Path) -> None:
    database = Database("postgresql://x:s3cret@127.0.0.1:1/none")
    try:
        with pytest.raises(UserError) as raised:
            check_kill_scope(database, "charter:support-triage")
    finally:
        database.dispose()
    assert "127.0.0.1:1/none" in str(raised.value)
    assert "s3cret" not in str(raised.value)
