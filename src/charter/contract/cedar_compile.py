"""Compiling a charter to Cedar: a schema for every tool's request, and the policies.

Every rule gets an ``@id`` so a decision can name the rule that made it, and a Python-side
``RuleMeta`` that says what a matching ``forbid`` means (deny, or require approval).

The request Cedar sees for tool ``t`` (action ``Charter::Action::"t"``) has this context:

    args         the validated arguments (amounts as Cedar decimals)
    principal    {user, tenant, service_principal, roles}
    environment  "dev" | "staging" | "prod"
    run          {tool_calls, total_tokens, cost_usd}
    untrusted_read, tainted_any, tainted.<arg>    provenance facts, over EVERY argument
                 (``args`` holds only those Cedar has a type for; taint is about all)
    derived      facts Cedar cannot compute itself: <arg>_domain, <arg>_pattern_ok, <arg>_length

Constraints Cedar can express are compiled to Cedar; the three it cannot (e-mail domain,
regular expression, length) are computed in Python as ``derived`` facts and still decided by
a Cedar rule, so every verdict has one place it comes from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from charter.contract.cedar_people import people_problems_in
from charter.contract.cedar_text import cedar_attribute, cedar_has, cedar_string
from charter.contract.conditions import CedarType, ConditionError, compile_condition
from charter.contract.conditions import decimal_literal as _decimal
from charter.contract.schema import ArgumentConstraint, CharterSpec, SinkSpec
from charter.core.errors import PatternInvalid
from charter.core.patterns import UserPattern, compile_pattern

__all__ = [
    "CompiledPolicies",
    "DerivedFact",
    "RuleEffect",
    "RuleMeta",
    "argument_names",
    "argument_types",
    "cedar_schema",
    "compile_charter_rules",
    "split_cedar_statements",
]

RuleEffect = Literal["permit", "deny", "require_approval"]
NAMESPACE = "Charter"


@dataclass(frozen=True, slots=True)
class RuleMeta:
    """What a compiled Cedar policy means to Charter."""

    rule_id: str
    effect: RuleEffect
    reason: str
    source: str


@dataclass(frozen=True, slots=True)
class DerivedFact:
    """A fact computed in Python for Cedar: ``derived.<name>`` from argument ``argument``."""

    name: str
    argument: str
    kind: Literal["domain", "pattern_ok", "length"]
    pattern: UserPattern | None = None  # compiled once, here, at load


@dataclass(slots=True)
class CompiledPolicies:
    """The charter's own rules as Cedar text, with their meanings, and any problems."""

    text: str = ""
    rules: dict[str, RuleMeta] = field(default_factory=dict)
    derived: dict[str, tuple[DerivedFact, ...]] = field(default_factory=dict)
    problems: list[tuple[tuple[str | int, ...], str, str]] = field(default_factory=list)

    def add(self, meta: RuleMeta, policy: str) -> None:
        annotations = f'@id("{meta.rule_id}")\n'
        self.text += annotations + policy.strip() + "\n\n"
        self.rules[meta.rule_id] = meta


def argument_names(json_schema: Mapping[str, Any]) -> tuple[str, ...]:
    """Every argument of a tool, whether or not policies can see its value."""
    return tuple(json_schema.get("properties", {}))


def argument_types(json_schema: Mapping[str, Any]) -> dict[str, tuple[CedarType, bool]]:
    """Map a tool's JSON schema to the Cedar types policies can see (others are hidden)."""
    required = set(json_schema.get("required", []))
    result: dict[str, tuple[CedarType, bool]] = {}
    for name, prop in json_schema.get("properties", {}).items():
        cedar_type = _cedar_type_of(prop)
        if cedar_type is not None:
            result[name] = (cedar_type, name in required and not _nullable(prop))
    return result


def _nullable(prop: Mapping[str, Any]) -> bool:
    return any(option.get("type") == "null" for option in prop.get("anyOf", []))


def _cedar_type_of(prop: Mapping[str, Any]) -> CedarType | None:
    options = [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]
    if len(options) != 1:
        return None
    option = options[0]
    simple: dict[str, CedarType] = {
        "string": "String",
        "integer": "Long",
        "number": "Decimal",
        "boolean": "Bool",
    }
    kind = option.get("type")
    if isinstance(kind, str) and kind in simple:
        return simple[kind]
    if kind == "array":
        items = option.get("items", {}).get("type")
        return {"string": "SetString", "integer": "SetLong"}.get(items)  # type: ignore[return-value]
    return None


