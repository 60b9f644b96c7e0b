"""Every Cedar text Charter hands to cedarpy goes through here, bounded first.

cedarpy parses on the native stack. About 1,000 nested parentheses overflow an 8 MiB main
thread (about 40 on a 512 KiB thread stack) and the process dies with SIGSEGV, which no
``except`` can catch; a chain of about 20,000 ``&&`` does the same to its JSON conversion.
So before text reaches cedarpy it is scanned in Python (strings and comments skipped) and
refused when it

- is longer than ``MAX_CEDAR_CHARS`` characters,
- nests brackets or ``if``-``then``-``else`` deeper than ``MAX_NESTING`` in one place, or
- has more than ``MAX_OPERATORS`` operators in one policy.

These bounds sit far below the crash points and far above what a readable policy needs.
Within them, cedarpy's JSON form still refuses expressions more than about 60 operators deep
(serde_json's recursion limit): ``policies_json`` reports that as nesting too deep, and the
loader checks the round trip the policy engine needs (``check_round_trip``) so a charter
that loads can always be evaluated.

cedarpy names policies by position (``policy0``, ``policy1``...), which mean nothing to the
person who wrote them: ``policy_ids`` and ``name_policies`` put each rule's ``@id`` in their
place.

No other module passes text to cedarpy (``tests/contract/test_cedar_text.py`` checks).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cedarpy

from charter.core.errors import first_line

__all__ = [
    "MAX_CEDAR_CHARS",
    "MAX_NESTING",
    "MAX_OPERATORS",
    "CedarRefused",
    "ValidationIssue",
    "cedar_attribute",
    "cedar_has",
    "cedar_string",
    "check_round_trip",
    "name_policies",
    "policies_from_json",
    "policies_json",
    "policy_ids",
    "policy_set",
    "scan_cedar",
    "validate_policies",
]

MAX_CEDAR_CHARS = 2_000_000
MAX_NESTING = 32
MAX_OPERATORS = 1_000

_TOKEN = re.compile(
    r"""
      "(?:[^"\\]|\\.)*"?                # a string (possibly unterminated): skipped
    | //[^\n]*                          # a comment: skipped
    | (?P<open>[(\[{])
    | (?P<close>[)\]}])
    | (?P<end>;)
    | (?P<if>\bif\b)
    | (?P<else>\belse\b)
    | (?P<op>&&|\|\||[=!<>]=|[<>+\-*.!]|\b(?:in|has|like|is)\b)
    | (?P<newline>\n)
    """,
    re.VERBOSE | re.DOTALL,
)
# cedarpy quotes its position ids in backticks: "error while evaluating policy `policy0`".
_POLICY_ID = re.compile(r"(?:policy )?`(policy\d+)`")
_FOR_POLICY = re.compile(r"^for policy `?policy\d+`?,\s*")
_ROUND_TRIP_ERROR = "error serializing/deserializing policy set to/from JSON"


class CedarRefused(ValueError):
    """Text that was not handed to Cedar, or that Cedar refused.

    ``line`` (1-based) and ``offset`` say where in the text, when known.
    """

    def __init__(self, message: str, hint: str, line: int = 1, offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.line = line
        self.offset = offset


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One type error Cedar found: the position id of its policy and the message."""

    policy_id: str
    message: str

    @property
    def detail(self) -> str:
        """The message without its ``for policy `policyN`,`` opening (say the rule instead)."""
        return _FOR_POLICY.sub("", self.message, count=1)


def scan_cedar(text: str) -> None:
    """Refuse ``text`` that could crash cedarpy (see the module docstring).

    Raises:
        CedarRefused: too long, nested too deeply, or a policy with too many operators.
    """
    if len(text) > MAX_CEDAR_CHARS:
        raise CedarRefused(
            f"the Cedar text is {len(text)} characters, more than the {MAX_CEDAR_CHARS} allowed",
            "split the policies, or move data out of them",
        )
    line = 1
    openers: list[str] = []
    operators = 0
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind is None:  # a string or a comment
            line += match.group().count("\n")
        elif kind == "newline":
            line += 1
        elif kind == "op":
            operators += 1
            if operators > MAX_OPERATORS:
                raise CedarRefused(
                    f"a Cedar policy has more than {MAX_OPERATORS} operators",
                    "split it into several smaller rules",
                    line,
                    match.start(),
                )
        elif kind in ("open", "if"):
            openers.append(match.group())
            if len(openers) > MAX_NESTING:
                raise CedarRefused(
                    f"Cedar expression nests deeper than {MAX_NESTING} levels",
                    "flatten the condition, or split it into several rules",
                    line,
                    match.start(),
                )
        elif kind == "close":
            while openers and openers.pop() == "if":
                pass  # an if-then-else ends with the bracket around it
        elif kind == "else":
            if openers and openers[-1] == "if":
                openers.pop()
        elif kind == "end":
            openers.clear()
            operators = 0


def policies_json(text: str) -> dict[str, Any]:
    """Cedar's JSON form of ``text`` (``staticPolicies`` keyed by position id).

    Raises:
        CedarRefused: ``text`` is refused by ``scan_cedar``, or Cedar cannot parse it.
    """
    scan_cedar(text)
    try:
        parsed: dict[str, Any] = json.loads(cedarpy.policies_to_json_str(text))
    except Exception as exc:  # cedarpy raises ValueError; anything else is a refusal too
        raise _parse_error(exc) from None
    return parsed


