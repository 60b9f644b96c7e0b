"""Reading YAML while remembering where every value came from.

Hostile files are expected: size, nesting depth and alias expansion are bounded before any
validation walks the document, duplicate keys are errors, and bytes that are not UTF-8 are
reported with their line rather than decoded loosely.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.tokens import (
    AliasToken,
    AnchorToken,
    BlockEntryToken,
    BlockMappingStartToken,
    BlockSequenceStartToken,
    FlowMappingEndToken,
    FlowMappingStartToken,
    FlowSequenceEndToken,
    FlowSequenceStartToken,
    KeyToken,
    ScalarToken,
    TagToken,
)

from charter.contract.files import MAX_FILE_BYTES, FileRefused, read_file
from charter.core.errors import Problem

__all__ = ["MAX_FILE_BYTES", "YamlDocument", "clip", "load_yaml", "printable"]

_MAX_NODES = 100_000
_MAX_DEPTH = 40
# Parsing costs about 20 microseconds a token (and more inside deep flow brackets), so the
# token count is bounded before parsing: a file just under MAX_FILE_BYTES could otherwise hold
# half a million tokens and take a minute to parse. A real charter has a few thousand.
_MAX_TOKENS = 50_000
_MAX_MESSAGE = 500
_MAX_DIGITS = 1_000  # far above any amount, far below Python's 4,300-digit int limit
_LONG_NUMBER = re.compile(r"[-+]?[0-9_:.eE+-]+|[-+]?0[xob][0-9a-fA-F_]+")
_NOT_A_KEY = (
    AliasToken,
    BlockEntryToken,
    BlockMappingStartToken,
    BlockSequenceStartToken,
    FlowMappingStartToken,
    FlowSequenceStartToken,
)
_SURROGATE = re.compile("[\ud800-\udfff]")

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
    raw = read_file(path, max_bytes=MAX_FILE_BYTES)
    if isinstance(raw, FileRefused):
        return Problem(shown, 1, raw.message, raw.hint)
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
    except ReaderError as exc:  # a character YAML does not allow in a file (NUL, ESC...)
        position = exc.position if isinstance(exc.position, int) else 0
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        return Problem(
            shown,
            text[:position].count("\n") + 1,
            f"invalid YAML: character U+{code:04X} is not allowed in a YAML file",
            'remove it, or write it as an escape in a double-quoted string ("\\x01")',
        )
    except YAMLError as exc:
        return Problem(shown, 1, f"invalid YAML: {exc}", "fix the syntax")
    except RecursionError:
        return Problem(shown, 1, "YAML nests too deeply", f"keep nesting under {_MAX_DEPTH}")
    except (ValueError, TypeError) as exc:  # a constructor refusing what _scan let through
        return Problem(shown, 1, f"invalid YAML: {clip(str(exc))}", "fix the value")
    size_problem = _check_size(data, shown)
    if size_problem is not None:
        return size_problem
    doc = YamlDocument(shown, data, text)
    return _check_text(doc) or doc


def _scan(text: str, shown: str) -> Problem | None:
    """Bound tokens and flow nesting, and refuse tags, before the (slower) parser runs."""
    depth = 0
    after_key = False  # the previous token (anchors aside) opened a mapping key
    try:
        for count, token in enumerate(YAML(typ="rt").scan(text)):
            if after_key and isinstance(token, _NOT_A_KEY):
                # A mapping or list as a key (`? {a: b}: c`, `[a, b]: c`) or an alias to one:
                # nothing in a charter has one, and ruamel fails building some of them.
                return Problem(
                    shown,
                    token.start_mark.line + 1,
                    "a key must be text, not a mapping, a list or an alias",
                    "write the key as plain text",
                )
            if not isinstance(token, AnchorToken):
                after_key = isinstance(token, KeyToken)
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
            elif isinstance(token, ScalarToken) and token.plain and len(token.value) > _MAX_DIGITS:
                if _LONG_NUMBER.fullmatch(token.value):
                    # Python refuses to convert an integer of more than 4,300 digits.
                    return Problem(
                        shown,
                        token.start_mark.line + 1,
                        f"a number with {len(token.value)} digits is too long",
                        "quote it if it is text",
                    )
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


def _check_text(doc: YamlDocument) -> Problem | None:
    """Refuse text that is not Unicode: a lone surrogate (``"\\uD800"``) is valid YAML
    but cannot be written as UTF-8, so it could not be hashed, stored or sent anywhere."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(doc.data, ())]
    while stack:
        node, loc = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                stack.append((key, (*loc, key)))  # a key is found at its own line
                stack.append((value, (*loc, key)))
        elif isinstance(node, list):
            stack.extend((value, (*loc, index)) for index, value in enumerate(node))
        elif isinstance(node, str) and _SURROGATE.search(node):
            return doc.problem(
                loc,
                "text holds a lone surrogate (an escape such as \\uD800), which is not a character",
                "write the character itself (the file is UTF-8), or \\U0001F600 for one "
                "outside the Basic Multilingual Plane",
            )
    return None


def printable(text: str) -> str:
    """``text`` with control and format characters escaped (``\\x1b``, ``\\u202e``): a
    problem quotes values from the file, and a terminal must show them, not obey them."""
    if text.isprintable():  # the common case, and cheap
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in ("Cc", "Cf")
        else ch
        for ch in text
    )


def clip(text: str, limit: int = _MAX_MESSAGE) -> str:
    """``text`` shortened to about ``limit`` characters for a message: hostile files can hold
    values of any size."""
    if len(text) <= limit:
        return text
    return f"{text[: max(limit - 30, 10)]}... ({len(text)} characters)"


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