def _schema_type(cedar_type: CedarType) -> dict[str, Any]:
    types: dict[CedarType, dict[str, Any]] = {
        "String": {"type": "String"},
        "Long": {"type": "Long"},
        "Bool": {"type": "Boolean"},
        "Decimal": {"type": "Extension", "name": "decimal"},
        "SetString": {"type": "Set", "element": {"type": "String"}},
        "SetLong": {"type": "Set", "element": {"type": "Long"}},
    }
    return types[cedar_type]


def cedar_schema(
    tool_args: Mapping[str, Mapping[str, tuple[CedarType, bool]]],
    derived: Mapping[str, tuple[DerivedFact, ...]],
    all_args: Mapping[str, Sequence[str]],
) -> dict[str, Any]:
    """The Cedar JSON schema: one action per tool, each with its own typed context.

    ``context.args`` declares the arguments of ``tool_args`` (those with a Cedar type);
    ``context.tainted`` declares every argument in ``all_args`` (``argument_names``).
    """
    actions: dict[str, Any] = {}
    for tool, args in tool_args.items():
        arg_attrs = {
            name: {**_schema_type(t), "required": required} for name, (t, required) in args.items()
        }
        derived_attrs = {
            fact.name: _schema_type(
                {"domain": "String", "pattern_ok": "Bool", "length": "Long"}[fact.kind]  # type: ignore[arg-type]
            )
            for fact in derived.get(tool, ())
        }
        context = {
            "type": "Record",
            "attributes": {
                "args": {"type": "Record", "attributes": arg_attrs},
                "principal": {
                    "type": "Record",
                    "attributes": {
                        "user": {"type": "String"},
                        "tenant": {"type": "String"},
                        "service_principal": {"type": "String"},
                        "roles": {"type": "Set", "element": {"type": "String"}},
                    },
                },
                "environment": {"type": "String"},
                "run": {
                    "type": "Record",
                    "attributes": {
                        "tool_calls": {"type": "Long"},
                        "total_tokens": {"type": "Long"},
                        "cost_usd": {"type": "Extension", "name": "decimal"},
                    },
                },
                "untrusted_read": {"type": "Boolean"},
                "tainted_any": {"type": "Boolean"},
                "tainted": {
                    "type": "Record",
                    "attributes": {name: {"type": "Boolean"} for name in all_args[tool]},
                },
                "derived": {"type": "Record", "attributes": derived_attrs},
            },
        }
        actions[tool] = {
            "appliesTo": {
                "principalTypes": ["User"],
                "resourceTypes": ["Tool"],
                "context": context,
            }
        }
    return {NAMESPACE: {"entityTypes": {"User": {}, "Tool": {}}, "actions": actions}}


def _scope(tool: str) -> str:
    return f'(principal, action == {NAMESPACE}::Action::"{tool}", resource)'


