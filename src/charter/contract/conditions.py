"""The small condition language of ``when:`` and its compilation to Cedar.

    amount_usd > 200
    amount_usd > 200 and environment == "prod"
    template in ["refund_confirmation", "ticket_update"] or not untrusted_read
    "support" in principal.roles

Names are the tool's arguments (or ``args.<name>``), ``principal.user|tenant|
service_principal|roles``, ``environment``, ``run.tool_calls|total_tokens|cost_usd``,
``untrusted_read``, ``tainted_any`` and ``tainted.<argument>`` (any argument of the tool, also
one whose value Cedar cannot type). Operators: ``> >= < <= == != in like``, ``and or not`` and
parentheses. It is parsed by hand, never evaluated by Python, and type-checked against the
tool's argument schema so a typo fails at load time. An argument may be named like a Cedar
keyword (``then``, ``like``) or in any script: it compiles to the form Cedar reads whatever
the name (``contract.cedar_text.cedar_attribute``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Literal

from charter.contract.cedar_text import cedar_attribute, cedar_has, cedar_string

__all__ = [
    "DECIMAL_LIMIT",
    "MAX_DEPTH",
    "MAX_TOKENS",
    "CedarType",
    "ConditionError",
    "compile_condition",
    "decimal_literal",
]

# The parser recurses once per parenthesis, bracket and `not`: deeper conditions would hit
# Python's recursion limit, and compile to Cedar deeper than Cedar parses safely
# (contract.cedar_text). Real conditions nest two or three levels and have a few dozen tokens.
MAX_DEPTH = 16
MAX_TOKENS = 2_000
#: Cedar's decimal is a 64-bit integer of ten-thousandths.
DECIMAL_LIMIT = Decimal("922337203685477.5807")

CedarType = Literal["String", "Long", "Decimal", "Bool", "SetString", "SetLong"]


class ConditionError(ValueError):
    """A condition that cannot be parsed or type-checked; ``hint`` says how to fix it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["num", "str", "name", "op", "lparen", "rparen", "lbrack", "rbrack", "comma"]
    text: str
    pos: int


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>-?\d+(?:\.\d+)?)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>>=|<=|==|!=|>|<)
      | (?P<name>[^\W\d]\w*(?:\.[^\W\d]\w*)*)     # identifiers, as Python's (größe)
      | (?P<lparen>\() | (?P<rparen>\)) | (?P<lbrack>\[) | (?P<rbrack>\]) | (?P<comma>,)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "like", "true", "false"}


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    end = len(text.rstrip())  # not a test of the rest at each token: that is quadratic
    while pos < end:
        if len(tokens) >= MAX_TOKENS:
            raise ConditionError(
                f"the condition has more than {MAX_TOKENS} words and symbols",
                "split it into several rules, or use `in [...]` for long lists",
            )
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            bad = text[pos:].lstrip()[:1]
            raise ConditionError(
                f"unexpected character {bad!r} in condition {text!r}",
                "use names, numbers, quoted strings and > >= < <= == != in",
            )
        kind = match.lastgroup
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))  # type: ignore[arg-type]
        pos = match.end()
    return tokens


@dataclass(frozen=True, slots=True)
class _Typed:
    cedar: str
    type: CedarType
    guard: str | None = None  # a `has` test that must hold for the value to exist


@dataclass(frozen=True, slots=True)
class Environment:
    """The names a condition may use, with their Cedar types, for one tool.

    ``arguments`` are those whose values policies can read (name -> (type, required));
    ``every`` names all the tool's arguments, whose taint (``tainted.<name>``) they can read.
    """

    arguments: Mapping[str, tuple[CedarType, bool]]
    every: Collection[str] = field(default=())

    def resolve(self, name: str) -> _Typed:
        fixed: dict[str, CedarType] = {
            "principal.user": "String",
            "principal.tenant": "String",
            "principal.service_principal": "String",
            "principal.roles": "SetString",
            "environment": "String",
            "run.tool_calls": "Long",
            "run.total_tokens": "Long",
            "run.cost_usd": "Decimal",
            "untrusted_read": "Bool",
            "tainted_any": "Bool",
        }
        if name in fixed:
            return _Typed(f"context.{name}", fixed[name])
        if name.startswith("tainted."):
            arg = name.removeprefix("tainted.")
            # context.tainted declares every argument (contract.cedar_compile.cedar_schema).
            if arg not in self.every:
                raise ConditionError(
                    f"{arg!r} is not an argument of this tool",
                    f"tainted.<argument> names one of: {', '.join(sorted(self.every)) or 'none'}",
                )
            return _Typed(cedar_attribute("context.tainted", arg), "Bool")
        arg = name.removeprefix("args.")
        cedar_type, required = self._argument(arg)
        guard = None if required else cedar_has("context.args", arg)
        return _Typed(cedar_attribute("context.args", arg), cedar_type, guard)

    def _argument(self, arg: str) -> tuple[CedarType, bool]:
        if arg not in self.arguments:
            known = ", ".join(sorted(self.arguments)) or "none"
            raise ConditionError(
                f"{arg!r} is not an argument of this tool that policies can see",
                f"use one of: {known}; or principal.*, environment, run.*, untrusted_read",
            )
        return self.arguments[arg]


