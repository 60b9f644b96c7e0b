"""Building the Cedar request context for one tool call (see ``contract.cedar_compile``).

The context is always complete (every declared attribute present) because Cedar skips a
policy whose evaluation errors on a missing attribute, and a skipped ``forbid`` fails open.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from charter.contract.cedar_compile import DerivedFact
from charter.contract.conditions import CedarType
from charter.policy.budget import BudgetTotals
from charter.policy.taint import TaintReport

__all__ = ["build_context", "cedar_decimal", "email_domain"]

_FOUR = Decimal("0.0001")
# One plain address, nothing else: no display names, lists, comments or quoted local parts.
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@([A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,63})")


def cedar_decimal(value: Decimal | float | int) -> dict[str, Any]:
    amount = value if isinstance(value, Decimal) else Decimal(repr(value))
    return {"__extn": {"fn": "decimal", "arg": format(amount.quantize(_FOUR), "f")}}


def email_domain(value: str) -> str:
    """The lower-cased domain of exactly one plain e-mail address, or ``""``."""
    match = _EMAIL.fullmatch(value)
    return match.group(1).lower() if match else ""


def build_context(
    *,
    keys: frozenset[str],
    arguments: Mapping[str, Any],
    visible: Mapping[str, tuple[CedarType, bool]],
    derived: tuple[DerivedFact, ...],
    principal: Mapping[str, Any],
    environment: str,
    totals: Callable[[], BudgetTotals],
    taint: Callable[[], TaintReport],
) -> str:
    """The serialized context of one request, holding only the attributes in ``keys``.

    ``args`` holds the ``visible`` arguments (those Cedar has a type for); ``tainted`` and
    ``tainted_any`` are over whatever ``taint`` reports on, which must be every argument of
    the call, nested values included: a value copied from untrusted content reaches a sink
    as well inside a list of records as in a string. ``totals`` and ``taint`` are computed
    only when a policy reads them.
    """
    context: dict[str, Any] = {}
    if "args" in keys:
        args: dict[str, Any] = {}
        for name, (cedar_type, _required) in visible.items():
            value = arguments.get(name)
            if value is None:
                continue  # optional and absent: policies test it with `has`
            args[name] = cedar_decimal(value) if cedar_type == "Decimal" else value
        context["args"] = args
    if "principal" in keys:
        context["principal"] = principal
    if "environment" in keys:
        context["environment"] = environment
    if "run" in keys:
        spent = totals()
        context["run"] = {
            "tool_calls": spent.tool_calls,
            "total_tokens": spent.total_tokens,
            "cost_usd": cedar_decimal(spent.cost_usd),
        }
    if keys & {"untrusted_read", "tainted_any", "tainted"}:
        report = taint()
        context["untrusted_read"] = report.untrusted_read
        context["tainted_any"] = report.any
        context["tainted"] = report.tainted
    if "derived" in keys:
        context["derived"] = _derived_facts(arguments, derived)
    return json.dumps(context, separators=(",", ":"))


def _derived_facts(
    arguments: Mapping[str, Any], derived: tuple[DerivedFact, ...]
) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for fact in derived:
        value = arguments.get(fact.argument)
        text = value if isinstance(value, str) else ""
        if fact.kind == "domain":
            facts[fact.name] = email_domain(text)
        elif fact.kind == "length":
            facts[fact.name] = len(text)
        else:
            # RE2, compiled at load: linear in the value, whatever the pattern (see
            # core.patterns); a value too long to judge does not match, so it is denied.
            facts[fact.name] = fact.pattern is not None and fact.pattern.matches(text)
    return facts
