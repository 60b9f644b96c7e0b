"""What changed between two releases, in the terms a reviewer approves a charter in.

A release id says *whether* a charter changed, never *what*: ``diff_releases`` compares two
releases' canonical content (``Release.content``) section by section (prompt, model, tools,
policies, budgets, the rest) and gives each difference as a ``Change`` with its path in the
charter file, so ``charter release diff`` can show a reviewer exactly what they are signing.

Each change that can be judged is marked with a ``risk``, so the reviewer reads the dangerous
ones first (``ReleaseDiff.loosened``). The rule is one for every section:

- ``loosened``: the new release lets the agent do something the old one did not (a larger or
  removed limit, a removed rule, sink or constraint, a rule that covers fewer calls, a newly
  allowed value or role, a new tool), even if it also takes something else away;
- ``tightened``: it allows strictly less;
- ``""``: neither can be told (a changed regex, a condition not of the form
  ``<arg> <op> <number>``, a renamed credential) or the change is not about permission.

Values compared are the content's own JSON (Decimals are exact strings there), so a change's
``old`` and ``new`` are always JSON-serializable. An absent key and ``None`` mean the same
thing (the spec is dumped without ``None``s): no limit, no rule, the default.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from charter.contract.cedar_compile import split_cedar_statements
from charter.core.canonical import sha256_hex
from charter.governance.releases import Release

__all__ = ["SECTIONS", "Change", "ChangeKind", "ReleaseDiff", "Risk", "diff_releases"]

ChangeKind = Literal["added", "removed", "changed"]
Risk = Literal["loosened", "tightened", ""]
RiskOf = Callable[[Any, Any], Risk]

SECTIONS: Final = ("prompt", "model", "tools", "policies", "budgets", "other")
"""The sections of a diff, in the order they are shown."""

_SIGN: Final[dict[str, str]] = {"added": "+", "removed": "-", "changed": "~"}
_CONTEXT_LINES = 2
_MAX_SHOWN = 100  # characters of one value in a change's summary
# Spec keys the named sections cover; every other top-level key goes to ``other``.
_OWN_SECTIONS: Final = frozenset({"prompt", "model", "tools", "policies", "budgets"})
_RULE_KINDS: Final = ("require_approval_for", "deny")

_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$")
# The one condition shape whose strictness is understood: `amount_usd > 200`.
_THRESHOLD = re.compile(r"^\s*(?:args\.)?([A-Za-z_]\w*)\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
_ANNOTATION = re.compile(r'@(\w+)\(\s*("(?:[^"\\]|\\.)*")\s*\)')
_COMMENT = re.compile(r"//[^\n]*")
_EFFECT = re.compile(r"^\s*(permit|forbid)\b")
# Ids the compiler gives the rules it writes from the YAML: those changes are shown as YAML.
_COMPILED_ID = re.compile(
    r"^(?:(?:tools|constraints|untrusted_content)\.|(?:require_approval_for|deny)\[\d+\]$)"
)


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two releases.

    Attributes:
        section: which part of the charter it is in (one of ``SECTIONS``).
        path: where, in the charter file's terms (``budgets.max_tool_calls``,
            ``policies.deny[0]``, ``tools.issue_refund.args.amount_usd``).
        kind: ``added``, ``removed`` or ``changed``.
        old: the old value (``None`` when added); plain JSON.
        new: the new value (``None`` when removed); plain JSON.
        summary: the change in words, printed after the path (``8 -> 12``).
        risk: whether it loosens or tightens what the agent may do (module docstring).
    """

    section: str
    path: str
    kind: ChangeKind
    old: Any
    new: Any
    summary: str
    risk: Risk = ""

    @property
    def loosened(self) -> bool:
        return self.risk == "loosened"

    def line(self) -> str:
        """``~ budgets.max_tool_calls: 8 -> 12 (loosened)``: one line for a terminal."""
        text = f"{_SIGN[self.kind]} {self.path}"
        if self.summary:
            text += (": " if self.kind == "changed" else " ") + self.summary
        return f"{text} ({self.risk})" if self.risk else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "path": self.path,
            "kind": self.kind,
            "old": self.old,
            "new": self.new,
            "summary": self.summary,
            "risk": self.risk,
        }