class _Parser:
    def __init__(self, text: str, env: Environment) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.env = env
        self.depth = 0

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(
                f"the condition nests deeper than {MAX_DEPTH} levels of parentheses, "
                "brackets and not",
                "flatten it, or split it into several rules",
            )

    def parse(self) -> str:
        if not self.tokens:
            raise ConditionError("the condition is empty", "write e.g. amount_usd > 200")
        result = self._or()
        if self.i < len(self.tokens):
            tok = self.tokens[self.i]
            raise ConditionError(
                f"unexpected {tok.text!r} in condition {self.text!r}",
                "join comparisons with and / or",
            )
        if result.type != "Bool":
            raise ConditionError(
                f"condition {self.text!r} is not true/false",
                "compare the value, e.g. amount_usd > 200",
            )
        return _guarded(result)

    # grammar: or := and ('or' and)* ; and := not ('and' not)* ; not := 'not' not | cmp
    def _or(self) -> _Typed:
        left = self._and()
        while self._keyword("or"):
            right = self._and()
            left = _Typed(f"({_guarded(left)} || {_guarded(right)})", "Bool")
        return left

    def _and(self) -> _Typed:
        left = self._not()
        while self._keyword("and"):
            right = self._not()
            left = _Typed(f"({_guarded(left)} && {_guarded(right)})", "Bool")
        return left

    def _not(self) -> _Typed:
        if self._keyword("not"):
            self._enter()
            inner = self._not()
            self.depth -= 1
            _expect_bool(inner, "not")
            return _Typed(f"!({_guarded(inner)})", "Bool")
        return self._comparison()

    def _comparison(self) -> _Typed:
        left = self._operand()
        tok = self._peek()
        if tok is None:
            return left
        if tok.kind == "op":
            self.i += 1
            return _compare(left, tok.text, self._operand())
        if tok.kind == "name" and tok.text in ("in", "like"):
            self.i += 1
            right = self._operand()
            return _membership(left, right) if tok.text == "in" else _like(left, right)
        return left

    def _operand(self) -> _Typed:
        tok = self._peek()
        if tok is None:
            raise ConditionError(f"condition {self.text!r} ends too early", "complete it")
        self.i += 1
        if tok.kind == "lparen":
            self._enter()
            inner = self._or()
            self._expect("rparen", ")")
            self.depth -= 1
            return _Typed(f"({_guarded(inner)})", inner.type)
        if tok.kind == "lbrack":
            self._enter()
            items = self._list()
            self.depth -= 1
            return items
        if tok.kind == "num":
            return _number(tok.text)
        if tok.kind == "str":
            return _Typed(cedar_string(_unquote(tok.text)), "String")
        if tok.kind == "name":
            if tok.text in ("true", "false"):
                return _Typed(tok.text, "Bool")
            if tok.text in _KEYWORDS:
                raise ConditionError(
                    f"{tok.text!r} cannot start a value", "put a name or literal before it"
                )
            return self.env.resolve(tok.text)
        raise ConditionError(f"unexpected {tok.text!r} in condition {self.text!r}", "")

    def _list(self) -> _Typed:
        items: list[_Typed] = []
        while True:
            tok = self._peek()
            if tok is not None and tok.kind == "rbrack":
                self.i += 1
                break
            items.append(self._operand())
            tok = self._peek()
            if tok is not None and tok.kind == "comma":
                self.i += 1
                continue
            self._expect("rbrack", "]")
            break
        if not items:
            raise ConditionError(
                "an empty list matches nothing", 'list at least one value, e.g. ["a"]'
            )
        types = {item.type for item in items}
        if types - {"String", "Long"} or len(types) > 1:
            raise ConditionError(
                "a list must hold only strings or only integers", 'e.g. ["a", "b"] or [1, 2]'
            )
        element = types.pop()
        set_type: CedarType = "SetLong" if element == "Long" else "SetString"
        return _Typed("[" + ", ".join(item.cedar for item in items) + "]", set_type)

    def _keyword(self, word: str) -> bool:
        tok = self._peek()
        if tok is not None and tok.kind == "name" and tok.text == word:
            self.i += 1
            return True
        return False

    def _peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _expect(self, kind: str, text: str) -> None:
        tok = self._peek()
        if tok is None or tok.kind != kind:
            raise ConditionError(
                f"expected {text!r} in condition {self.text!r}", "check brackets and parentheses"
            )
        self.i += 1


def compile_condition(
    text: str,
    arguments: Mapping[str, tuple[CedarType, bool]],
    every: Collection[str] = (),
) -> str:
    """Compile a ``when:`` condition to a Cedar boolean expression over ``context``.

    ``arguments`` are the tool's arguments policies can read, with their Cedar types;
    ``every`` all its arguments (``tainted.<name>`` may name any; default: ``arguments``).
    """
    return _Parser(text, Environment(arguments, every or tuple(arguments))).parse()


