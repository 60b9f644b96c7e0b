"""Loading a charter: YAML -> schema -> cross-references -> tools -> Cedar, every problem kept.

``load_charter`` never stops at the first problem it can get past: an operator fixing a file
wants the whole list, each as ``file:line: what is wrong; how to fix it``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from charter.contract.cedar_checks import CedarChecks
from charter.contract.cedar_compile import (
    DerivedFact,
    RuleMeta,
    argument_names,
    argument_types,
    cedar_schema,
    compile_charter_rules,
)
from charter.contract.conditions import CedarType
from charter.contract.files import FileRefused, read_reference
from charter.contract.schema import CharterSpec, SinkSpec
from charter.contract.tool import ToolSpec
from charter.contract.yaml_schema import plain, schema_problems
from charter.contract.yaml_source import YamlDocument, clip, load_yaml, printable
from charter.core.canonical import canonical_json, sha256_hex
from charter.core.errors import CharterInvalid, Problem, UserError
from charter.core.imports import import_named

__all__ = ["Charter", "check_charter", "derive_charter", "load_charter"]

_NAME_IN_MESSAGE = 200  # a file name quoted in a problem is clipped so the reason after it shows


@dataclass(frozen=True, slots=True)
class Charter:
    """A loaded, validated and compiled charter with its tools bound.

    Attributes:
        spec: the parsed file.
        path: where it was loaded from.
        content_sha256: hash of the canonical form of the file plus prompt and Cedar texts;
            it identifies exactly what governed a run.
        prompt_text / prompt_sha256: the system prompt and its hash.
        content: the canonical text hashed into ``content_sha256`` (the file, prompt, Cedar
            and tool schemas): trusted text for taint tracking.
        tools: the bound tool implementations, by name.
        cedar_text: every policy (compiled and raw), as evaluated.
        cedar_schema: the schema the policies were validated against.
        rules: what each policy id means (permit / deny / require_approval) and where it came from.
        derived: per tool, the facts computed in Python for Cedar.
        tool_args: per tool, the arguments policies can see and their Cedar types.
    """

    spec: CharterSpec
    path: Path | None
    content_sha256: str
    prompt_text: str
    content: str
    prompt_sha256: str
    tools: Mapping[str, ToolSpec]
    cedar_text: str
    cedar_schema: dict[str, Any]
    rules: Mapping[str, RuleMeta]
    derived: Mapping[str, tuple[DerivedFact, ...]]
    tool_args: Mapping[str, Mapping[str, tuple[CedarType, bool]]]

    @property
    def name(self) -> str:
        return self.spec.charter

    @classmethod
    def load(cls, path: str | Path, *, tools: Sequence[ToolSpec] = ()) -> Charter:
        """Load ``path``; raise ``CharterInvalid`` listing every problem found."""
        return load_charter(Path(path), tools=tools)


def check_charter(path: Path, *, tools: Sequence[ToolSpec] = ()) -> list[Problem]:
    """Every problem with the charter at ``path`` (empty when it is valid)."""
    try:
        load_charter(path, tools=tools)
    except CharterInvalid as exc:
        return list(exc.problems)
    return []


def load_charter(path: Path, *, tools: Sequence[ToolSpec] = ()) -> Charter:
    """Load and compile a charter; ``tools`` add to (and override) the charter's toolkit."""
    try:
        return _load(path, tools)
    except CharterInvalid as exc:
        # Messages quote values from the file, which a hostile file can make huge or fill
        # with terminal escapes (and a raw Cedar file's name is the file's to choose).
        raise CharterInvalid(
            [
                replace(
                    p,
                    file=printable(p.file),
                    message=printable(clip(p.message)),
                    hint=printable(clip(p.hint)),
                )
                for p in exc.problems
            ]
        ) from None