def policies_from_json(policies: Mapping[str, Any]) -> str:
    """Cedar text for a JSON form made by ``policies_json`` (one policy, or a set).

    Raises:
        CedarRefused: Cedar cannot read the JSON form back.
    """
    try:
        return cedarpy.policies_from_json_str(json.dumps(policies))
    except Exception as exc:  # cedarpy raises ValueError; anything else is a refusal too
        raise _parse_error(exc) from None


def check_round_trip(text: str) -> None:
    """Check that ``text`` survives what the policy engine does with it: to Cedar's JSON
    form and back, one policy at a time.

    Raises:
        CedarRefused: it does not; the message says which policy (by ``@id``) and why.
    """
    parsed = policies_json(text)
    for position, policy in parsed.get("staticPolicies", {}).items():
        single = {"staticPolicies": {position: policy}, "templates": {}, "templateLinks": []}
        try:
            policies_from_json(single)
        except CedarRefused as exc:
            rule = policy.get("annotations", {}).get("id", position)
            raise CedarRefused(f"Cedar rule {rule!r}: {exc.message}", exc.hint) from None


def policy_set(text: str) -> cedarpy.PolicySet:
    """A parsed ``cedarpy.PolicySet`` of ``text``.

    Raises:
        CedarRefused: ``text`` is refused by ``scan_cedar``, or Cedar cannot parse it.
    """
    scan_cedar(text)
    try:
        return cedarpy.PolicySet.from_str(text)
    except Exception as exc:  # cedarpy raises ValueError; anything else is a refusal too
        raise _parse_error(exc) from None


def validate_policies(text: str, schema_json: str) -> list[ValidationIssue]:
    """Cedar's type errors for ``text`` against the schema (an empty list: it type-checks).

    Raises:
        CedarRefused: ``text`` is refused by ``scan_cedar``, or Cedar cannot run.
    """
    scan_cedar(text)
    try:
        result = cedarpy.validate_policies(text, schema_json)
    except Exception as exc:  # cedarpy raises ValueError; anything else is a refusal too
        raise _parse_error(exc) from None
    return [ValidationIssue(str(error.policy_id), str(error.error)) for error in result.errors]


def policy_ids(text: str) -> dict[str, str]:
    """Each policy's position id in ``text`` (``policy0``...) mapped to its ``@id``, or to
    itself when it has none.

    Raises:
        CedarRefused: as ``policies_json``.
    """
    parsed = policies_json(text)
    return {
        position: str(policy.get("annotations", {}).get("id", position))
        for position, policy in parsed.get("staticPolicies", {}).items()
    }


def name_policies(message: str, labels: Mapping[str, str]) -> str:
    """``message`` from cedarpy with each position id (``policy0``...) replaced by
    ``rule <label>`` from ``labels`` (e.g. ``"'deny[0]' (charter.yaml:14)"``); a position
    id without a label becomes ``a rule``."""

    def rule(match: re.Match[str]) -> str:
        label = labels.get(match.group(1))
        return "a rule" if label is None else f"rule {label}"

    return _POLICY_ID.sub(rule, message)


def cedar_string(value: str) -> str:
    """``value`` as a Cedar string literal. Cedar takes any character as it is except ``\\``
    and ``"`` (JSON's ``\\u00e9`` escapes are not Cedar's, so ``json.dumps`` will not do)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Cedar's reserved words (its grammar's ``RESERVED``, and anything starting ``__cedar``):
# ``context.args.then`` is a syntax error, ``context.args["then"]`` is not.
_RESERVED = frozenset({"true", "false", "if", "then", "else", "in", "like", "has", "is"})
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _dotted(name: str) -> bool:
    return (
        _PLAIN_NAME.fullmatch(name) is not None
        and name not in _RESERVED
        and not name.startswith("__cedar")
    )


def cedar_attribute(record: str, name: str) -> str:
    """Cedar for attribute ``name`` of the record expression ``record``, whatever the name.

    A plain identifier keeps the readable dotted form (``context.args.amount``); a reserved
    word or any other name is indexed (``context.args["then"]``, ``context.args["größe"]``),
    which Cedar reads the same way.
    """
    return f"{record}.{name}" if _dotted(name) else f"{record}[{cedar_string(name)}]"


def cedar_has(record: str, name: str) -> str:
    """Cedar testing that ``record`` has attribute ``name``, whatever the name (see
    ``cedar_attribute``)."""
    return f"{record} has {name if _dotted(name) else cedar_string(name)}"


def _parse_error(exc: Exception) -> CedarRefused:
    message = first_line(exc)
    if message == _ROUND_TRIP_ERROR:
        # Cedar parsed the text (or it would have said so) but its JSON form is deeper than
        # serde_json reads back: an expression about 60 operators deep.
        return CedarRefused(
            "Cedar expression nests too deeply (Cedar's JSON form allows about 60 levels)",
            "split the condition into several rules, or use `in [...]` for long lists of "
            "alternatives",
        )
    return CedarRefused(
        f"Cedar syntax error: {message}", "see https://docs.cedarpolicy.com for the syntax"
    )
