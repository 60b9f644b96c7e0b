"""Checking a charter's Cedar at load: the raw ``.cedar`` file, the compiled rules, and the
round trip the policy engine will make.

Every text goes through ``contract.cedar_text`` (bounded before cedarpy sees it). Problems
name the user's rule (its ``@id``) and where it is written: the ``.cedar`` file and line of
a raw statement, the charter line of a compiled rule. cedarpy's own names (``policy0``,
``policy1``...) are positions in whatever text it was handed and never reach a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from charter.contract.cedar_compile import (
    CompiledPolicies,
    RuleEffect,
    RuleMeta,
    split_cedar_statements,
)
from charter.contract.cedar_people import people_problems
from charter.contract.cedar_text import (
    CedarRefused,
    cedar_string,
    check_round_trip,
    name_policies,
    policies_json,
    policy_ids,
    scan_cedar,
    validate_policies,
)
from charter.core.errors import Problem

__all__ = ["MAX_RAW_POLICIES", "CedarChecks", "rule_label"]

MAX_RAW_POLICIES = 500

_KNOWN_ANNOTATIONS = frozenset({"id", "verdict", "reason"})
_ID_ANNOTATION = re.compile(r'@id\("((?:[^"\\]|\\.)*)"\)')


def rule_label(rule_id: str, meta: RuleMeta | None) -> str:
    """How a message names a rule: ``'deny[0]' (charter.yaml:14)``."""
    return f"{rule_id!r} ({meta.source})" if meta is not None else repr(rule_id)


@dataclass
class CedarChecks:
    """The Cedar half of loading one charter; problems collect in ``problems``.

    ``base`` is the charter's directory (raw rules' sources are relative to it) and
    ``charter_file`` the charter as it is shown in problems.
    """

    base: Path
    charter_file: str
    problems: list[Problem] = field(default_factory=list)

    def add_raw(
        self,
        compiled: CompiledPolicies,
        text: str,
        relative: str,
        schema_json: str | None,
    ) -> str:
        """Check each statement of the raw Cedar file ``relative`` (content ``text``), add
        the good ones' meanings to ``compiled.rules``, and return the full policy text.

        ``schema_json`` is None when type-checking would only repeat another problem.
        """
        file_path = str(self.base / relative)
        extra: list[str] = []
        statements = split_cedar_statements(text)
        if len(statements) > MAX_RAW_POLICIES:
            # Each is parsed and type-checked on its own (to locate its errors), about a
            # millisecond apiece: a file of ten thousand would take seconds to check.
            self.problems.append(
                Problem(
                    file_path,
                    statements[MAX_RAW_POLICIES].line,
                    f"the Cedar file holds more than {MAX_RAW_POLICIES} policies",
                    "keep raw Cedar for rules the charter file cannot express",
                )
            )
            return compiled.text
        for statement in statements:
            body = self._raw_statement(
                compiled, statement.text, statement.line, relative, file_path, schema_json
            )
            if body is not None:
                extra.append(body)
        return compiled.text + "\n\n".join(extra) + ("\n" if extra else "")

    def _raw_statement(
        self,
        compiled: CompiledPolicies,
        text: str,
        line: int,
        relative: str,
        file_path: str,
        schema_json: str | None,
    ) -> str | None:
        where = f"{relative}:{line}"

        def problem(message: str, hint: str, at: int = line) -> None:
            self.problems.append(Problem(file_path, at, message, hint))

        try:
            # Cedar's own reading of the rule: its effect and annotations, so neither a
            # comment nor a string that looks like an annotation can change what it means.
            parsed = policies_json(text)
        except CedarRefused as exc:
            problem(name_policies(exc.message, {}), exc.hint, line + exc.line - 1)
            return None
        policies = list(parsed.get("staticPolicies", {}).values())
        if len(policies) != 1:
            templates = bool(parsed.get("templates"))
            problem(
                "Cedar templates (?principal, ?resource) are not supported"
                if templates
                else "expected one Cedar policy here",
                "write a static policy that ends with ';'",
            )
            return None
        [policy] = policies
        annotations: dict[str, str] = {
            key: str(value) for key, value in policy.get("annotations", {}).items()
        }
        unknown = sorted(set(annotations) - _KNOWN_ANNOTATIONS)
        if unknown:
            problem(
                f"unknown annotation(s) {', '.join('@' + u for u in unknown)}",
                "Charter reads @id, @verdict and @reason; check the spelling",
            )
            return None
        rule_id = annotations.get("id") or where
        verdict = annotations.get("verdict", "deny")
        body = text if "id" in annotations else f"@id({cedar_string(rule_id)})\n{text}"
        if schema_json is not None:
            try:
                issues = validate_policies(body, schema_json)
            except CedarRefused as exc:  # it parsed above: this is Cedar failing, not the rule
                problem(f"Cedar rule {rule_id!r}: {name_policies(exc.message, {})}", exc.hint)
                return None
            for issue in issues:
                problem(f"Cedar rule {rule_id!r}: {issue.detail}", _cedar_hint(issue.detail))
        # "Mallory" is no user's name (people are canonical): such a rule never matches.
        for person in people_problems(policy, "context.principal.user"):
            problem(f"Cedar rule {rule_id!r}: {person.message}", person.hint)
        if rule_id in compiled.rules:
            problem(f"policy id {rule_id!r} is used twice", "give each @id a unique name")
            return None
        if verdict not in ("deny", "require_approval"):
            problem(
                f"@verdict({verdict!r}) is not known",
                'use @verdict("deny") or @verdict("require_approval")',
            )
            return None
        effect: RuleEffect = (
            "permit"
            if policy.get("effect") == "permit"
            else ("deny" if verdict == "deny" else "require_approval")
        )
        reason = annotations.get("reason") or f"Cedar rule {rule_id}"
        compiled.rules[rule_id] = RuleMeta(rule_id, effect, reason, where)
        return body.strip()

    def check_compiled(self, compiled: CompiledPolicies, schema_json: str | None) -> bool:
        """Check the rules compiled from the charter file; False if cedarpy must not see them.

        The compiler's output must validate too: when it does not, that is a bug or a
        condition too complex for Cedar, and the operator gets it at the rule's line
        instead of a policy that silently errs.
        """
        if not compiled.text.strip():
            return True
        try:
            scan_cedar(compiled.text)
        except CedarRefused as exc:
            rule_id = _rule_before(compiled.text, exc.offset)
            self._rule_problem(
                compiled.rules,
                rule_id,
                f"the rule compiles to Cedar that Charter will not evaluate: {exc.message}",
                exc.hint,
            )
            return False
        if schema_json is None:
            return True
        try:
            issues = validate_policies(compiled.text, schema_json)
            ids = policy_ids(compiled.text) if issues else {}
        except CedarRefused:
            # Cedar cannot parse what the compiler wrote (a literal out of its range, say):
            # find the rules it cannot, one by one.
            self._each_refused(compiled.text, compiled.rules, policies_json)
            return False
        for issue in issues:
            self._rule_problem(
                compiled.rules,
                ids.get(issue.policy_id, issue.policy_id),
                f"compiled policy is invalid: {issue.detail}",
                "please report this; simplify the condition meanwhile",
            )
        return True

    def check_engine_text(self, cedar_text: str, rules: Mapping[str, RuleMeta]) -> None:
        """Check that the policy engine can read ``cedar_text`` the way it will (per policy
        through Cedar's JSON form); locate each rule it cannot."""
        try:
            check_round_trip(cedar_text)
        except CedarRefused as exc:
            if not self._each_refused(cedar_text, rules, check_round_trip):
                # No policy is refused on its own: the whole is (too big, say).
                self.problems.append(Problem(self.charter_file, 1, exc.message, exc.hint))

    def _each_refused(
        self, text: str, rules: Mapping[str, RuleMeta], check: Callable[[str], object]
    ) -> bool:
        """Report each policy of ``text`` that ``check`` refuses, at its rule; any found?"""
        found = False
        for statement in split_cedar_statements(text):
            try:
                check(statement.text)
            except CedarRefused as exc:
                found = True
                rule_id = _rule_before(statement.text, len(statement.text))
                message = exc.message.removeprefix(f"Cedar rule {rule_id!r}: ")
                self._rule_problem(rules, rule_id, message, exc.hint)
        return found

    def _rule_problem(
        self, rules: Mapping[str, RuleMeta], rule_id: str | None, message: str, hint: str
    ) -> None:
        meta = rules.get(rule_id) if rule_id is not None else None
        if meta is None:
            self.problems.append(Problem(self.charter_file, 1, message, hint))
            return
        file, _, line = meta.source.rpartition(":")
        if file != self.charter_file:
            file = str(self.base / file)  # a raw rule: its source is relative to the charter
        label = f"rule {rule_id!r}: " if not message.startswith("Cedar rule ") else ""
        self.problems.append(
            Problem(file, int(line) if line.isdigit() else 1, label + message, hint)
        )


def _rule_before(text: str, offset: int) -> str | None:
    """The ``@id`` of the policy at ``offset`` in ``text``: the last one written before it."""
    found = None
    for match in _ID_ANNOTATION.finditer(text, 0, offset):
        found = match.group(1).replace('\\"', '"').replace("\\\\", "\\")
    return found


def _cedar_hint(error: str) -> str:
    if "not found" in error and "attribute" in error:
        return (
            "policies see context.args.<argument>, context.principal.*, "
            "context.environment, context.run.*, context.tainted.*; check the name"
        )
    return "fix the rule so it type-checks against the charter's tools"
