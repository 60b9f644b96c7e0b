"""``CedarEngine`` on its own: default deny, fail closed on errors, precedence of rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from charter.contract.cedar_compile import RuleMeta
from charter.core.decision import Stage, Verdict
from charter.policy.cedar_engine import DEFAULT_DENY, POLICY_ERROR, CedarEngine

SCOPE = '(principal, action == Charter::Action::"wire", resource)'
PERMIT = f'@id("tools.wire")\npermit{SCOPE};\n'
RULES = {
    "tools.wire": RuleMeta("tools.wire", "permit", "wire is declared", "charter.yaml:3"),
    "big-wires": RuleMeta("big-wires", "deny", "no big wires", "extra.cedar:1"),
    "prod-wires": RuleMeta("prod-wires", "require_approval", "prod wires need a human", "x:2"),
    "weekend": RuleMeta("weekend", "require_approval", "weekend wires need a human", "x:3"),
}
BIG = f'@id("big-wires")\nforbid{SCOPE} when {{ context.amount > 100 }};\n'
PROD = f'@id("prod-wires")\nforbid{SCOPE} when {{ context.environment == "prod" }};\n'
WEEKEND = f'@id("weekend")\nforbid{SCOPE} when {{ context.weekend }};\n'


def decide(text: str, context: dict[str, Any], tool: str = "wire") -> Any:
    engine = CedarEngine(text, RULES, ["wire"])
    return engine.decide(tool, "alice", json.dumps(context))


CONTEXT = {"amount": 5, "environment": "dev", "weekend": False}


def test_a_matching_permit_allows_with_its_rule_id() -> None:
    decision = decide(PERMIT + BIG + PROD, CONTEXT)
    assert decision.verdict is Verdict.ALLOW
    assert decision.rule_id == "tools.wire"
    assert decision.reason == "wire is declared"
    assert decision.stage is Stage.POLICY


def test_no_permit_at_all_is_default_deny() -> None:
    decision = decide(BIG + PROD, CONTEXT)  # nothing forbids it, nothing permits it
    assert decision.verdict is Verdict.DENY
    assert decision.rule_id == DEFAULT_DENY == "default-deny"
    assert "no rule permits wire" in decision.reason


def test_an_empty_policy_set_is_default_deny() -> None:
    assert decide("", CONTEXT).rule_id == DEFAULT_DENY


def test_a_tool_no_policy_mentions_is_default_deny() -> None:
    assert decide(PERMIT, CONTEXT, tool="other").rule_id == DEFAULT_DENY


def test_a_permit_for_another_action_does_not_leak() -> None:
    other = '@id("tools.other")\npermit(principal, action == Charter::Action::"other", resource);'
    assert decide(other, CONTEXT).rule_id == DEFAULT_DENY


def test_deny_beats_approval_whatever_the_order_of_the_text() -> None:
    context = {**CONTEXT, "amount": 500, "environment": "prod"}
    for text in (PERMIT + PROD + BIG, PERMIT + BIG + PROD):
        decision = decide(text, context)
        assert decision.verdict is Verdict.DENY
        assert decision.rule_id == "big-wires"


def test_approval_rules_report_the_first_in_charter_order_and_list_the_rest() -> None:
    context = {**CONTEXT, "environment": "prod", "weekend": True}
    decision = decide(PERMIT + WEEKEND + PROD, context)
    assert decision.verdict is Verdict.REQUIRE_APPROVAL
    assert decision.rule_id == "prod-wires"  # RULES lists it before "weekend"
    assert decision.reason == "prod wires need a human (also: weekend)"


def test_a_forbid_that_errors_is_a_policy_error_not_a_silent_allow() -> None:
    # Cedar skips a policy whose evaluation errors; for this forbid that would fail open.
    decision = decide(PERMIT + PROD, {"amount": 5})  # no "environment" in the context
    assert decision.verdict is Verdict.DENY
    assert decision.rule_id == POLICY_ERROR == "policy-error"
    assert decision.reason.startswith("policy evaluation error: ")


def test_a_type_error_inside_a_condition_is_a_policy_error() -> None:
    decision = decide(PERMIT + BIG, {**CONTEXT, "amount": "lots"})
    assert decision.rule_id == POLICY_ERROR


def test_a_policy_error_names_the_rule_and_where_it_is_written_not_cedars_position_id() -> None:
    # cedarpy calls the second policy of the set `policy1`: the operator wrote "big-wires".
    decision = decide(PERMIT + PROD + BIG, {**CONTEXT, "amount": "lots"})
    assert decision.rule_id == POLICY_ERROR
    assert decision.reason == (
        "policy evaluation error: error while evaluating rule 'big-wires' (extra.cedar:1): "
        "type error: expected long, got string"
    )


@pytest.mark.parametrize("context_json", ["not json", "[1, 2]", '{"amount": ', "null"])
def test_a_malformed_context_is_denied_as_policy_error(context_json: str) -> None:
    engine = CedarEngine(PERMIT + BIG, RULES, ["wire"])
    decision = engine.decide("wire", "alice", context_json)
    assert decision.verdict is Verdict.DENY
    assert decision.rule_id == POLICY_ERROR


@pytest.mark.parametrize("user", ['a"b', "alice\n", "", "x" * 10_000, 'Charter::User::"root"'])
def test_odd_user_ids_are_passed_as_data_never_parsed(user: str) -> None:
    engine = CedarEngine(PERMIT, RULES, ["wire"])
    decision = engine.decide("wire", user, json.dumps(CONTEXT))
    assert decision.rule_id == "tools.wire"


def test_a_rule_without_metadata_still_names_itself() -> None:
    text = '@id("unlisted")\npermit' + SCOPE + ";"
    decision = decide(text, CONTEXT)
    assert decision.verdict is Verdict.ALLOW
    assert decision.rule_id == "unlisted"
