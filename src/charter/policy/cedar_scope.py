"""Which policies apply to which action, and which context attributes they read.

Cedar spends most of a decision building the request from its context (about 1 µs per
attribute here), so each action gets only the policies that can apply to it and a context
holding only the top-level attributes those policies read. The analysis walks Cedar's own
JSON form of the policies, so it cannot disagree with Cedar about what a policy says.

Trimming is fail-safe: a policy that reads an attribute we failed to send errors, and an
evaluation error is a deny (see ``cedar_engine``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from charter.contract.cedar_text import policies_from_json, policies_json

__all__ = ["CONTEXT_KEYS", "ActionScope", "scope_policies"]

CONTEXT_KEYS = frozenset(
    {
        "args",
        "principal",
        "environment",
        "run",
        "untrusted_read",
        "tainted_any",
        "tainted",
        "derived",
    }
)


@dataclass(frozen=True, slots=True)
class ActionScope:
    """One action's policy text and the context attributes it needs.

    ``constant`` is true when no applicable policy has a condition or narrows its principal
    or resource: the decision is then the same for every request of this action.
    """

    policies: str
    context_keys: frozenset[str]
    constant: bool


def scope_policies(cedar_text: str, actions: Iterable[str]) -> dict[str, ActionScope]:
    """Split ``cedar_text`` per action (``Charter::Action::"<name>"``)."""
    parsed = policies_json(cedar_text)
    policies: dict[str, Any] = parsed.get("staticPolicies", {})
    result: dict[str, ActionScope] = {}
    for action in actions:
        texts: list[str] = []
        keys: set[str] = set()
        constant = True
        for policy in policies.values():
            if not _applies(policy["action"], action):
                continue
            single = {"staticPolicies": {"p": policy}, "templates": {}, "templateLinks": []}
            texts.append(policies_from_json(single))
            keys |= _context_reads(policy.get("conditions", []))
            constant = (
                constant
                and not policy.get("conditions")
                and all(
                    policy.get(part, {}).get("op") == "All" for part in ("principal", "resource")
                )
            )
        result[action] = ActionScope("\n".join(texts), frozenset(keys), constant)
    return result


def _applies(scope: dict[str, Any], action: str) -> bool:
    if scope.get("op") == "==":
        entity = scope.get("entity", {})
        return bool(entity.get("id") == action)
    # "All", "in" (action groups or lists) and anything newer: assume it may apply.
    return True


def _context_reads(node: Any) -> set[str]:
    """Top-level context attributes read anywhere in ``node`` (all of them if unsure)."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        for op in (".", "has"):
            access = item.get(op)
            if isinstance(access, dict) and access.get("left") == {"Var": "context"}:
                found.add(str(access.get("attr")))
                item = {k: v for k, v in item.items() if k != op}
        if item.get("Var") == "context":
            return set(CONTEXT_KEYS)  # the whole context is used as a value
        stack.extend(item.values())
    return found
