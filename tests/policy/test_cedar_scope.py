"""Per-action policy sets, trimmed contexts and constant decisions agree with full Cedar."""

from __future__ import annotations

import json

import cedarpy
from charter_examples.support_desk.demo import CHARTER_PATH

from charter.contract.loader import Charter
from charter.policy.cedar_engine import CedarEngine
from charter.policy.cedar_scope import CONTEXT_KEYS, scope_policies


def test_context_keys_are_the_attributes_the_applicable_policies_read() -> None:
    text = """
    @id("a") permit(principal, action == Charter::Action::"x", resource)
      when { context.args.n > 1 && context has derived };
    @id("b") forbid(principal, action, resource) when { context.environment == "prod" };
    @id("c") permit(principal, action == Charter::Action::"y", resource);
    """
    scopes = scope_policies(text, ["x", "y", "z"])
    assert scopes["x"].context_keys == {"args", "derived", "environment"}
    assert scopes["y"].context_keys == {"environment"}  # the unscoped forbid applies to all
    assert scopes["z"].context_keys == {"environment"}
    assert '@id("c")' not in scopes["x"].policies
    assert '@id("a")' not in scopes["y"].policies


def test_using_the_whole_context_as_a_value_keeps_every_attribute() -> None:
    text = '@id("w") forbid(principal, action, resource) when { context == {} };'
    assert scope_policies(text, ["x"])["x"].context_keys == CONTEXT_KEYS


def test_action_groups_are_assumed_to_apply() -> None:
    text = '@id("g") forbid(principal, action in [Charter::Action::"x"], resource);'
    assert '@id("g")' in scope_policies(text, ["x", "y"])["y"].policies


def test_constant_only_without_conditions_or_narrowed_principal() -> None:
    text = """
    @id("p") permit(principal, action == Charter::Action::"plain", resource);
    @id("q") permit(
      principal == Charter::User::"alice", action == Charter::Action::"who", resource);
    @id("r") permit(principal, action == Charter::Action::"cond", resource) when { true };
    """
    scopes = scope_policies(text, ["plain", "who", "cond"])
    assert scopes["plain"].constant
    assert not scopes["who"].constant
    assert not scopes["cond"].constant


def test_engine_decisions_match_cedar_on_the_full_policy_set() -> None:
    charter = Charter.load(CHARTER_PATH)
    engine = CedarEngine(charter.cedar_text, charter.rules, charter.tools)
    everything = cedarpy.PolicySet.from_str(charter.cedar_text)
    entities = cedarpy.Entities.from_json_str("[]")
    decimal = {"__extn": {"fn": "decimal", "arg": "350.0000"}}
    full_context = {
        "principal": {
            "user": "alice",
            "tenant": "acme",
            "service_principal": "agent:x",
            "roles": ["support"],
        },
        "environment": "prod",
        "run": {"tool_calls": 1, "total_tokens": 10, "cost_usd": decimal},
        "untrusted_read": True,
        "tainted_any": False,
    }
    samples = {
        "get_ticket": {"ticket_id": "T-1"},
        "delete_record": {"kind": "ticket", "record_id": "T-1"},
        "issue_refund": {"ticket_id": "T-1", "amount_usd": decimal, "account": "acct-1"},
        "send_email": {
            "to": "a@example.com",
            "template": "ticket_update",
            "ticket_id": "T-1",
            "body": "",
        },
    }
    for tool, args in samples.items():
        context = {
            **full_context,
            "args": args,
            "tainted": dict.fromkeys(args, False),
            "derived": {"account_pattern_ok": True, "to_domain": "example.com"},
        }
        request = {
            "principal": {"type": "Charter::User", "id": "alice"},
            "action": {"type": "Charter::Action", "id": tool},
            "resource": {"type": "Charter::Tool", "id": tool},
            "context": context,
        }
        reference = cedarpy.is_authorized(request, everything, entities)
        trimmed = {k: v for k, v in context.items() if k in engine.context_keys(tool)}
        decision = engine.decide(tool, "alice", json.dumps(trimmed))
        assert decision.allowed == reference.allowed, tool
        fired = set(reference.diagnostics.id_annotations_by_reason.values())
        assert decision.rule_id in fired, (tool, decision.rule_id, fired)