@dataclass(frozen=True, slots=True)
class ReleaseDiff:
    """Everything that differs between ``old`` and ``new``, by section.

    ``prompt_diff`` and ``cedar_diff`` are unified diffs of the prompt and of the Cedar the
    release evaluates (compiled from the YAML, then the raw rules), for reading; the changes
    are for judging.
    """

    old: Release
    new: Release
    prompt: tuple[Change, ...]
    model: tuple[Change, ...]
    tools: tuple[Change, ...]
    policies: tuple[Change, ...]
    budgets: tuple[Change, ...]
    other: tuple[Change, ...]
    prompt_diff: tuple[str, ...]
    cedar_diff: tuple[str, ...]

    @property
    def changes(self) -> tuple[Change, ...]:
        """Every change, section by section in ``SECTIONS`` order."""
        return tuple(change for section in SECTIONS for change in self.section(section))

    @property
    def same(self) -> bool:
        """The releases are one (same id) or their content does not differ."""
        return self.old.id == self.new.id or not (
            self.changes or self.prompt_diff or self.cedar_diff
        )

    def section(self, name: str) -> tuple[Change, ...]:
        """The changes of one section (``KeyError`` for a name not in ``SECTIONS``)."""
        if name not in SECTIONS:
            raise KeyError(name)
        changes: tuple[Change, ...] = getattr(self, name)
        return changes

    def loosened(self) -> tuple[Change, ...]:
        """The changes that let the agent do more: what a reviewer must look at first."""
        return tuple(change for change in self.changes if change.loosened)

    def as_dict(self) -> dict[str, Any]:
        """The diff as plain JSON (``json.dumps`` works on it)."""
        return {
            "old": _release_ref(self.old),
            "new": _release_ref(self.new),
            "same": self.same,
            "changes": {name: [c.as_dict() for c in self.section(name)] for name in SECTIONS},
            "loosened": [change.path for change in self.loosened()],
            "prompt_diff": list(self.prompt_diff),
            "cedar_diff": list(self.cedar_diff),
        }

    def lines(self) -> list[str]:
        """Plain text for a terminal: a header, the changes, then the prompt and Cedar diffs."""
        out = [f"{self.old.label} ({self.old.id[:12]}) -> {self.new.label} ({self.new.id[:12]})"]
        if self.same:
            return [*out, "no changes"]
        changes, loosened = self.changes, self.loosened()
        out.append(f"{len(changes)} change(s), {len(loosened)} loosen the charter")
        out.extend(change.line() for change in changes)
        if self.prompt_diff:
            out.extend(["", "prompt diff:", *self.prompt_diff])
        if self.cedar_diff:
            out.extend(["", "Cedar diff:", *self.cedar_diff])
        return out


def diff_releases(old: Release, new: Release) -> ReleaseDiff:
    """What changed from ``old`` to ``new`` (any two releases, even of different charters)."""
    before, after = old.content, new.content
    spec_old: dict[str, Any] = before["charter"]
    spec_new: dict[str, Any] = after["charter"]
    prompt_old, prompt_new = str(before.get("prompt", "")), str(after.get("prompt", ""))
    cedar_old, cedar_new = str(before.get("cedar", "")), str(after.get("cedar", ""))
    prompt_diff = _unified(prompt_old, prompt_new, old, new, "prompt")
    return ReleaseDiff(
        old=old,
        new=new,
        prompt=tuple(_prompt_changes(spec_old, spec_new, prompt_old, prompt_new, prompt_diff)),
        model=tuple(
            _mapping_changes("model", "model", spec_old.get("model"), spec_new.get("model"))
        ),
        tools=tuple(_tools_changes(before, after)),
        policies=tuple(
            _policies_changes(spec_old.get("policies"), spec_new.get("policies"))
            + _cedar_rule_changes(cedar_old, cedar_new)
        ),
        budgets=tuple(
            _mapping_changes(
                "budgets", "budgets", spec_old.get("budgets"), spec_new.get("budgets"), _ceiling
            )
        ),
        other=tuple(_other_changes(spec_old, spec_new)),
        prompt_diff=prompt_diff,
        cedar_diff=_unified(cedar_old, cedar_new, old, new, "cedar"),
    )