def decimal_literal(value: Decimal) -> str:
    """A Cedar ``decimal("...")`` literal; Cedar decimals hold at most four places.

    Raises:
        ConditionError: ``value`` is not finite, outside Cedar's decimal range, or finer
            than four places.
    """
    if not value.is_finite() or abs(value) > DECIMAL_LIMIT:
        # Checked first: quantizing 1E+30 to four places would raise InvalidOperation.
        raise ConditionError(
            f"{value} is outside the amounts Cedar can compare (at most {DECIMAL_LIMIT} either "
            "side of zero)",
            "use a smaller amount",
        )
    if value != value.quantize(Decimal("0.0001")):
        raise ConditionError(
            f"{value} has more than 4 decimal places",
            "policies compare amounts to 1/100 of a cent at most",
        )
    text = format(value.quantize(Decimal("0.0001")), "f")
    return f'decimal("{text}")'


def _number(text: str) -> _Typed:
    if "." in text:
        try:
            return _Typed(decimal_literal(Decimal(text)), "Decimal")
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
            raise ConditionError(f"{text!r} is not a number") from exc
    # Checked on the text first: Python refuses to convert more than 4,300 digits.
    if len(text.lstrip("-").lstrip("0")) > 19 or not -(2**63) <= int(text) < 2**63:
        raise ConditionError(f"{text} is out of range", "use a smaller number")
    return _Typed(text, "Long")


_DECIMAL_METHODS = {
    ">": "greaterThan",
    ">=": "greaterThanOrEqual",
    "<": "lessThan",
    "<=": "lessThanOrEqual",
}


def _compare(left: _Typed, op: str, right: _Typed) -> _Typed:
    guard = _join_guards(left, right)
    if left.type == "Decimal" or right.type == "Decimal":
        lhs, rhs = _as_decimal(left), _as_decimal(right)
        if op in _DECIMAL_METHODS:
            return _Typed(f"{lhs}.{_DECIMAL_METHODS[op]}({rhs})", "Bool", guard)
        return _Typed(f"{lhs} {op} {rhs}", "Bool", guard)
    if op in _DECIMAL_METHODS and (left.type != "Long" or right.type != "Long"):
        raise ConditionError(
            f"{op} compares numbers, but got {_describe(left.type)} and {_describe(right.type)}",
            "use == or != for text, in for lists",
        )
    if left.type != right.type:
        raise ConditionError(
            f"cannot compare {_describe(left.type)} with {_describe(right.type)}",
            "compare values of the same kind",
        )
    return _Typed(f"{left.cedar} {op} {right.cedar}", "Bool", guard)


def _as_decimal(value: _Typed) -> str:
    if value.type == "Decimal":
        return value.cedar
    if value.type == "Long" and value.cedar.lstrip("-").isdigit():
        return decimal_literal(Decimal(value.cedar))
    raise ConditionError(
        f"cannot compare an amount with {_describe(value.type)}",
        "compare amounts with numbers, e.g. amount_usd > 200",
    )


def _membership(left: _Typed, right: _Typed) -> _Typed:
    expected = {"String": "SetString", "Long": "SetLong"}.get(left.type)
    if expected is None or right.type != expected:
        raise ConditionError(
            f"'in' needs a value and a list of the same kind, got {_describe(left.type)} "
            f"in {_describe(right.type)}",
            'e.g. template in ["a", "b"] or "support" in principal.roles',
        )
    return _Typed(f"{right.cedar}.contains({left.cedar})", "Bool", _join_guards(left, right))


def _like(left: _Typed, right: _Typed) -> _Typed:
    if left.type != "String" or right.type != "String" or not right.cedar.startswith('"'):
        raise ConditionError(
            "'like' needs text on the left and a quoted pattern on the right",
            'e.g. to like "*@example.com"',
        )
    return _Typed(f"{left.cedar} like {right.cedar}", "Bool", _join_guards(left, right))


def _expect_bool(value: _Typed, where: str) -> None:
    if value.type != "Bool":
        raise ConditionError(f"'{where}' needs a true/false value", "compare the value first")


def _join_guards(*values: _Typed) -> str | None:
    guards = [v.guard for v in values if v.guard]
    return " && ".join(dict.fromkeys(guards)) or None


def _guarded(value: _Typed) -> str:
    # An optional argument that is absent makes its comparison false, never an error: Cedar
    # skips a policy that errors, which for a forbid rule would silently fail open.
    return f"({value.guard} && {value.cedar})" if value.guard else value.cedar


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _describe(cedar_type: CedarType) -> str:
    return {
        "String": "text",
        "Long": "an integer",
        "Decimal": "an amount",
        "Bool": "true/false",
        "SetString": "a list of text",
        "SetLong": "a list of integers",
    }[cedar_type]
