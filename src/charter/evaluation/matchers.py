"""Value matchers shared by checks: ``equals: 45``, ``contains: refund``, ``domain_in: [...]``.

A matcher is written in a suite either as a plain value (it must equal) or as a mapping with
exactly one operator. Numbers compare as exact decimals whatever their JSON type, so
``amount_usd: 45`` matches the executed ``Decimal("45.00")`` and the state's ``"45.00"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from charter.core.errors import PatternInvalid
from charter.core.patterns import UserPattern, compile_pattern

__all__ = ["OPERATORS", "Matcher", "MatcherError"]

# operator -> what its argument must be ("value", "list", "number", "text", "bool")
OPERATORS: dict[str, str] = {
    "equals": "value",
    "not_equals": "value",
    "contains": "value",
    "not_contains": "value",
    "matches": "text",
    "in": "list",
    "not_in": "list",
    "domain_in": "list",
    "domain_not_in": "list",
    "gt": "number",
    "gte": "number",
    "lt": "number",
    "lte": "number",
    "length": "number",
    "exists": "bool",
}
_MAX_PATTERN = 500


class MatcherError(ValueError):
    """A matcher is written wrongly; the message says how to write it."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """One operator and its argument. ``test`` never raises on odd actual values.

    ``matches`` runs its regular expression on RE2 (``core.patterns``), compiled once here:
    the text it is tested on is what an agent wrote, which an attacker can steer.
    """

    operator: str
    expected: Any
    pattern: UserPattern | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.operator == "matches" and self.pattern is None:
            object.__setattr__(self, "pattern", compile_pattern(self.expected, full=False))

    @classmethod
    def parse(cls, spec: Any) -> Matcher:
        """A plain value means ``equals``; a one-key mapping names the operator."""
        if not isinstance(spec, Mapping):
            return cls("equals", spec)
        if len(spec) != 1:
            raise MatcherError(
                f"a matcher has exactly one operator, got {sorted(map(str, spec)) or 'none'}; "
                f"write e.g. {{contains: 'refund'}} (operators: {', '.join(OPERATORS)})"
            )
        ((operator, expected),) = spec.items()
        kind = OPERATORS.get(str(operator))
        if kind is None:
            raise MatcherError(
                f"unknown matcher operator {operator!r}; use one of {', '.join(OPERATORS)}"
            )
        if kind == "list" and not (isinstance(expected, Sequence) and not _is_text(expected)):
            raise MatcherError(f"{operator!r} takes a list, got {expected!r}")
        if kind == "number" and _number(expected) is None:
            raise MatcherError(f"{operator!r} takes a number, got {expected!r}")
        if kind == "bool" and not isinstance(expected, bool):
            raise MatcherError(f"{operator!r} takes true or false, got {expected!r}")
        if kind == "text":
            if not isinstance(expected, str):
                raise MatcherError(f"{operator!r} takes a regular expression (text)")
            if len(expected) > _MAX_PATTERN:
                raise MatcherError(
                    f"{operator!r}: regular expression is {len(expected)} characters long, "
                    f"at most {_MAX_PATTERN} allowed"
                )
            try:
                return cls(str(operator), expected, compile_pattern(expected, full=False))
            except PatternInvalid as exc:
                raise MatcherError(f"{operator!r}: bad regular expression: {exc}") from None
        return cls(str(operator), expected)

    def describe(self) -> str:
        return f"{self.operator} {self.expected!r}"

    def test(self, actual: Any, *, present: bool = True) -> bool:
        """Whether ``actual`` satisfies the matcher; ``present`` is False for a missing value."""
        if self.operator == "exists":
            return present is self.expected
        if not present:
            # Only "this must not be so" operators hold for a value that is not there.
            return self.operator in ("not_equals", "not_contains", "not_in", "domain_not_in")
        if self.operator == "matches":
            return (
                isinstance(actual, str)
                and self.pattern is not None
                and (self.pattern.matches(actual))
            )
        return bool(_TESTS[self.operator](actual, self.expected))


def _is_text(value: Any) -> bool:
    return isinstance(value, str | bytes)


def _number(value: Any) -> Decimal | None:
    """The exact decimal of a number or numeric text; None for anything else, booleans and
    NaN/infinity included (a NaN would make comparisons raise)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() else None


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        # true is not 1 (Python says it is; a suite's `equals: 1` means the number).
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    a, e = _number(actual), _number(expected)
    if a is not None and e is not None and not (isinstance(actual, str) and _is_text(expected)):
        return a == e
    if isinstance(actual, str) and isinstance(expected, str):
        return actual == expected
    if isinstance(actual, list | tuple) and isinstance(expected, list | tuple):
        return len(actual) == len(expected) and all(map(_equal, actual, expected))
    if isinstance(actual, Mapping) and isinstance(expected, Mapping):
        return actual.keys() == expected.keys() and all(
            _equal(actual[k], expected[k]) for k in actual
        )
    return bool(actual == expected)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return str(expected) in actual
    if isinstance(actual, Mapping):
        return str(expected) in actual
    if isinstance(actual, list | tuple):
        return any(_equal(item, expected) for item in actual)
    return False


def _compare(actual: Any, expected: Any, op: str) -> bool:
    a, e = _number(actual), _number(expected)
    if a is None or e is None:
        return False
    return {"gt": a > e, "gte": a >= e, "lt": a < e, "lte": a <= e}[op]


def _length(actual: Any, expected: Any) -> bool:
    if not isinstance(actual, str | list | tuple | Mapping):
        return False
    return Decimal(len(actual)) == _number(expected)


def _domain(actual: Any) -> str | None:
    if not isinstance(actual, str) or "@" not in actual:
        return None
    return actual.rsplit("@", 1)[1].strip().casefold()


def _domain_in(actual: Any, expected: Sequence[Any]) -> bool:
    domain = _domain(actual)
    return domain is not None and domain in {str(d).casefold() for d in expected}


_TESTS: dict[str, Any] = {
    "equals": _equal,
    "not_equals": lambda a, e: not _equal(a, e),
    "contains": _contains,
    "not_contains": lambda a, e: not _contains(a, e),
    "in": lambda a, e: any(_equal(a, item) for item in e),
    "not_in": lambda a, e: not any(_equal(a, item) for item in e),
    "domain_in": _domain_in,
    "domain_not_in": lambda a, e: not _domain_in(a, e),
    "gt": lambda a, e: _compare(a, e, "gt"),
    "gte": lambda a, e: _compare(a, e, "gte"),
    "lt": lambda a, e: _compare(a, e, "lt"),
    "lte": lambda a, e: _compare(a, e, "lte"),
    "length": _length,
}