def derive_charter(charter: Charter, data: Mapping[str, Any], *, label: str) -> Charter:
    """A new charter from edited spec ``data`` of ``charter`` (e.g. ``charter.spec.dump()``
    with a section removed), its prompt and Cedar files resolved next to the original and
    its tools bound as the original's are. ``label`` names it in problems (there is no file).

    Raises:
        CharterInvalid: the edited data is not a valid charter.
    """
    if charter.path is None:
        raise CharterInvalid([Problem(label, 1, "the charter was not loaded from a file")])
    doc = YamlDocument(label, dict(data))
    assembler = _Assembler(doc, _spec(doc), charter.path.parent, tuple(charter.tools.values()))
    return assembler.assemble(charter.path)


def _load(path: Path, tools: Sequence[ToolSpec]) -> Charter:
    display = str(path)
    loaded = load_yaml(path, display)
    if isinstance(loaded, Problem):
        raise CharterInvalid([loaded])
    doc = loaded
    if doc.data is None:
        raise CharterInvalid(
            [Problem(display, 1, "the file is empty", "start with 'charter: <name>'")]
        )
    if not isinstance(doc.data, dict):
        raise CharterInvalid(
            [
                Problem(
                    display, 1, "a charter must be a YAML mapping", "start with 'charter: <name>'"
                )
            ]
        )
    return _Assembler(doc, _spec(doc), path.parent, tools).assemble(path)


def _spec(doc: YamlDocument) -> CharterSpec:
    try:
        return CharterSpec.model_validate(plain(doc.data))
    except ValidationError as exc:
        raise CharterInvalid(
            schema_problems(doc, exc, CharterSpec, guide="docs/charter-file.md")
        ) from None


