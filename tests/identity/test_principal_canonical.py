"""A run's user is a person: canonical in the principal, so in Cedar, the audit log and spans."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.identity.principal import Principal
from charter.runtime import Runtime
from tests.execution.harness import Traced, call
from tests.identity.test_principal import probe_agent, probe_charter


@pytest.mark.parametrize(
    "user", ["Alice", "ALICE", " alice ", "alice\n", "\uff21\uff4c\uff49\uff43\uff45"], ids=ascii
)
def test_the_user_is_kept_in_canonical_form(user: str) -> None:
    assert Principal(user, "acme").user == "alice"
    assert Principal(user, "acme") == Principal("alice", "acme")


def test_tenant_roles_and_service_principal_keep_their_spelling() -> None:
    principal = Principal("Alice", "Acme", "svc:Bot", roles=("Support",))
    assert (principal.tenant, principal.service_principal, principal.roles) == (
        "Acme",
        "svc:Bot",
        ("Support",),
    )


@pytest.mark.parametrize("user", ["ali\u200bce", "\u0430lice", "\u202eecila", "al ice"], ids=ascii)
def test_a_user_that_cannot_be_a_person_is_refused_as_before(user: str) -> None:
    with pytest.raises(ValueError, match=r"user .* is not a valid identifier; use 1-128"):
        Principal(user, "acme")


@pytest.mark.parametrize("user", ["Mallory", "MALLORY", "mallory "])
def test_a_rule_about_a_user_holds_for_every_spelling_of_them(
    runtime: Runtime, tmp_path: Path, user: str
) -> None:
    # The probe charter forbids Charter::User::"mallory" everything and lets only "alice"
    # probe: before issue 11, "Mallory" was a stranger to both rules.
    run = runtime.start_run(
        probe_charter(tmp_path), Principal(user, "acme", roles=("auditor",)), environment="staging"
    )
    assert call(run, "probe", {}).decision.rule_id == "no-mallory"


def test_alice_in_capitals_is_alice_to_the_policy(runtime: Runtime, tmp_path: Path) -> None:
    run = runtime.start_run(
        probe_charter(tmp_path),
        Principal("ALICE", "acme", roles=("auditor",)),
        environment="staging",
    )
    assert call(run, "probe", {}).decision.rule_id == "tools.probe"


def test_the_audit_log_and_spans_record_the_canonical_user(traced: Traced, tmp_path: Path) -> None:
    runtime = traced.runtime
    result = probe_agent(runtime, tmp_path, Principal("Alice", "acme", roles=("auditor",)))
    assert result.outcome == "succeeded"
    assert result.user == "alice"
    assert {record.entry.user for record in runtime.audit.records()} == {"alice"}
    [root] = [s for s in traced.spans() if s.name == "invoke_agent test-agent"]
    assert root.attributes is not None
    assert root.attributes["charter.user"] == "alice"
