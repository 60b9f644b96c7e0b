"""Reading YAML while remembering where every value came from.

Hostile files are expected: size, nesting depth and alias expansion are bounded before any
validation walks the document, duplicate keys are errors, and bytes that are not UTF-8 are
reported with their line rather than decoded loosely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.tokens import (
    FlowMappingEndToken,
    FlowMappingStartToken,
    FlowSequenceEndToken,
    FlowSequenceStartToken,
    TagToken,
)

from charter.core.errors import Problem

__all__ = ["MAX_FILE_BYTES", "YamlDocument", "clip", "load_yaml"]

MAX_FILE_BYTES = 1_000_000
_MAX_NODES = 100_000
_MAX_DEPTH = 40
# Parsing costs about 20 microseconds a token (and more inside deep flow brackets), so the
# token count is bounded before parsing: a file just under MAX_FILE_BYTES could otherwise hold
# half a million tokens and take a minute to parse. A real charter has a few thousand.
_MAX_TOKENS = 50_000
_MAX_MESSAGE = 500

Loc = Sequence[str | int]


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """A parsed YAML document and a way to find the line of any value in it."""

    file: str
    data: Any
    text: str = ""  # the text parsed, for a hash of exactly what was read

    def line_of(self, loc: Loc) -> int:
        """1-based line of the value at ``loc`` (or of its nearest existing ancestor)."""
        node: Any = self.data
        line = 1
        for key in loc:
            if isinstance(node, CommentedMap) and key in node:
                line = node.lc.key(key)[0] + 1
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
                line = node.lc.item(key)[0] + 1
                node = node[key]
            else:
                break
        return line

    def problem(self, loc: Loc, message: str, hint: str = "") -> Problem:
        return Problem(self.file, self.line_of(loc), message, hint)


def load_yaml(path: Path, display: str | None = None) -> YamlDocument | Problem:
    """Parse ``path``; return the document, or the one problem that stops parsing."""
    shown = display or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Problem(shown, 1, "file not found", "check the path")
    except OSError as exc:
        return Problem(shown, 1, f"cannot read file: {exc.strerror}", "check permissions")
    if len(raw) > MAX_FILE_BYTES:
        return Problem(
            shown,
            1,
            f"file is {len(raw)} bytes, more than the {MAX_FILE_BYTES} allowed",
            "a charter is configuration; move data elsewhere",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return Problem(
            shown, line, f"byte 0x{raw[exc.start]:02x} is not valid UTF-8", "save the file as UTF-8"
        )
    scan_problem = _scan(text, shown)
    if scan_problem is not None:
        return scan_problem
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = clip((exc.problem or exc.context or "invalid YAML").strip())
        start = exc.context_mark
        if exc.problem and exc.context and start is not None and start.line + 1 != line:
            # e.g. an unclosed bracket: the error shows where it is noticed, the context
            # where the bracket was opened.
            what += f" ({exc.context.strip()} that starts on line {start.line + 1})"
        hint = (
            "keep only one of the two" if "duplicate key" in what else "fix the syntax at this line"
        )
        return Problem(shown, line, f"invalid YAML: {what}", hint)
    except YAMLError as exc:
        return Problem(shown, 1, f"invalid YAML: {exc}", "fix the syntax")
    except RecursionError:
        return Problem(shown, 1, "YAML nests too deeply", f"keep nesting under {_MAX_DEPTH}")
    size_problem = _check_size(data, shown)
    if size_problem is not None:
        return size_problem
    return YamlDocument(shown, data, text)


def _scan(text: str, shown: str) -> Problem | None:
    """Bound tokens and flow nesting, and refuse tags, before the (slower) parser runs."""
    depth = 0
    try:
        for count, token in enumerate(YAML(typ="rt").scan(text)):
            if count > _MAX_TOKENS:
                return Problem(
                    shown,
                    token.start_mark.line + 1,
                    f"document has more than {_MAX_TOKENS} YAML tokens",
                    "a charter is configuration; move data elsewhere",
                )
            if isinstance(token, FlowSequenceStartToken | FlowMappingStartToken):
                depth += 1
                if depth > _MAX_DEPTH:
                    return Problem(
                        shown,
                        token.start_mark.line + 1,
                        f"document nests deeper than {_MAX_DEPTH} levels",
                        "flatten the structure",
                    )
            elif isinstance(token, FlowSequenceEndToken | FlowMappingEndToken):
                depth -= 1
            elif isinstance(token, TagToken):
                # No tag is needed in a charter, and some (!!python/...) name code to run.
                handle, suffix = token.value
                tag = clip(f"{handle or ''}{suffix}")
                return Problem(
                    shown,
                    token.start_mark.line + 1,
                    f"YAML tag {tag!r} is not allowed in a charter",
                    "remove the tag; quote the value if it must be text",
                )
    except YAMLError:
        return None  # the parser reports it, with its line
    return None


def clip(text: str) -> str:
    """``text`` shortened for a message: hostile files can hold values of any size."""
    if len(text) <= _MAX_MESSAGE:
        return text
    return f"{text[: _MAX_MESSAGE - 30]}... ({len(text)} characters)"


def _check_size(data: Any, shown: str) -> Problem | None:
    """Count nodes as a validator would visit them: aliases count every time they are used."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > _MAX_NODES:
            return Problem(
                shown,
                1,
                f"document expands to more than {_MAX_NODES} values",
                "remove anchors/aliases that multiply content",
            )
        if depth > _MAX_DEPTH:
            return Problem(
                shown, 1, f"document nests deeper than {_MAX_DEPTH} levels", "flatten the structure"
            )
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
            stack.extend((k, depth + 1) for k in node)
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return None
