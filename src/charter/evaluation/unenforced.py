"""The charter with its enforcement switched off, for ``charter eval --no-enforce`` only.

An eval of the unenforced charter shows what the agent does when nothing stops it; its
security tasks must fail, which proves they can. What is removed is every rule that says
no or not yet: policies (approval, deny, untrusted content, Cedar; a refusal no longer
stops the run), argument constraints, per-tool roles, and the spending budgets (tokens,
calls, USD). Kept: the tool list (the toolkit the agent can reach), each tool's argument
schema (a tool cannot take arguments it does not have), effects semantics (defer,
compensate), credentials and time limits, so runs behave like runs and still end.
Reports of such a run say UNSAFE, and the gate never passes one.
"""

from __future__ import annotations

from typing import Any

from charter.contract.loader import Charter, derive_charter

__all__ = ["without_enforcement"]


def without_enforcement(charter: Charter) -> Charter:
    """A copy of ``charter`` that allows every call to its declared tools."""
    data: dict[str, Any] = charter.spec.dump()
    # An unguarded agent also carries on after a refusal (the tool's own argument schema
    # still refuses what the tool cannot take).
    data["policies"] = {"on_deny": "continue"}
    data.pop("evals", None)
    budgets = data.get("budgets", {})
    data["budgets"] = {"timeouts": budgets["timeouts"]} if "timeouts" in budgets else {}
    for decl in data["tools"].values():
        decl.pop("constraints", None)
        decl.pop("roles", None)
    label = f"{charter.path} (enforcement off)"
    return derive_charter(charter, data, label=label)