# --- sections ----------------------------------------------------------------------------


def _prompt_changes(
    spec_old: dict[str, Any],
    spec_new: dict[str, Any],
    text_old: str,
    text_new: str,
    diff: tuple[str, ...],
) -> list[Change]:
    """The prompt file's path and text; the text's old/new are sha256s, as audit records
    carry them, since the whole text is in ``prompt_diff`` already."""
    changes = _value_changes(
        "prompt", "prompt.file", spec_old.get("prompt"), spec_new.get("prompt")
    )
    if text_old != text_new:
        added = sum(1 for line in diff if line.startswith("+") and not line.startswith("+++"))
        removed = sum(1 for line in diff if line.startswith("-") and not line.startswith("---"))
        changes.append(
            Change(
                "prompt", "prompt", "changed", sha256_hex(text_old), sha256_hex(text_new),
                f"+{added} -{removed} lines (see the prompt diff)",
            )
        )  # fmt: skip
    return changes


def _tools_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """Tools added or removed (a new tool widens the allowlist: loosened), then per tool its
    declaration, its constraints and its arguments' schema."""
    decls_old: dict[str, Any] = before["charter"].get("tools", {})
    decls_new: dict[str, Any] = after["charter"].get("tools", {})
    schemas_old: dict[str, Any] = before.get("tools", {})
    schemas_new: dict[str, Any] = after.get("tools", {})
    changes: list[Change] = []
    for tool in sorted(decls_old.keys() | decls_new.keys()):
        path = f"tools.{tool}"
        if tool not in decls_old:
            decl = decls_new[tool]
            changes.append(
                Change("tools", path, "added", None, decl, str(decl.get("effect", "")), "loosened")
            )
        elif tool not in decls_new:
            decl = decls_old[tool]
            changes.append(
                Change(
                    "tools", path, "removed", decl, None, str(decl.get("effect", "")), "tightened"
                )
            )
        else:
            changes += _tool_changes(tool, decls_old[tool], decls_new[tool])
            changes += _argument_changes(tool, schemas_old.get(tool, {}), schemas_new.get(tool, {}))
    return changes


