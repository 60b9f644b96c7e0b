"""A person named in a policy must be named in canonical form, or the rule never matches.

People are canonical (``identity.names.canonical_person``): a run for ``Mallory`` is a
request by ``Charter::User::"mallory"`` with ``context.principal.user == "mallory"``. A rule
that names ``"Mallory"`` can never match any user, and for a ``forbid`` that is a rule that
silently never fires. So at load, in the ``when:`` conditions and in raw Cedar alike, every
literal a policy compares with the user must already be canonical; otherwise it is a problem
saying the spelling to use. Nothing is rewritten: the operator decides what the rule meant.

The check reads Cedar's own JSON form of each policy (``contract.cedar_text.policies_json``),
so it sees what Cedar sees whatever the spelling (``context.principal["user"]``, a literal on
either side). It looks at

- every entity of type ``Charter::User`` (the scope's ``principal == ...``/``in ...``, and
  entity literals in conditions);
- literals compared with ``context.principal.user`` by ``==``, ``!=`` or ``in``, or found
  with it by ``contains``, ``containsAll`` and ``containsAny`` (each literal of a set);
- ``like`` patterns on it: each literal character must be one a canonical name can hold
  (lower-case ASCII letters, digits, ``. _ @ : + -``).

It does not follow a value through ``if``-``then``-``else`` or an argument compared with the
user; those compare values, not a name written in the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from charter.contract.cedar_text import CedarRefused, cedar_string, policies_json
from charter.identity.names import (
    PERSON_CHARACTERS,
    InvalidPersonName,
    canonical_person,
    fold_person,
)

__all__ = ["PersonProblem", "people_problems", "people_problems_in"]

_USER_TYPES = frozenset({"Charter::User", "User"})
_USER = {".": {"left": {".": {"left": {"Var": "context"}, "attr": "principal"}}, "attr": "user"}}
_RULES = "people are named in canonical form, lower case (see docs/governance.md)"
_ALLOWED = "a user's name holds only a-z 0-9 . _ @ : + -"


@dataclass(frozen=True, slots=True)
class PersonProblem:
    """A person named in a policy in a form no user has, and the spelling to use."""

    message: str
    hint: str


def people_problems(policy: Mapping[str, Any], user: str) -> list[PersonProblem]:
    """The people ``policy`` (one policy of Cedar's JSON form) names in a form no user has.

    ``user`` is how messages name the user's attribute (``principal.user`` in a ``when:``
    condition, ``context.principal.user`` in raw Cedar).
    """
    found: dict[PersonProblem, None] = {}  # ordered, each once
    for problem in _walk(policy, user):
        found[problem] = None
    return list(found)


def people_problems_in(text: str, user: str) -> list[PersonProblem]:
    """``people_problems`` of every policy in the Cedar ``text``; none if Cedar cannot parse
    it (that is reported where the text is checked)."""
    try:
        parsed = policies_json(text)
    except CedarRefused:
        return []
    return [
        problem
        for policy in parsed.get("staticPolicies", {}).values()
        for problem in people_problems(policy, user)
    ]


def _walk(node: Any, user: str) -> Iterator[PersonProblem]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, user)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") in _USER_TYPES and isinstance(node.get("id"), str):
        yield from _entity(node["type"], node["id"])
    for op, body in node.items():
        if isinstance(body, dict):
            yield from _operation(op, body, user)
        yield from _walk(body, user)


def _operation(op: str, body: Mapping[str, Any], user: str) -> Iterator[PersonProblem]:
    left, right = body.get("left"), body.get("right")
    if op in ("==", "!=", "in"):
        if left == _USER:
            yield from _literals(right, user)
        elif right == _USER and op != "in":
            yield from _literals(left, user)
    elif op == "contains":
        if right == _USER:
            yield from _literals(left, user)
        elif _holds_user(left):
            yield from _literals(right, user)
    elif op in ("containsAll", "containsAny"):
        if _holds_user(left):
            yield from _literals(right, user)
        elif _holds_user(right):
            yield from _literals(left, user)
    elif op == "like" and left == _USER:
        yield from _pattern(body.get("pattern"), user)


def _holds_user(node: Any) -> bool:
    return isinstance(node, dict) and _USER in node.get("Set", ())


def _literals(node: Any, user: str) -> Iterator[PersonProblem]:
    """Each string literal of ``node`` (a literal, or a set of them) that is no user's name."""
    if not isinstance(node, dict):
        return
    items = node["Set"] if isinstance(node.get("Set"), list) else [node]
    for item in items:
        value = item.get("Value") if isinstance(item, dict) else None
        if isinstance(value, str):
            yield from _name(value, user)


def _name(value: str, user: str) -> Iterator[PersonProblem]:
    said = f"{user} is compared with {cedar_string(value)}, which is no user's name"
    return _judged(value, said, cedar_string)


def _entity(kind: str, value: str) -> Iterator[PersonProblem]:
    said = f"{kind}::{cedar_string(value)} is no user's name"
    return _judged(value, said, lambda name: f"{kind}::{cedar_string(name)}")


def _judged(value: str, said: str, spell: Callable[[str], str]) -> Iterator[PersonProblem]:
    """A problem ``said`` of ``value`` unless it is canonical; the hint spells the canonical
    name with ``spell`` (a literal, an entity), or says no user can have it."""
    try:
        canonical = canonical_person(value, "the name")
    except InvalidPersonName as exc:
        yield PersonProblem(f"{said}: {exc}", f"name a user as Charter stores it; {_RULES}")
        return
    if canonical != value:
        yield PersonProblem(f"{said}: {_RULES}", f"write {spell(canonical)}")


def _pattern(pattern: Any, user: str) -> Iterator[PersonProblem]:
    if not isinstance(pattern, list):
        return
    # Cedar's JSON form: one {"Literal": character} per literal character, "Wildcard" for *.
    pieces = [
        part["Literal"] if isinstance(part, dict) and isinstance(part.get("Literal"), str) else None
        for part in pattern
    ]
    if set("".join(p for p in pieces if p is not None)) <= PERSON_CHARACTERS:
        return
    folded = [None if p is None else fold_person(p) for p in pieces]
    fixable = set("".join(p for p in folded if p is not None)) <= PERSON_CHARACTERS
    yield PersonProblem(
        f"{user} like {_pattern_text(pieces)} can match no user: {_RULES}",
        f"write {_pattern_text(folded)}" if fixable else _ALLOWED,
    )


def _pattern_text(pieces: list[str | None]) -> str:
    """A ``like`` pattern as Cedar text: ``*`` for a wildcard, ``\\*`` for a literal star."""
    escaped = (
        "*" if p is None else p.replace("\\", "\\\\").replace('"', '\\"').replace("*", "\\*")
        for p in pieces
    )
    return '"' + "".join(escaped) + '"'
