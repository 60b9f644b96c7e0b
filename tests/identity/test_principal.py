"""Identity: who a run acts for reaches Cedar, the audit log and the spans, and bad ids fail."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from charter.contract.loader import Charter
from charter.contract.tool import tool
from charter.execution.agent import RunResult
from charter.identity.principal import Principal
from charter.runtime import Runtime
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.harness import (
    Traced,
    audit_rows,
    call,
    example_charter,
    tool_records,
    write_charter,
)

VALID = ["alice", "a", "A1", "a" * 128, "alice@example.com", "svc:bot+1", "A.B_C-D", "42"]
INVALID = [
    "",
    " ",
    " alice",
    "alice ",
    "alice\n",
    "al ice",
    "-alice",
    ".alice",
    "@alice",
    "a" * 129,
    "ali/ce",
    "alice\x00",
    "ålice",
    "alice;drop",
    'alice"',
]
# A user is a person: whitespace around the name is trimmed (tests/identity/test_names.py).
TRIMMED_USERS = {" alice", "alice ", "alice\n"}


@pytest.mark.parametrize("value", VALID)
def test_valid_user_and_tenant_ids_are_accepted(value: str) -> None:
    principal = Principal(value, value, roles=(value,))
    # The user is kept in canonical form (lower case); tenant and roles as written.
    assert (principal.user, principal.tenant, principal.roles) == (value.lower(), value, (value,))


@pytest.mark.parametrize("value", [v for v in INVALID if v not in TRIMMED_USERS], ids=repr)
def test_invalid_user_ids_are_rejected_with_what_is_allowed(value: str) -> None:
    with pytest.raises(ValueError, match=r"user .* is not a valid identifier; use 1-128"):
        Principal(value, "acme")


@pytest.mark.parametrize("value", INVALID, ids=repr)
def test_invalid_tenant_ids_are_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="tenant"):
        Principal("alice", value)


@pytest.mark.parametrize("value", [None, 5, b"alice", ["alice"]], ids=repr)
def test_non_string_ids_are_rejected(value: Any) -> None:
    with pytest.raises(ValueError, match="not a valid identifier"):
        Principal(value, "acme")
    with pytest.raises(ValueError, match="not a valid identifier"):
        Principal("alice", value)


@pytest.mark.parametrize("role", ["", "bad role", "admin\n", "x" * 129, 5], ids=repr)
def test_invalid_roles_are_rejected(role: Any) -> None:
    with pytest.raises(ValueError, match="role"):
        Principal("alice", "acme", roles=("support", role))


def test_roles_given_as_one_string_are_refused_not_split_into_letters() -> None:
    with pytest.raises(TypeError, match="roles must be a tuple of str"):
        Principal("alice", "acme", roles="support")  # type: ignore[arg-type]


def test_roles_given_as_a_list_become_a_tuple() -> None:
    principal = Principal("alice", "acme", roles=["support", "billing"])  # type: ignore[arg-type]
    assert principal.roles == ("support", "billing")
    hash(principal)  # frozen and hashable, as a tuple of roles allows


@pytest.mark.parametrize("service", ["has space", "agent:x\n", "-x"], ids=repr)
def test_an_invalid_explicit_service_principal_is_rejected(service: str) -> None:
    with pytest.raises(ValueError, match="service principal"):
        Principal("alice", "acme", service_principal=service)


def test_the_service_principal_defaults_to_the_agent_and_an_explicit_one_is_kept() -> None:
    assert Principal("alice", "acme").for_agent("support-triage").service_principal == (
        "agent:support-triage"
    )
    explicit = Principal("alice", "acme", service_principal="svc:triage-bot")
    assert explicit.for_agent("support-triage") is explicit


def test_an_unknown_environment_is_refused_when_a_run_starts(runtime: Runtime) -> None:
    for environment in ("production", "PROD", "test", " dev"):
        with pytest.raises(ValueError, match="must be one of dev, staging, prod"):
            runtime.start_run(example_charter(), Principal("a", "b"), environment=environment)


# -- identity reaches Cedar, the audit log and the spans ------------------------------------

CEDAR = """\
@id("no-mallory")
@verdict("deny")
@reason("mallory may do nothing")
forbid (principal == Charter::User::"mallory", action, resource);