def _tool_changes(tool: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    path = f"tools.{tool}"
    changes: list[Change] = []
    for key in sorted((old.keys() | new.keys()) - {"constraints"}):
        changes += _value_changes(
            "tools", f"{path}.{key}", old.get(key), new.get(key), _TOOL_FIELD_RISK.get(key)
        )
    constraints_old: dict[str, Any] = old.get("constraints") or {}
    constraints_new: dict[str, Any] = new.get("constraints") or {}
    for arg in sorted(constraints_old.keys() | constraints_new.keys()):
        kinds_old: dict[str, Any] = constraints_old.get(arg) or {}
        kinds_new: dict[str, Any] = constraints_new.get(arg) or {}
        for kind in sorted(kinds_old.keys() | kinds_new.keys()):
            changes += _value_changes(
                "tools", f"{path}.constraints.{arg}.{kind}", kinds_old.get(kind),
                kinds_new.get(kind), _CONSTRAINT_RISK.get(kind, _present_is_safer),
            )  # fmt: skip
    return changes


def _argument_changes(tool: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """The tool's argument schema (what the toolkit's code accepts): arguments added or
    removed, a type or required-ness changed, and any other detail, key by key."""
    props_old: dict[str, Any] = old.get("properties", {})
    props_new: dict[str, Any] = new.get("properties", {})
    required_old, required_new = set(old.get("required", [])), set(new.get("required", []))
    changes: list[Change] = []
    for arg in sorted(props_old.keys() | props_new.keys()):
        path = f"tools.{tool}.args.{arg}"
        if arg not in props_old or arg not in props_new:
            present, required = (
                (props_new[arg], arg in required_new)
                if arg in props_new
                else (props_old[arg], arg in required_old)
            )
            kind: ChangeKind = "added" if arg in props_new else "removed"
            summary = f"{_type_of(present)}, {'required' if required else 'optional'}"
            changes.append(
                Change(
                    "tools", path, kind, None if kind == "added" else present,
                    present if kind == "added" else None, summary,
                )
            )  # fmt: skip
            continue
        prop_old, prop_new = props_old[arg], props_new[arg]
        type_old, type_new = _type_of(prop_old), _type_of(prop_new)
        changes += _value_changes("tools", f"{path}.type", type_old, type_new)
        if type_old == type_new:
            changes += _value_changes(
                "tools", f"{path}.anyOf", prop_old.get("anyOf"), prop_new.get("anyOf")
            )
        changes += _value_changes(
            "tools", f"{path}.required", arg in required_old, arg in required_new
        )
        details_old = {k: v for k, v in prop_old.items() if k not in ("type", "anyOf")}
        details_new = {k: v for k, v in prop_new.items() if k not in ("type", "anyOf")}
        changes += _mapping_changes("tools", path, details_old, details_new, flatten=False)
    rest_old = {k: v for k, v in old.items() if k not in ("properties", "required")}
    rest_new = {k: v for k, v in new.items() if k not in ("properties", "required")}
    return changes + _mapping_changes(
        "tools", f"tools.{tool}.schema", rest_old, rest_new, flatten=False
    )


def _policies_changes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[Change]:
    old, new = old or {}, new or {}
    changes: list[Change] = []
    for kind in _RULE_KINDS:
        changes += _rule_changes(kind, old.get(kind) or [], new.get(kind) or [])
    changes += _taint_changes(old.get("untrusted_content"), new.get("untrusted_content"))
    for key in sorted((old.keys() | new.keys()) - {*_RULE_KINDS, "untrusted_content"}):
        changes += _value_changes(
            "policies", f"policies.{key}", old.get(key), new.get(key), _POLICY_RISK.get(key)
        )
    return changes


def _rule_changes(kind: str, old: list[Any], new: list[Any]) -> list[Change]:
    """Approval or deny rules, paired up so an edited threshold reads as one change.

    Rules pair first by action and condition (so reordering is no change), then the rest by
    action in order of position (so ``amount_usd > 200`` -> ``> 500`` is one rule changed);
    what is left was added or removed. Either kind of rule restricts, so one that covers
    fewer calls, or is gone, loosens.
    """
    old_left, new_left = list(enumerate(old)), list(enumerate(new))
    pairs: list[tuple[int, dict[str, Any], int, dict[str, Any]]] = []
    for same in (_rule_key, _rule_action):
        for new_index, new_rule in list(new_left):
            match = next((o for o in old_left if same(o[1]) == same(new_rule)), None)
            if match is not None:
                old_left.remove(match)
                new_left.remove((new_index, new_rule))
                pairs.append((match[0], match[1], new_index, new_rule))
    changes: list[Change] = []
    for _, old_rule, new_index, new_rule in sorted(pairs, key=lambda pair: pair[2]):
        if old_rule != new_rule:
            changes.append(
                Change(
                    "policies", f"policies.{kind}[{new_index}]", "changed", old_rule, new_rule,
                    _rule_edit(old_rule, new_rule), _coverage_risk(old_rule, new_rule),
                )
            )  # fmt: skip
    for index, rule in old_left:
        changes.append(
            Change(
                "policies", f"policies.{kind}[{index}]", "removed", rule, None,
                _rule_text(rule), "loosened",
            )
        )  # fmt: skip
    for index, rule in new_left:
        changes.append(
            Change(
                "policies", f"policies.{kind}[{index}]", "added", None, rule,
                _rule_text(rule), "tightened",
            )
        )  # fmt: skip
    return changes


def _taint_changes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[Change]:
    """Sinks per tool (which of its arguments are protected) and ``on_tainted_args``."""
    sinks_old, sinks_new = _sinks(old), _sinks(new)
    changes: list[Change] = []
    for tool in sorted(sinks_old.keys() | sinks_new.keys()):
        path = f"policies.untrusted_content.sinks.{tool}"
        if tool not in sinks_new:
            changes.append(
                Change("policies", path, "removed", sinks_old[tool], None,
                       _protected(sinks_old[tool]), "loosened")
            )  # fmt: skip
        elif tool not in sinks_old:
            changes.append(
                Change("policies", path, "added", None, sinks_new[tool],
                       _protected(sinks_new[tool]), "tightened")
            )  # fmt: skip
        elif sinks_old[tool] != sinks_new[tool]:
            changes.append(
                Change(
                    "policies", path, "changed", sinks_old[tool], sinks_new[tool],
                    f"{_protected(sinks_old[tool])} -> {_protected(sinks_new[tool])}",
                    _protected_risk(sinks_old[tool], sinks_new[tool]),
                )
            )  # fmt: skip
    changes += _value_changes(
        "policies", "policies.untrusted_content.on_tainted_args",
        (old or {}).get("on_tainted_args"), (new or {}).get("on_tainted_args"),
        _stricter_first("deny", "require_approval"),
    )  # fmt: skip
    return changes


def _cedar_rule_changes(old_text: str, new_text: str) -> list[Change]:
    """Raw Cedar rules (the charter's ``.cedar`` file) added, removed or edited, by ``@id``.

    Rules the compiler wrote from the YAML are left out: their YAML changes are shown
    already. A rule whose id alone changed (an un-annotated rule's default ``file:line`` id
    moves when lines are added above it) is one rename, not a removal and an addition.
    """
    rules_old, rules_new = _raw_cedar_rules(old_text), _raw_cedar_rules(new_text)
    removed = sorted(rules_old.keys() - rules_new.keys())
    added = sorted(rules_new.keys() - rules_old.keys())
    changes: list[Change] = []
    for rule_id in removed:
        body = _without_id(rules_old[rule_id])
        twin = next((a for a in added if _without_id(rules_new[a]) == body), None)
        if twin is not None:
            added.remove(twin)
            changes.append(
                Change("policies", f"policies.cedar[{twin}]", "changed", rules_old[rule_id],
                       rules_new[twin], f"renamed from {rule_id}")
            )  # fmt: skip
            continue
        effect = _cedar_effect(rules_old[rule_id])
        changes.append(
            Change("policies", f"policies.cedar[{rule_id}]", "removed", rules_old[rule_id], None,
                   effect, _cedar_risk(effect, added=False))
        )  # fmt: skip
    for rule_id in added:
        effect = _cedar_effect(rules_new[rule_id])
        changes.append(
            Change("policies", f"policies.cedar[{rule_id}]", "added", None, rules_new[rule_id],
                   effect, _cedar_risk(effect, added=True))
        )  # fmt: skip
    for rule_id in sorted(rules_old.keys() & rules_new.keys()):
        if rules_old[rule_id] != rules_new[rule_id]:
            changes.append(
                Change("policies", f"policies.cedar[{rule_id}]", "changed", rules_old[rule_id],
                       rules_new[rule_id], "rule text changed (see the Cedar diff)")
            )  # fmt: skip
    return changes


def _other_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every other top-level key (slos, evals, concurrency, rollout, autonomy, description,
    the name, the toolkit), one change per key."""
    changes: list[Change] = []
    for key in sorted((old.keys() | new.keys()) - _OWN_SECTIONS):
        changes += _value_changes("other", key, old.get(key), new.get(key))
    return changes


# --- generic comparison ------------------------------------------------------------------


def _mapping_changes(
    section: str,
    prefix: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    risk_of: RiskOf | None = None,
    *,
    flatten: bool = True,
) -> list[Change]:
    """Key by key (nested mappings as dotted paths when ``flatten``) under ``prefix``."""
    leaves_old = _leaves(old or {}, prefix, flatten)
    leaves_new = _leaves(new or {}, prefix, flatten)
    changes: list[Change] = []
    for path in sorted(leaves_old.keys() | leaves_new.keys()):
        changes += _value_changes(
            section, path, leaves_old.get(path), leaves_new.get(path), risk_of
        )
    return changes


def _leaves(value: Mapping[str, Any], prefix: str, flatten: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}.{key}"
        if flatten and isinstance(item, Mapping):
            out.update(_leaves(item, path, flatten))
        elif item is not None:
            out[path] = item
    return out


def _value_changes(
    section: str, path: str, old: Any, new: Any, risk_of: RiskOf | None = None
) -> list[Change]:
    """No change, or one: added (``old`` is None), removed (``new`` is None) or changed."""
    if old == new and isinstance(old, bool) == isinstance(new, bool):
        return []
    risk = risk_of(old, new) if risk_of is not None else ""
    if old is None:
        return [Change(section, path, "added", None, new, _show(new), risk)]
    if new is None:
        return [Change(section, path, "removed", old, None, _show(old), risk)]
    return [Change(section, path, "changed", old, new, f"{_show(old)} -> {_show(new)}", risk)]


def _show(value: Any) -> str:
    """A value as a reviewer reads it: ``5000``, ``true``, ``["a", "b"]``, cut at 100 chars."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, str | int | float):
        text = str(value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _unified(old: str, new: str, a: Release, b: Release, what: str) -> tuple[str, ...]:
    if old == new:
        return ()
    return tuple(
        difflib.unified_diff(
            old.splitlines(), new.splitlines(), fromfile=f"{a.label}/{what}",
            tofile=f"{b.label}/{what}", n=_CONTEXT_LINES, lineterm="",
        )
    )  # fmt: skip


def _release_ref(release: Release) -> dict[str, Any]:
    return {"id": release.id, "label": release.label, "version": release.version}


# --- risk ----------------------------------------------------------------------------------


def _number(value: Any) -> Decimal | None:
    """A JSON number or a Decimal's exact string as a Decimal; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if isinstance(value, str) and _NUMBER.match(value):
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            return None
    return None


def _ceiling(old: Any, new: Any) -> Risk:
    """A limit where larger, or none at all, allows more (a budget, ``max``, a timeout)."""
    low, high = _number(old), _number(new)
    if old is None and high is not None:
        return "tightened"
    if new is None and low is not None:
        return "loosened"
    if low is None or high is None or low == high:
        return ""
    return "loosened" if high > low else "tightened"


def _floor(old: Any, new: Any) -> Risk:
    """A limit where smaller, or none at all, allows more (``min``)."""
    low, high = _number(old), _number(new)
    if old is None and high is not None:
        return "tightened"
    if new is None and low is not None:
        return "loosened"
    if low is None or high is None or low == high:
        return ""
    return "loosened" if high < low else "tightened"


def _allowed(old: Any, new: Any) -> Risk:
    """A list of allowed values (``in``, ``domain_in``, ``roles``); None allows anything."""
    if old is None:
        return "tightened" if new is not None else ""
    if new is None:
        return "loosened"
    before, after = {_show(v) for v in old}, {_show(v) for v in new}
    if after - before:
        return "loosened"
    return "tightened" if before - after else ""


def _present_is_safer(old: Any, new: Any) -> Risk:
    """A safeguard that is there or not (``pattern``, ``defer``, ``compensate``)."""
    if old is None and new is not None:
        return "tightened"
    if new is None and old is not None:
        return "loosened"
    return ""


def _stricter_first(*choices: str) -> RiskOf:
    """A choice among values listed strictest first (``deny`` before ``require_approval``)."""

    def risk(old: Any, new: Any) -> Risk:
        if old not in choices or new not in choices or old == new:
            return ""
        return "loosened" if choices.index(new) > choices.index(old) else "tightened"

    return risk


def _output_risk(old: Any, new: Any) -> Risk:
    """Tool output: trusted < some fields untrusted < untrusted; trusting more loosens,
    since a value read from it can then reach a sink untainted."""

    def level(output: Any) -> tuple[int, set[str]]:
        if isinstance(output, Mapping):
            return 1, {str(f).casefold() for f in output.get("untrusted_fields", [])}
        return {"untrusted": 2, "trusted": 0}.get(str(output), 0), set()

    (rank_old, fields_old), (rank_new, fields_new) = level(old), level(new)
    if rank_old != rank_new:
        return "loosened" if rank_new < rank_old else "tightened"
    if fields_old - fields_new:
        return "loosened"
    return "tightened" if fields_new - fields_old else ""


_TOOL_FIELD_RISK: Final[dict[str, RiskOf]] = {
    # Declaring a tool less dangerous than it was drops the safeguards its effect implies.
    "effect": _stricter_first("irreversible", "write", "read"),
    "output": _output_risk,
    "defer": _present_is_safer,
    "compensate": _present_is_safer,
    "roles": _allowed,
    "timeout_seconds": _ceiling,
}
_CONSTRAINT_RISK: Final[dict[str, RiskOf]] = {
    "max": _ceiling,
    "max_length": _ceiling,
    "min": _floor,
    "in": _allowed,
    "domain_in": _allowed,
    "pattern": _present_is_safer,
}
_POLICY_RISK: Final[dict[str, RiskOf]] = {
    "on_deny": _stricter_first("stop", "continue"),
    "max_argument_bytes": _ceiling,
}


# --- policy rules ------------------------------------------------------------------------


def _rule_key(rule: Mapping[str, Any]) -> tuple[Any, ...]:
    return rule.get("action"), rule.get("when"), bool(rule.get("any"))


def _rule_action(rule: Mapping[str, Any]) -> tuple[Any, ...]:
    return (rule.get("action"),)


def _condition(rule: Mapping[str, Any]) -> str:
    return f"when {rule['when']}" if rule.get("when") else "always"


def _rule_text(rule: Mapping[str, Any]) -> str:
    """``issue_refund when amount_usd > 200``, or just ``delete_record`` for ``any: true``."""
    action = str(rule.get("action"))
    return f"{action} when {rule['when']}" if rule.get("when") else action


def _rule_edit(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    parts = []
    if _rule_key(old)[1:] != _rule_key(new)[1:]:
        parts.append(f"{old.get('action')} {_condition(old)} -> {_condition(new)}")
    if old.get("reason") != new.get("reason"):
        parts.append(f"reason {_show(old.get('reason'))!r} -> {_show(new.get('reason'))!r}")
    return "; ".join(parts) or f"{old.get('action')}: {_show(old)} -> {_show(new)}"


@dataclass(frozen=True, slots=True)
class _Threshold:
    """``amount_usd > 200``: the rule covers the values above (or below) a bound."""

    arg: str
    above: bool
    bound: Decimal
    inclusive: bool


def _coverage(rule: Mapping[str, Any]) -> _Threshold | Literal["all"] | None:
    """Which calls a rule covers, when that can be told: all of them, or a threshold."""
    if rule.get("any"):
        return "all"
    match = _THRESHOLD.match(str(rule.get("when", "")))
    if match is None:
        return None
    arg, op, bound = match.groups()
    return _Threshold(arg, op.startswith(">"), Decimal(bound), op.endswith("="))


def _wider(old: _Threshold | Literal["all"] | None, new: _Threshold | Literal["all"] | None) -> int:
    """1 when ``new`` covers more calls than ``old``, -1 fewer, 0 the same or unknown."""
    if new == "all" or old == "all":
        return 0 if new == old else (1 if new == "all" else -1)
    if old is None or new is None or (old.arg, old.above) != (new.arg, new.above):
        return 0
    if old.bound != new.bound:
        lower = new.bound < old.bound
        return 1 if lower == new.above else -1
    if old.inclusive != new.inclusive:
        return 1 if new.inclusive else -1
    return 0


def _coverage_risk(old: Mapping[str, Any], new: Mapping[str, Any]) -> Risk:
    """A rule (approval or deny) restricts the calls it covers: covering fewer loosens."""
    if old.get("action") != new.get("action"):
        return ""
    wider = _wider(_coverage(old), _coverage(new))
    return "tightened" if wider > 0 else ("loosened" if wider < 0 else "")


def _sinks(block: Mapping[str, Any] | None) -> dict[str, list[str] | None]:
    """Each sink tool and its protected arguments (None: all of them)."""
    out: dict[str, list[str] | None] = {}
    for sink in (block or {}).get("sinks", []):
        tool, args = (sink, None) if isinstance(sink, str) else (sink["tool"], sink.get("args"))
        if args is None or (tool in out and out[tool] is None):
            out[tool] = None
        else:
            out[tool] = sorted({*(out.get(tool) or []), *map(str, args)})
    return out


def _protected(args: Iterable[str] | None) -> str:
    return "all arguments" if args is None else "arguments " + ", ".join(args)


def _protected_risk(old: list[str] | None, new: list[str] | None) -> Risk:
    """An argument no longer watched for tainted values loosens; watching more tightens."""
    if old is None:
        return "loosened" if new is not None else ""
    if new is None:
        return "tightened"
    if set(old) - set(new):
        return "loosened"
    return "tightened" if set(new) - set(old) else ""


# --- Cedar ---------------------------------------------------------------------------------


def _raw_cedar_rules(text: str) -> dict[str, str]:
    """The rules not compiled from the YAML, by ``@id`` (every rule of a release has one)."""
    rules: dict[str, str] = {}
    for statement in split_cedar_statements(text):
        rule_id = _annotations(statement.text).get("id")
        if rule_id is not None and not _COMPILED_ID.match(rule_id):
            rules[rule_id] = statement.text.strip()
    return rules


def _annotations(rule: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, quoted in _ANNOTATION.findall(_COMMENT.sub("", rule)):
        try:
            found.setdefault(name, str(json.loads(quoted)))
        except json.JSONDecodeError:
            found.setdefault(name, quoted[1:-1])
    return found


def _without_id(rule: str) -> str:
    return " ".join(
        _ANNOTATION.sub(lambda m: "" if m.group(1) == "id" else m.group(0), rule).split()
    )


def _cedar_effect(rule: str) -> str:
    """``permit`` or ``forbid`` (with its verdict when it asks for approval), for a summary."""
    match = _EFFECT.match(_ANNOTATION.sub("", _COMMENT.sub("", rule)))
    effect = match.group(1) if match else ""
    if effect == "forbid" and _annotations(rule).get("verdict") == "require_approval":
        return "forbid (require_approval)"
    return effect


def _cedar_risk(effect: str, *, added: bool) -> Risk:
    """A forbid rule restricts and a permit allows: adding the one tightens, the other loosens."""
    if effect.startswith("forbid"):
        return "tightened" if added else "loosened"
    if effect == "permit":
        return "loosened" if added else "tightened"
    return ""


def _type_of(prop: Mapping[str, Any]) -> str:
    """A JSON schema property's type in words: ``string``, ``number | null``."""
    if "type" in prop:
        kind = prop["type"]
        return " | ".join(map(str, kind)) if isinstance(kind, list) else str(kind)
    if "anyOf" in prop:
        return " | ".join(_type_of(option) for option in prop["anyOf"])
    return "any"