def compile_charter_rules(
    spec: CharterSpec,
    tool_args: Mapping[str, Mapping[str, tuple[CedarType, bool]]],
    source_of: Callable[[tuple[str | int, ...]], str],
    all_args: Mapping[str, Sequence[str]],
) -> CompiledPolicies:
    """Compile tools, constraints, approval, deny and untrusted-content rules to Cedar.

    ``tool_args`` are the arguments policies can see, with their Cedar types; ``all_args``
    every argument of each bound tool (sinks may name any). ``source_of(loc)`` renders
    ``file:line`` for a location in the charter file.
    """
    out = CompiledPolicies()
    for tool, decl in spec.tools.items():
        loc: tuple[str | int, ...] = ("tools", tool)
        out.add(
            RuleMeta(
                f"tools.{tool}", "permit", f"{tool} is declared in the charter", source_of(loc)
            ),
            f"permit{_scope(tool)};",
        )
        if decl.roles:
            roles = ", ".join(cedar_string(r) for r in decl.roles)
            out.add(
                RuleMeta(
                    f"tools.{tool}.roles",
                    "deny",
                    f"{tool} needs one of the roles {', '.join(decl.roles)}",
                    source_of((*loc, "roles")),
                ),
                f"forbid{_scope(tool)} unless "
                f"{{ context.principal.roles.containsAny([{roles}]) }};",
            )
        if tool not in tool_args:
            continue  # no implementation is bound: the loader reports that, arguments unknown
        args = tool_args[tool]
        facts: list[DerivedFact] = []
        for arg, constraint in decl.constraints.items():
            cloc = (*loc, "constraints", arg)
            if arg not in args:
                out.problems.append(
                    (
                        cloc,
                        f"constraint on {arg!r}, which is not an argument "
                        f"of {tool} that policies can see",
                        f"use one of: {', '.join(sorted(args)) or 'none'}",
                    )
                )
                continue
            _compile_constraint(out, facts, tool, arg, args[arg], constraint, cloc, source_of)
        out.derived[tool] = tuple(facts)
    for kind, rules in (
        ("require_approval_for", spec.policies.require_approval_for),
        ("deny", spec.policies.deny),
    ):
        for index, rule in enumerate(rules):
            rloc: tuple[str | int, ...] = ("policies", kind, index)
            if rule.action not in spec.tools or rule.action not in tool_args:
                continue  # reported by the loader with a better message
            effect: RuleEffect = "require_approval" if kind == "require_approval_for" else "deny"
            default_reason = (
                f"{rule.action} needs approval"
                if effect == "require_approval"
                else f"{rule.action} is denied by policy"
            )
            reason = rule.reason or (
                f"{default_reason} when {rule.when}" if rule.when else default_reason
            )
            meta = RuleMeta(f"{kind}[{index}]", effect, reason, source_of(rloc))
            if rule.when is None:
                out.add(meta, f"forbid{_scope(rule.action)};")
                continue
            try:
                condition = compile_condition(
                    rule.when, tool_args.get(rule.action, {}), all_args.get(rule.action, ())
                )
            except ConditionError as exc:
                out.problems.append(((*rloc, "when"), f"in condition: {exc.message}", exc.hint))
                continue
            policy = f"forbid{_scope(rule.action)} when {{ {condition} }};"
            # "Mallory" is no user's name (people are canonical): such a rule never fires.
            people = people_problems_in(policy, "principal.user")
            for person in people:
                out.problems.append(
                    ((*rloc, "when"), f"in condition: {person.message}", person.hint)
                )
            if not people:
                out.add(meta, policy)
    _compile_untrusted(spec, all_args, out, source_of)
    return out


def _compile_constraint(
    out: CompiledPolicies,
    facts: list[DerivedFact],
    tool: str,
    arg: str,
    arg_type: tuple[CedarType, bool],
    constraint: ArgumentConstraint,
    loc: tuple[str | int, ...],
    source_of: Callable[[tuple[str | int, ...]], str],
) -> None:
    cedar_type, required = arg_type
    # Every reference in the form Cedar reads whatever the argument's name (`then`, `like`).
    guard = "" if required else f"{cedar_has('context.args', arg)} && "
    value = cedar_attribute("context.args", arg)
    base = f"constraints.{tool}.{arg}"

    def add(kind: str, reason: str, violated: str) -> None:
        out.add(
            RuleMeta(f"{base}.{kind}", "deny", reason, source_of((*loc, kind))),
            f"forbid{_scope(tool)} when {{ {guard}{violated} }};",
        )

    def needs(kinds: tuple[CedarType, ...], what: str) -> bool:
        if cedar_type in kinds:
            return True
        out.problems.append(
            (
                (*loc, what),
                f"{what} does not apply to {arg!r} (it is {cedar_type})",
                "remove it or change the argument type",
            )
        )
        return False

    if constraint.domain_in is not None and needs(("String",), "domain_in"):
        facts.append(DerivedFact(f"{arg}_domain", arg, "domain"))
        domains = ", ".join(cedar_string(d) for d in constraint.domain_in)
        add(
            "domain_in",
            f"{tool}.{arg} must be one address at {', '.join(constraint.domain_in)}",
            f"!([{domains}].contains({cedar_attribute('context.derived', f'{arg}_domain')}))",
        )
    if constraint.in_ is not None and needs(("String", "Long"), "in"):
        bad = [v for v in constraint.in_ if isinstance(v, str) != (cedar_type == "String")]
        if bad:
            out.problems.append(
                (
                    (*loc, "in"),
                    f"values {bad!r} are not of the argument's type",
                    f"{arg} is {cedar_type}",
                )
            )
        else:
            items = ", ".join(
                cedar_string(v) if isinstance(v, str) else str(v) for v in constraint.in_
            )
            add(
                "in",
                f"{tool}.{arg} must be one of {', '.join(map(str, constraint.in_))}",
                f"!([{items}].contains({value}))",
            )
    for kind, bound, method, op in (
        ("max", constraint.max, "greaterThan", ">"),
        ("min", constraint.min, "lessThan", "<"),
    ):
        if bound is None or not needs(("Decimal", "Long"), kind):
            continue
        word = "at most" if kind == "max" else "at least"
        try:
            violated = _bound_check(value, cedar_type, bound, method, op)
        except ConditionError as exc:
            out.problems.append(((*loc, kind), exc.message, exc.hint))
            continue
        add(kind, f"{tool}.{arg} must be {word} {bound}", violated)
    if constraint.pattern is not None and needs(("String",), "pattern"):
        try:  # the schema checked it already; this is the compiled form, cached
            pattern = compile_pattern(constraint.pattern, full=True)
        except PatternInvalid as exc:
            out.problems.append(((*loc, "pattern"), str(exc), "see docs/charter-file.md"))
        else:
            facts.append(DerivedFact(f"{arg}_pattern_ok", arg, "pattern_ok", pattern))
            add(
                "pattern",
                f"{tool}.{arg} must match {constraint.pattern}",
                f"!{cedar_attribute('context.derived', f'{arg}_pattern_ok')}",
            )
    if constraint.max_length is not None and needs(("String",), "max_length"):
        facts.append(DerivedFact(f"{arg}_length", arg, "length"))
        add(
            "max_length",
            f"{tool}.{arg} must be at most {constraint.max_length} characters",
            f"{cedar_attribute('context.derived', f'{arg}_length')} > {constraint.max_length}",
        )


