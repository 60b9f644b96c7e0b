"""Cedar decisions: pre-parsed policies in, a ``Decision`` with its rule id out.

A matching ``forbid`` means deny or require approval depending on the rule (see
``contract.cedar_compile.RuleMeta``); deny wins over approval. No matching ``permit`` means
deny by default. Any evaluation error means deny: Cedar skips a policy that errors, which for a
``forbid`` would fail open, so we refuse to trust a decision that came with errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cedarpy

from charter.contract.cedar_compile import NAMESPACE, RuleMeta
from charter.core.decision import Decision, Stage, Verdict

__all__ = ["DEFAULT_DENY", "POLICY_ERROR", "CedarEngine"]

DEFAULT_DENY = "default-deny"
POLICY_ERROR = "policy-error"


class CedarEngine:
    """Evaluates one charter's policies. Thread-safe: it holds only immutable handles."""

    def __init__(self, cedar_text: str, rules: Mapping[str, RuleMeta]) -> None:
        self._policies = cedarpy.PolicySet.from_str(cedar_text)
        self._entities = cedarpy.Entities.from_json_str("[]")
        self._rules = dict(rules)

    def decide(self, tool: str, user: str, context_json: str) -> Decision:
        """Decide one request; ``context_json`` is the serialized request context."""
        request = {
            # Structured UIDs avoid Cedar's surface parser: 4x cheaper, and safe for any id.
            "principal": {"type": f"{NAMESPACE}::User", "id": user},
            "action": {"type": f"{NAMESPACE}::Action", "id": tool},
            "resource": {"type": f"{NAMESPACE}::Tool", "id": tool},
            "context": context_json,
        }
        try:
            result = cedarpy.is_authorized(request, self._policies, self._entities)
        except Exception as exc:  # malformed request: never allow on a broken evaluation
            return Decision.deny(Stage.POLICY, f"policy evaluation failed: {exc}", POLICY_ERROR)
        diagnostics = result.diagnostics
        if diagnostics.errors:
            return Decision.deny(
                Stage.POLICY, f"policy evaluation error: {diagnostics.errors[0]}", POLICY_ERROR
            )
        by_reason: dict[str, str] = diagnostics.id_annotations_by_reason
        matched = [self._rules[rid] for rid in by_reason.values() if rid in self._rules]
        if result.allowed:
            rule = matched[0] if matched else None
            return Decision(
                Verdict.ALLOW,
                rule.reason if rule else "permitted",
                rule.rule_id if rule else ",".join(by_reason.values()),
                Stage.POLICY,
            )
        denials = sorted((m for m in matched if m.effect == "deny"), key=lambda m: m.rule_id)
        if denials:
            return Decision(Verdict.DENY, denials[0].reason, denials[0].rule_id, Stage.POLICY)
        approvals = sorted(
            (m for m in matched if m.effect == "require_approval"), key=lambda m: m.rule_id
        )
        if approvals:
            return Decision(
                Verdict.REQUIRE_APPROVAL, approvals[0].reason, approvals[0].rule_id, Stage.POLICY
            )
        return Decision.deny(Stage.POLICY, f"no rule permits {tool} for this request", DEFAULT_DENY)