class _Assembler:
    """The semantic half of loading, collecting problems as it goes."""

    def __init__(
        self, doc: YamlDocument, spec: CharterSpec, base: Path, extra_tools: Sequence[ToolSpec]
    ) -> None:
        self.doc = doc
        self.spec = spec
        self.base = base
        self.extra_tools = extra_tools
        self.problems: list[Problem] = []

    def problem(self, loc: Sequence[str | int], message: str, hint: str = "") -> None:
        self.problems.append(self.doc.problem(loc, message, hint))

    def assemble(self, path: Path) -> Charter:
        spec = self.spec
        prompt_text = self._read_text(spec.prompt, ("prompt",), "prompt")
        self._check_references()
        bound = self._bind_tools()
        self._check_compensations(bound)
        tool_args = {name: argument_types(tool.json_schema) for name, tool in bound.items()}
        all_args = {name: argument_names(tool.json_schema) for name, tool in bound.items()}
        compiled = compile_charter_rules(
            spec, tool_args, lambda loc: f"{self.doc.file}:{self.doc.line_of(loc)}", all_args
        )
        for loc, message, hint in compiled.problems:
            self.problem(loc, message, hint)
        schema = cedar_schema(tool_args, compiled.derived, all_args)
        # With a tool unbound the schema lacks its action, so type-checking would only
        # repeat the binding problem as noise; syntax is still checked.
        complete = len(bound) == len(spec.tools)
        schema_json = json.dumps(schema) if complete else None
        cedar = CedarChecks(self.base, self.doc.file)
        cedar_text = compiled.text
        if spec.policies.cedar is not None:
            raw = self._read_text(spec.policies.cedar, ("policies", "cedar"), "Cedar policy")
            if raw is not None:
                cedar_text = cedar.add_raw(compiled, raw, spec.policies.cedar, schema_json)
        if cedar.check_compiled(compiled, schema_json) and not cedar.problems:
            cedar.check_engine_text(cedar_text, compiled.rules)
        self.problems += cedar.problems
        self._check_model()
        self._check_eval_files()
        if self.problems:
            raise CharterInvalid(sorted(self.problems, key=lambda p: (p.file, p.line)))
        prompt = prompt_text or ""
        try:
            content = canonical_json(
                {
                    "charter": spec.dump(),
                    "prompt": prompt,
                    "cedar": cedar_text,
                    "tools": {name: tool.json_schema for name, tool in sorted(bound.items())},
                }
            )
        except ValueError as exc:
            # The file's own text cannot carry a lone surrogate (yaml_source refuses it) and
            # the prompt and Cedar are decoded UTF-8, so this is a tool's schema: its
            # description or a default made in Python.
            raise CharterInvalid([self._unhashable(bound, exc)]) from None
        return Charter(
            spec=spec,
            path=path,
            content_sha256=sha256_hex(content),
            prompt_text=prompt,
            content=content,
            prompt_sha256=sha256_hex(prompt),
            tools=bound,
            cedar_text=cedar_text,
            cedar_schema=schema,
            rules=compiled.rules,
            derived=compiled.derived,
            tool_args=tool_args,
        )

    def _read_text(self, relative: str, loc: tuple[str, ...], what: str) -> str | None:
        # The name is clipped, not the message: the reason comes after it.
        raw = read_reference(
            self.base, relative, what=f"{what} file {clip(relative, _NAME_IN_MESSAGE)!r}"
        )
        if isinstance(raw, FileRefused):
            self.problem(loc, raw.message, raw.hint)
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.problem(loc, f"{what} file {relative!r} is not UTF-8", "save it as UTF-8")
            return None

    def _unhashable(self, bound: Mapping[str, ToolSpec], exc: ValueError) -> Problem:
        for name, tool in bound.items():
            try:
                canonical_json(tool.json_schema)
            except ValueError as tool_exc:
                return self.doc.problem(
                    ("tools", name),
                    f"tool {name!r} cannot be described exactly: {tool_exc}",
                    "fix the tool's docstring or argument defaults in its toolkit",
                )
        return self.doc.problem(
            (), f"the charter cannot be hashed: {exc}", "see docs/charter-file.md"
        )

    def _check_references(self) -> None:
        spec = self.spec
        declared = set(spec.tools)
        hint = f"declare it under tools: (declared: {', '.join(sorted(declared))})"
        for name, decl in spec.tools.items():
            if decl.compensate is not None and decl.compensate not in declared:
                self.problem(
                    ("tools", name, "compensate"),
                    f"compensation tool {decl.compensate!r} is not declared",
                    hint,
                )
            if decl.compensate is not None and decl.effect != "write":
                self.problem(
                    ("tools", name, "compensate"),
                    f"only write tools can be compensated; {name} is {decl.effect}",
                    "remove compensate, or defer irreversible tools instead",
                )
            if decl.defer is not None and decl.effect == "read":
                self.problem(
                    ("tools", name, "defer"),
                    "deferring a read tool has no effect",
                    "defer only write or irreversible tools",
                )
        for kind, rules in (
            ("require_approval_for", spec.policies.require_approval_for),
            ("deny", spec.policies.deny),
        ):
            for index, rule in enumerate(rules):
                if rule.action not in declared:
                    self.problem(
                        ("policies", kind, index, "action"),
                        f"policy names tool {rule.action!r}, which is not declared",
                        hint,
                    )
        if spec.policies.untrusted_content is not None:
            for index, sink in enumerate(spec.policies.untrusted_content.sinks):
                tool = sink.tool if isinstance(sink, SinkSpec) else sink
                if tool not in declared:
                    self.problem(
                        ("policies", "untrusted_content", "sinks", index),
                        f"sink {tool!r} is not a declared tool",
                        hint,
                    )
        self._check_autonomy(declared, hint)

    def _check_autonomy(self, declared: set[str], hint: str) -> None:
        """Each ``autonomy:`` rule names a declared tool, and a tool has at most one rule."""
        first: dict[str, int] = {}
        for index, rule in enumerate(self.spec.autonomy):
            if rule.tool not in declared:
                self.problem(
                    ("autonomy", index, "tool"),
                    f"autonomy rule names tool {rule.tool!r}, which is not declared",
                    hint,
                )
            elif rule.tool in first:
                self.problem(
                    ("autonomy", index, "tool"),
                    f"tool {rule.tool!r} already has an autonomy rule (on line "
                    f"{self.doc.line_of(('autonomy', first[rule.tool], 'tool'))})",
                    "keep one rule per tool: merge the two",
                )
            else:
                first[rule.tool] = index

    def _bind_tools(self) -> dict[str, ToolSpec]:
        available: dict[str, ToolSpec] = {}
        for index, module_name in enumerate(self.spec.toolkit):
            for found in self._import_toolkit(module_name, ("toolkit", index)):
                available[found.name] = found
        for extra in self.extra_tools:
            available[extra.name] = extra
        bound: dict[str, ToolSpec] = {}
        for name in self.spec.tools:
            if name in available:
                bound[name] = available[name]
            else:
                self.problem(
                    ("tools", name),
                    f"tool {name!r} is declared but no toolkit provides it",
                    "add the module defining it to toolkit:, or pass it with tools=[...]"
                    if available or self.spec.toolkit
                    else "list the module that defines it under toolkit:",
                )
        return bound

    def _check_compensations(self, bound: Mapping[str, ToolSpec]) -> None:
        """A compensation is called with the original call's arguments it accepts: it must
        not require any the original does not have."""
        for name, decl in self.spec.tools.items():
            original, compensation = bound.get(name), bound.get(decl.compensate or "")
            if original is None or compensation is None or decl.effect != "write":
                continue  # a non-write being compensated is reported on its own
            given = set(original.json_schema.get("properties", {}))
            missing = sorted(set(compensation.json_schema.get("required", [])) - given)
            if missing:
                self.problem(
                    ("tools", name, "compensate"),
                    f"{decl.compensate} requires {', '.join(missing)}, which {name} does not "
                    "take, so it cannot be called to take a call of it back",
                    f"give {decl.compensate} only arguments that {name} also has",
                )

    def _import_toolkit(self, module_name: str, loc: tuple[str | int, ...]) -> Iterable[ToolSpec]:
        module = self._import(module_name, loc, f"toolkit {module_name!r}")
        if module is None:
            return []
        found = [v for v in vars(module).values() if isinstance(v, ToolSpec)]
        if not found:
            self.problem(
                loc,
                f"toolkit {module_name!r} defines no @tool functions",
                "decorate the tool functions with @charter.tool",
            )
        return found

    def _import(self, module_name: str, loc: Sequence[str | int], what: str) -> Any:
        """Import code the charter names; None (with a problem at ``loc``) if it fails."""
        try:
            imported = import_named(module_name)
        except UserError as exc:  # importing runs the module: anything may go wrong
            self.problem(
                loc,
                f"cannot import {what}: {exc}",
                "check the module path and that its package is installed",
            )
            return None
        if imported.printed:
            first = imported.printed.strip().splitlines()[0] if imported.printed.strip() else ""
            self.problem(
                loc,
                f"{what} printed to standard output when imported ({len(imported.printed)} "
                f"characters, starting {first!r})",
                "a module named in a charter must not print when imported (it would mix with "
                "Charter's own output, e.g. --json); use logging",
            )
        return imported.module

    def _check_model(self) -> None:
        factory = self.spec.model.factory
        if factory is None:
            return
        module_name, _, attribute = factory.partition(":")
        module = self._import(module_name, ("model", "factory"), "model factory module")
        if module is None:
            return
        if attribute and not hasattr(module, attribute):
            self.problem(
                ("model", "factory"),
                f"module {module_name!r} has no attribute {attribute!r}",
                "write 'module:attribute'",
            )

    def _check_eval_files(self) -> None:
        evals = self.spec.evals
        if evals is None:
            return
        for key in ("golden", "redteam"):
            relative = getattr(evals, key)
            if relative is None:
                continue
            found = read_reference(
                self.base, relative, what=f"eval suite {clip(relative, _NAME_IN_MESSAGE)!r}"
            )
            if isinstance(found, FileRefused):
                self.problem(("evals", key), found.message, found.hint)