def _bound_check(value: str, cedar_type: CedarType, bound: Decimal, method: str, op: str) -> str:
    if cedar_type == "Decimal":
        return f"{value}.{method}({_decimal(bound)})"
    if bound != bound.to_integral_value():
        raise ConditionError(
            f"bound {bound} is not an integer but the argument is", "use a whole number"
        )
    if not -(2**63) <= bound < 2**63:  # Cedar's integers are 64-bit
        raise ConditionError(f"bound {bound} is out of range", "use a smaller number")
    return f"{value} {op} {int(bound)}"


def _compile_untrusted(
    spec: CharterSpec,
    all_args: Mapping[str, Sequence[str]],
    out: CompiledPolicies,
    source_of: Callable[[tuple[str | int, ...]], str],
) -> None:
    rules = spec.policies.untrusted_content
    if rules is None:
        return
    effect: RuleEffect = "deny" if rules.on_tainted_args == "deny" else "require_approval"
    for index, sink in enumerate(rules.sinks):
        loc: tuple[str | int, ...] = ("policies", "untrusted_content", "sinks", index)
        tool, args = (sink.tool, sink.args) if isinstance(sink, SinkSpec) else (sink, None)
        if tool not in spec.tools or tool not in all_args:
            continue  # reported by the loader
        # Any argument, not only those Cedar can type: a value copied from untrusted content
        # can ride inside a list of records as well as in a string.
        known = all_args[tool]
        if args:
            missing = [a for a in args if a not in known]
            if missing:
                out.problems.append(
                    (
                        loc,
                        f"{tool} has no argument(s) {', '.join(missing)}",
                        f"use some of: {', '.join(sorted(known)) or 'none'}",
                    )
                )
                continue
            # Indexed, not dotted: an argument may be named like a Cedar keyword (`like`).
            test = " || ".join(f"context.tainted[{cedar_string(a)}]" for a in args)
            what = f"argument(s) {', '.join(args)} of {tool}"
        else:
            test = "context.tainted_any"
            what = f"arguments of {tool}"
        out.add(
            RuleMeta(
                f"untrusted_content.{tool}",
                effect,
                f"{what} carry values that appear only in untrusted content",
                source_of(loc),
            ),
            f"forbid{_scope(tool)} when {{ {test} }};",
        )


@dataclass(frozen=True, slots=True)
class CedarStatement:
    text: str
    line: int  # 1-based line where the statement starts


def split_cedar_statements(text: str) -> list[CedarStatement]:
    """Split Cedar source into policies at top-level ``;``, skipping strings and comments.

    Cedar reports neither lines nor positions for validation errors, so we validate policy by
    policy and keep the line each one starts on.
    """
    statements: list[CedarStatement] = []
    start: int | None = None
    i = 0
    line = 1
    start_line = 1
    in_string = False
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_string = False
        elif ch == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end == -1 else end
            continue
        elif ch == '"':
            in_string = True
            if start is None:
                start, start_line = i, line
        elif ch == ";":
            if start is not None:
                statements.append(CedarStatement(text[start : i + 1], start_line))
            start = None
        elif not ch.isspace() and start is None:
            start, start_line = i, line
        if ch == "\n":
            line += 1
        i += 1
    if start is not None and text[start:].strip():
        statements.append(CedarStatement(text[start:], start_line))
    return statements
