"""Cedar decisions: pre-parsed policies in, a ``Decision`` with its rule id out.

A matching ``forbid`` means deny or require approval depending on the rule (see
``contract.cedar_compile.RuleMeta``); deny wins over approval, and among rules of one kind the
first in the charter is reported (the others are listed in the reason). No matching ``permit``
means deny by default. Any evaluation error means deny: Cedar skips a policy that errors,
which for a ``forbid`` would fail open, so we refuse to trust a decision that came with errors.
The error's reason names the rule by its ``@id`` and source, never by cedarpy's position id
(``policy0``), which depends on how the policies were split per action.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import cedarpy

from charter.contract.cedar_checks import rule_label
from charter.contract.cedar_compile import NAMESPACE, RuleMeta
from charter.contract.cedar_text import name_policies, policy_ids, policy_set
from charter.core.decision import Decision, Stage, Verdict
from charter.policy.cedar_scope import CONTEXT_KEYS, scope_policies

__all__ = ["DEFAULT_DENY", "POLICY_ERROR", "CedarEngine"]

DEFAULT_DENY = "default-deny"
POLICY_ERROR = "policy-error"


class CedarEngine:
    """Evaluates one charter's policies. Thread-safe: it holds only immutable handles."""

    def __init__(
        self, cedar_text: str, rules: Mapping[str, RuleMeta], actions: Iterable[str]
    ) -> None:
        self._scopes = scope_policies(cedar_text, actions)
        self._policies = {
            action: policy_set(scope.policies) for action, scope in self._scopes.items()
        }
        self._empty = policy_set("")
        self._entities = cedarpy.Entities.from_json_str("[]")
        self._rules = dict(rules)
        # cedarpy names the policies of each action's set by position: what each means.
        self._labels = {
            action: {
                position: rule_label(rule_id, self._rules.get(rule_id))
                for position, rule_id in policy_ids(scope.policies).items()
            }
            for action, scope in self._scopes.items()
        }
        # Precedence among rules that fire together: the order they appear in the charter.
        self._order = {rule_id: index for index, rule_id in enumerate(self._rules)}
        # Actions whose policies have no conditions decide the same way for every request
        # (e.g. a read tool that is simply declared): ask Cedar once, here, not per call.
        self._constant = {
            action: self._evaluate(action, "any", "{}")
            for action, scope in self._scopes.items()
            if scope.constant
        }

    def context_keys(self, tool: str) -> frozenset[str]:
        """The context attributes the policies of ``tool`` read (see ``cedar_scope``)."""
        scope = self._scopes.get(tool)
        return scope.context_keys if scope is not None else CONTEXT_KEYS

    def decide(self, tool: str, user: str, context_json: str) -> Decision:
        """Decide one request; ``context_json`` is the serialized request context."""
        constant = self._constant.get(tool)
        if constant is not None:
            return constant
        return self._evaluate(tool, user, context_json)

    def _evaluate(self, tool: str, user: str, context_json: str) -> Decision:
        request = {
            # Structured UIDs avoid Cedar's surface parser: 4x cheaper, and safe for any id.
            "principal": {"type": f"{NAMESPACE}::User", "id": user},
            "action": {"type": f"{NAMESPACE}::Action", "id": tool},
            "resource": {"type": f"{NAMESPACE}::Tool", "id": tool},
            "context": context_json,
        }
        try:
            policies = self._policies.get(tool, self._empty)
            result = cedarpy.is_authorized(request, policies, self._entities)
        except Exception as exc:  # malformed request: never allow on a broken evaluation
            reason = name_policies(str(exc), self._labels.get(tool, {}))
            return Decision.deny(Stage.POLICY, f"policy evaluation failed: {reason}", POLICY_ERROR)
        diagnostics = result.diagnostics
        if diagnostics.errors:
            reason = name_policies(str(diagnostics.errors[0]), self._labels.get(tool, {}))
            return Decision.deny(Stage.POLICY, f"policy evaluation error: {reason}", POLICY_ERROR)
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
        for effect in ("deny", "require_approval"):
            fired = sorted(
                (m for m in matched if m.effect == effect), key=lambda m: self._order[m.rule_id]
            )
            if fired:
                verdict = Verdict.DENY if effect == "deny" else Verdict.REQUIRE_APPROVAL
                reason = fired[0].reason
                if len(fired) > 1:
                    reason += f" (also: {', '.join(m.rule_id for m in fired[1:])})"
                return Decision(verdict, reason, fired[0].rule_id, Stage.POLICY)
        return Decision.deny(Stage.POLICY, f"no rule permits {tool} for this request", DEFAULT_DENY)
