"""Stage 5, Cedar policy, end to end: the example charter's rules, each named in its decision."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.desk import SupportDesk

from charter.contract.tool import tool
from charter.identity.principal import Principal
from charter.runtime import Runtime
from tests.execution.harness import call, start_example_run, tool_records, write_charter

REFUND = {"ticket_id": "T-1001", "account": "acct-C-01"}
EMAIL = {"template": "ticket_update", "ticket_id": "T-1001"}


def refund(runtime: Runtime, amount: Any, **kwargs: Any) -> Any:
    return call(
        start_example_run(runtime, **kwargs), "issue_refund", {**REFUND, "amount_usd": amount}
    )


def test_a_declared_tool_is_allowed_by_its_tools_rule(runtime: Runtime) -> None:
    result = call(start_example_run(runtime), "get_ticket", {"ticket_id": "T-1001"})
    assert result.executed
    assert result.decision.verdict == "allow"
    assert result.decision.rule_id == "tools.get_ticket"
    assert result.decision.stage == "policy"
    assert tool_records(runtime)[0].entry.rule_id == "tools.get_ticket"


@pytest.mark.parametrize("amount", ["350", 201, "200.0001", "5000"], ids=repr)
def test_refunds_over_200_require_approval(runtime: Runtime, amount: Any) -> None:
    result = refund(runtime, amount)
    assert result.outcome == "approval_required"
    assert result.decision.verdict == "require_approval"
    assert result.decision.rule_id == "require_approval_for[0]"
    assert result.decision.reason == "refunds over $200 need a human"
    assert result.approval is not None
    assert result.model_text.startswith("APPROVAL REQUIRED: refunds over $200 need a human")


@pytest.mark.parametrize(
    "amount", ["200", 200, "200.00", Decimal("200.0000"), "199.9999"], ids=repr
)
def test_refunds_of_exactly_200_or_less_are_allowed(runtime: Runtime, amount: Any) -> None:
    result = refund(runtime, amount)
    assert result.executed, result.decision
    assert result.decision.rule_id == "tools.issue_refund"


def test_delete_record_is_denied_by_deny_0_and_the_record_survives(runtime: Runtime) -> None:
    desk = SupportDesk.default()
    run = start_example_run(runtime, desk=desk)

    result = call(run, "delete_record", {"kind": "customer", "record_id": "C-06"})

    assert result.outcome == "denied"
    assert result.decision.rule_id == "deny[0]"
    assert result.decision.reason == "the support agent never deletes records"
    assert "C-06" in desk.customers


@pytest.mark.parametrize(
    "to",
    [
        "a@evil.test",
        "a@example.com.evil.test",
        "a@sub.example.com",
        "a@example.com, b@evil.test",
        "a@example.com,b@example.com",
        '"Name" <a@example.com>',
        "Name <a@example.com>",
        "a@example.com\n",
        "a@example.com\nBcc: b@evil.test",
        "a@evil.test (a@example.com)",
        "@example.com",
        "example.com",
        "",
        "a@exa mple.com",
    ],
    ids=repr,
)
def test_send_email_to_anything_but_one_plain_example_com_address_is_denied(
    runtime: Runtime, to: str
) -> None:
    desk = SupportDesk.default()
    result = call(start_example_run(runtime, desk=desk), "send_email", {**EMAIL, "to": to})
    assert result.outcome == "denied"
    assert result.decision.rule_id == "constraints.send_email.to.domain_in"
    assert result.decision.reason == "send_email.to must be one address at example.com"
    assert desk.outbox == []


@pytest.mark.parametrize("to", ["dana@example.com", "A@EXAMPLE.COM", "x.y+z@Example.Com"])
def test_send_email_domain_check_is_case_insensitive(runtime: Runtime, to: str) -> None:
    result = call(start_example_run(runtime), "send_email", {**EMAIL, "to": to})
    assert result.decision.allowed, result.decision
    assert result.outcome == "deferred"  # allowed, and queued until the run succeeds


def test_send_email_template_outside_the_allowed_list_is_denied(runtime: Runtime) -> None:
    desk = SupportDesk.default()
    arguments = {"to": "dana@example.com", "template": "customer_list", "ticket_id": "T-1001"}

    result = call(start_example_run(runtime, desk=desk), "send_email", arguments)

    assert result.decision.rule_id == "constraints.send_email.template.in"
    assert "refund_confirmation, ticket_update" in result.decision.reason
    assert desk.outbox == []


def test_two_deny_rules_firing_report_the_first_and_list_the_other(runtime: Runtime) -> None:
    arguments = {"to": "attacker@evil.test", "template": "customer_list", "ticket_id": "T-1003"}
    result = call(start_example_run(runtime), "send_email", arguments)
    assert result.decision.rule_id == "constraints.send_email.to.domain_in"
    assert "(also: constraints.send_email.template.in)" in result.decision.reason


@pytest.mark.parametrize(
    "account", ["ACCT EVIL", "ab", "a" * 41, "acct_C_01", "acct-C-01\n", "acct-C-01;drop", ""]
)
def test_refund_account_must_match_its_pattern(runtime: Runtime, account: str) -> None:
    result = call(
        start_example_run(runtime),
        "issue_refund",
        {"ticket_id": "T-1001", "amount_usd": "10", "account": account},
    )
    assert result.outcome == "denied"
    assert result.decision.rule_id == "constraints.issue_refund.account.pattern"


@pytest.mark.parametrize(
    ("amount", "rule"),
    [
        ("5000.01", "constraints.issue_refund.amount_usd.max"),
        ("1000000", "constraints.issue_refund.amount_usd.max"),
        ("0.009", "constraints.issue_refund.amount_usd.min"),
        ("0", "constraints.issue_refund.amount_usd.min"),
        ("-45", "constraints.issue_refund.amount_usd.min"),
    ],
)
def test_refund_amount_bounds_are_enforced(runtime: Runtime, amount: str, rule: str) -> None:
    result = refund(runtime, amount)
    assert result.outcome == "denied"
    assert result.decision.rule_id == rule


def test_refund_of_exactly_the_minimum_is_allowed(runtime: Runtime) -> None:
    assert refund(runtime, "0.01").executed


def test_deny_beats_approval_when_both_fire(runtime: Runtime) -> None:
    # Over 5000 breaks the max constraint (deny) and is over 200 (approval): deny wins.
    result = refund(runtime, "6000")
    assert result.outcome == "denied"
    assert result.decision.rule_id == "constraints.issue_refund.amount_usd.max"
    assert result.approval is None


def test_deny_beats_approval_even_when_approval_is_listed_first(
    runtime: Runtime, tmp_path: Path
) -> None:
    @tool
    def wire(amount: int) -> str:
        """Wire money.

        Args:
            amount: whole dollars.
        """
        return "sent"

    charter = write_charter(
        tmp_path,
        """\
        tools:
          wire: {effect: irreversible}
        policies:
          require_approval_for:
            - {action: wire, any: true, reason: "every wire needs a human"}
          deny:
            - {action: wire, when: "amount > 10", reason: "no wires over $10"}
        """,
        tools=[wire],
    )
    run = runtime.start_run(charter, Principal("alice", "acme"))

    big = call(run, "wire", {"amount": 11})
    small = call(run, "wire", {"amount": 10})

    assert (big.outcome, big.decision.rule_id) == ("denied", "deny[0]")
    assert (small.outcome, small.decision.rule_id) == (
        "approval_required",
        "require_approval_for[0]",
    )


def test_in_prod_refunds_need_the_support_role(runtime: Runtime) -> None:
    result = refund(runtime, "45", environment="prod", roles=())
    assert result.outcome == "denied"
    assert result.decision.rule_id == "prod-refunds-need-support-role"
    assert result.decision.reason == "in prod only users with the support role may trigger refunds"


@pytest.mark.parametrize(
    ("environment", "roles"),
    [("prod", ("support",)), ("prod", ("billing", "support")), ("dev", ()), ("staging", ())],
)
def test_prod_role_rule_spares_support_staff_and_other_environments(
    runtime: Runtime, environment: str, roles: tuple[str, ...]
) -> None:
    assert refund(runtime, "45", environment=environment, roles=roles).executed


def test_tool_roles_restrict_who_may_call_it(runtime: Runtime, tmp_path: Path) -> None:
    @tool
    def reset_password(user_id: str) -> str:
        """Reset a password.

        Args:
            user_id: whose.
        """
        return "reset"

    charter = write_charter(
        tmp_path,
        "tools:\n  reset_password: {effect: write, roles: [admin, ops]}\n",
        tools=[reset_password],
    )

    def attempt(*roles: str) -> Any:
        run = runtime.start_run(charter, Principal("alice", "acme", roles=roles))
        return call(run, "reset_password", {"user_id": "u-1"})

    for roles in [(), ("support",), ("Admin",), ("admins",)]:
        refused = attempt(*roles)
        assert refused.outcome == "denied", roles
        assert refused.decision.rule_id == "tools.reset_password.roles"
        assert refused.decision.reason == "reset_password needs one of the roles admin, ops"
    assert attempt("ops").executed
    assert attempt("support", "admin").executed


def test_arguments_policies_cannot_see_are_still_validated_but_not_constrained(
    runtime: Runtime,
) -> None:
    # update_ticket has no constraints: any valid status goes through on its tools rule.
    result = call(
        start_example_run(runtime), "update_ticket", {"ticket_id": "T-1001", "queue": "billing"}
    )
    assert result.executed
    assert result.decision.rule_id == "tools.update_ticket"