@id("probe-identity")
@verdict("deny")
@reason("probe runs only for alice at acme, as the test agent, with the auditor role, in staging")
forbid (principal, action == Charter::Action::"probe", resource)
when {
  context.principal.user != "alice" ||
  context.principal.tenant != "acme" ||
  context.principal.service_principal != "agent:test-agent" ||
  !context.principal.roles.contains("auditor") ||
  context.environment != "staging"
};

"""


@tool
def probe() -> str:
    """Does nothing, under a policy about who calls it."""
    return "ok"


def probe_charter(tmp_path: Path) -> Charter:
    return write_charter(
        tmp_path,
        """\
        tools:
          probe: {effect: read}
        policies: {cedar: extra.cedar}
        """,
        tools=[probe],
        cedar=CEDAR,
    )


def probe_agent(runtime: Runtime, tmp_path: Path, principal: Principal) -> RunResult:
    """The probe charter's agent, run once in staging for ``principal``: it probes, it is done."""
    model = ScriptedModel([reply("", tool_call("probe", "c1")), reply("done")])
    return asyncio.run(
        runtime.run_agent(
            probe_charter(tmp_path),
            model,
            "probe please",
            principal=principal,
            environment="staging",
        )
    )


@pytest.mark.parametrize(
    ("user", "tenant", "roles", "environment", "service", "rule"),
    [
        ("alice", "acme", ("auditor",), "staging", "", "tools.probe"),
        ("bob", "acme", ("auditor",), "staging", "", "probe-identity"),
        ("alice", "globex", ("auditor",), "staging", "", "probe-identity"),
        ("alice", "acme", ("support",), "staging", "", "probe-identity"),
        ("alice", "acme", (), "staging", "", "probe-identity"),
        ("alice", "acme", ("auditor",), "prod", "", "probe-identity"),
        ("alice", "acme", ("auditor",), "staging", "svc:other", "probe-identity"),
        ("mallory", "acme", ("auditor",), "staging", "", "no-mallory"),
    ],
)
def test_user_tenant_roles_service_principal_and_environment_reach_cedar(
    runtime: Runtime,
    tmp_path: Path,
    user: str,
    tenant: str,
    roles: tuple[str, ...],
    environment: str,
    service: str,
    rule: str,
) -> None:
    principal = Principal(user, tenant, service_principal=service, roles=roles)
    run = runtime.start_run(probe_charter(tmp_path), principal, environment=environment)

    result = call(run, "probe", {})

    assert result.decision.rule_id == rule
    assert result.executed == (rule == "tools.probe")


def test_identity_is_on_every_audit_record_and_on_the_spans(traced: Traced, tmp_path: Path) -> None:
    runtime = traced.runtime

    result = probe_agent(
        runtime, tmp_path, Principal("alice", "acme", roles=("auditor", "support"))
    )

    assert result.outcome == "succeeded"
    assert (result.user, result.tenant) == ("alice", "acme")
    records = list(runtime.audit.records())
    assert [r.entry.kind for r in records] == ["run_started", "tool_call", "run_finished"]
    for record in records:
        entry = record.entry
        assert (entry.user, entry.tenant, entry.environment) == ("alice", "acme", "staging")
        assert entry.service_principal == "agent:test-agent"
        assert entry.roles == ("auditor", "support")
        assert entry.run_id == result.run_id
        assert entry.charter_name == "test-agent"
        assert entry.model == "openai:gpt-4o-mini"
    for row in audit_rows(runtime):  # stored as columns (and roles in the sealed payload)
        assert (row["user"], row["tenant"], row["environment"]) == ("alice", "acme", "staging")
        assert row["service_principal"] == "agent:test-agent"
        assert json.loads(row["payload"])["roles"] == ["auditor", "support"]

    spans = traced.spans()
    [root] = [s for s in spans if s.name == "invoke_agent test-agent"]
    assert root.attributes is not None
    assert root.attributes["charter.user"] == "alice"
    assert root.attributes["charter.tenant"] == "acme"
    assert root.attributes["charter.service_principal"] == "agent:test-agent"
    assert root.attributes["charter.environment"] == "staging"
    assert root.attributes["charter.run_id"] == result.run_id
    [tool_span] = [s for s in spans if s.name == "execute_tool probe"]
    assert tool_span.attributes is not None
    assert tool_span.attributes["charter.tenant"] == "acme"
    assert tool_span.attributes["charter.run_id"] == result.run_id
    assert tool_span.attributes["charter.policy.rule_id"] == "tools.probe"
    assert tool_records(runtime)[0].entry.span_id == format(tool_span.context.span_id, "016x")
