"""Regular expressions someone other than Charter's authors wrote, run on text an attacker
may have chosen: compiled once, matched in linear time, meaning what Python's ``re`` means.

A charter's ``constraints: {account: {pattern: ...}}`` and an eval suite's ``matches:`` are
written by operators and tested against values a model produced, which a prompt injection can
steer. Python's ``re`` backtracks: ``^(a|a)+$`` against 30 ``a``s and a ``!`` takes minutes,
blocking the event loop. So patterns run on RE2 (``google-re2``), whose time is linear in the
text, and a pattern RE2 cannot run that way (backreferences, lookaround, atomic groups,
possessive quantifiers) is refused when it is compiled, which is when its file is loaded.

Python's syntax is translated so a pattern keeps its meaning:

- ``\\d``, ``\\w``, ``\\s`` and their negations are Unicode, as in Python (RE2's are ASCII):
  the character sets are computed from Python's own ``re``, once, on first use;
- ``\\Z`` is the end of the text (RE2 spells it ``\\z``); ``{,n}`` is ``{0,n}``;
- ``\\uXXXX``, ``\\UXXXXXXXX``, ``\\N{NAME}`` and octal escapes become code points;
- ``(?#...)`` comments are dropped;
- when searching, ``$`` also matches before a newline that ends the text (as Python's ``$``);
  a whole match (``full=True``) is Python's ``fullmatch``.

Refused, with a message saying why: ``\\b`` and ``\\B`` (RE2's word boundaries are ASCII,
Python's Unicode, so a boundary would silently mean something else), backreferences, the
``x``, ``a``, ``L`` and ``u`` flags, and any pattern longer than ``MAX_PATTERN`` characters or
too large for RE2's memory budget.

Matching answers only "does it match": a text longer than ``MAX_TEXT`` characters, or one
that is not valid Unicode (a lone surrogate), does not match. So use these patterns only
where "no match" is the safe answer (an allow-list, a check that must find something).
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
import warnings
from array import array
from dataclasses import dataclass
from typing import Any, Final

import re2  # type: ignore[import-untyped]

from charter.core.errors import PatternInvalid

__all__ = ["MAX_PATTERN", "MAX_TEXT", "UserPattern", "compile_pattern"]

MAX_PATTERN: Final = 1_000
_ANCHOR_BOTH: Final = re2._Anchor.ANCHOR_BOTH
_UNANCHORED: Final = re2._Anchor.UNANCHORED
_NO_MATCH: Final = re2._NULL_SPAN
MAX_TEXT: Final = 1_000_000

_SETS: Final = {"d": r"\d", "w": r"\w", "s": r"\s"}
_HEX_DIGITS: Final = {"x": 2, "u": 4, "U": 8}  # escape -> how many hex digits follow
_REFUSED_FLAGS: Final = {"x": "verbose", "a": "ASCII", "L": "locale", "u": "unicode"}
_FLAGS: Final = re.compile(r"\(\?([a-zA-Z-]+)[:)]")
_ZERO_TO: Final = re.compile(r"\{,(\d+)\}")  # Python's {,n} is {0,n}; RE2 reads it as text
_BACKREFERENCE: Final = (
    "cannot run in linear time: it refers back to a group (\\1, (?P=name)); "
    "match the text itself instead"
)


@dataclass(frozen=True, slots=True)
class UserPattern:
    """A compiled pattern: ``matches(text)`` runs in time linear in ``len(text)``.

    Attributes:
        source: the pattern as written.
        full: whether the whole text must match (Python's ``fullmatch``) rather than any
            part of it (``search``).
    """

    source: str
    full: bool
    _compiled: Any

    def matches(self, text: str) -> bool:
        """Whether ``text`` matches; False for a text too long or not valid Unicode."""
        if len(text) > MAX_TEXT:
            return False
        try:
            encoded = text.encode("utf-8")
        except UnicodeEncodeError:
            return False
        # RE2's own Match on the bytes, not the wrapper's fullmatch/search: those build a
        # match object and map byte offsets back to characters, 6.8 µs against 0.9 µs for
        # a short value, on every call of a tool with a pattern constraint. Only "does it
        # match" is asked here. (The binding's Match is what the wrapper itself calls.)
        anchor = _ANCHOR_BOTH if self.full else _UNANCHORED
        spans = self._compiled._regexp.Match(anchor, encoded, 0, len(encoded))
        return bool(spans[0] != _NO_MATCH)


def compile_pattern(source: str, *, full: bool) -> UserPattern:
    """Compile ``source`` (Python syntax) for linear-time matching; see the module docstring.

    Raises:
        PatternInvalid: the pattern is too long, is not a valid regular expression, or uses
            something that cannot run in linear time or would change meaning.
    """
    return _compile(source, full)


@functools.lru_cache(maxsize=256)
def _compile(source: str, full: bool) -> UserPattern:
    if len(source) > MAX_PATTERN:
        raise PatternInvalid(
            source, f"is {len(source)} characters long; at most {MAX_PATTERN} are allowed"
        )
    try:
        with warnings.catch_warnings():
            # e.g. "possible nested set": the translation reads it as Python does.
            warnings.simplefilter("ignore")
            re.compile(source)
    except re.error as exc:
        raise PatternInvalid(source, f"is not a valid regular expression: {exc}") from None
    except (RecursionError, OverflowError, ValueError) as exc:
        raise PatternInvalid(source, f"is not a valid regular expression: {exc}") from None
    translated = _Translator(source, full).translate()
    options = re2.Options()
    options.log_errors = False  # the error is ours to report, not RE2's to print
    try:
        compiled = re2.compile(translated, options)
    except re2.error as exc:
        raise PatternInvalid(source, _re2_reason(exc)) from None
    return UserPattern(source, full, compiled)


def _re2_reason(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else str(exc)
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    if "too large" in str(detail) or "repetition size" in str(detail):
        return f"is too large to run in linear time ({detail}); use smaller repeat counts"
    return (
        f"cannot run in linear time ({detail}); write it without backreferences, "
        "lookaround, atomic groups and possessive quantifiers"
    )


class _Translator:
    """Python ``re`` syntax -> RE2 syntax with the same meaning, in one pass.

    It runs only on patterns Python's ``re`` compiled, so the syntax is known to be valid
    Python: what is left is what RE2 reads differently, or cannot run in linear time.
    """

    def __init__(self, source: str, full: bool) -> None:
        self.src = source
        self.full = full
        self.i = 0

    def fail(self, reason: str) -> PatternInvalid:
        return PatternInvalid(self.src, reason)

    def translate(self) -> str:
        src = self.src
        out: list[str] = []
        while self.i < len(src):
            char = src[self.i]
            if char == "\\":
                out.append(self._escape(in_class=False))
            elif char == "[":
                out.append(self._char_class())
            elif char == "(":
                out.append(self._group())
            elif char == "{" and (match := _ZERO_TO.match(src, self.i)):
                out.append(f"{{0,{match.group(1)}}}")
                self.i = match.end()
            elif char == "$" and not self.full:
                # Python's $ also matches before a newline that ends the text.
                out.append("(?:\\n?$)")
                self.i += 1
            else:
                out.append(_point(ord(char)) if char == "]" else char)
                self.i += 1
        return "".join(out)

    def _group(self) -> str:
        rest = self.src[self.i : self.i + 4]
        if rest.startswith(("(?=", "(?!", "(?<=", "(?<!")):
            raise self.fail(
                "cannot run in linear time: it looks ahead or behind ((?=, (?!, (?<=, (?<!); "
                "anchor it with ^ and $, or match the characters themselves"
            )
        if rest.startswith("(?P="):
            raise self.fail(_BACKREFERENCE)
        if rest.startswith("(?("):
            raise self.fail("cannot run in linear time: it has a conditional group (?(...)")
        if rest.startswith("(?#"):
            end = self.src.find(")", self.i)
            self.i = end + 1
            return ""
        flags = _FLAGS.match(self.src, self.i)
        if flags:
            for flag, name in _REFUSED_FLAGS.items():
                if flag in flags.group(1):
                    raise self.fail(
                        f"uses the {name} flag (?{flag}), which is not supported; remove it"
                    )
        self.i += 1
        return "("

    def _char_class(self) -> str:
        src = self.src
        self.i += 1
        parts = ["["]
        if src[self.i] == "^":
            parts.append("^")
            self.i += 1
        first = True
        while src[self.i] != "]" or first:
            char = src[self.i]
            if char == "\\":
                parts.append(self._escape(in_class=True))
            else:
                # A code point, not the character: `[` must not start a POSIX class in
                # RE2, and `]` first in the class is a literal in Python.
                parts.append(_point(ord(char)) if char in "[]" else char)
                self.i += 1
            first = False
        self.i += 1
        return "".join(parts) + "]"

    def _escape(self, *, in_class: bool) -> str:
        """Translate the escape at ``self.i`` (a backslash) and move past it."""
        char = self.src[self.i + 1]
        self.i += 2
        if char.lower() in _SETS:
            ranges = _python_set(char.lower())
            body = _class_body(_complement(ranges) if char.isupper() else ranges)
            return body if in_class else f"[{body}]"
        if char in "bB":
            if in_class:
                return "\\x08"  # backspace, as in Python
            raise self.fail(
                f"uses \\{char}, which is not supported (RE2's word boundaries are ASCII, "
                "Python's Unicode: the meaning would change); match the characters around "
                "the word instead, e.g. (^|\\W)word(\\W|$)"
            )
        if char == "Z":
            return "\\z"
        if char == "A":
            return "\\A"
        if char in "afnrtv":
            return "\\" + char
        if char in _HEX_DIGITS:
            return self._code_point(_HEX_DIGITS[char])
        if char == "N":
            end = self.src.index("}", self.i)
            name = self.src[self.i + 1 : end]
            self.i = end + 1
            return _point(ord(unicodedata.lookup(name)))
        if char.isdigit():
            return self._octal(char, in_class)
        return _point(ord(char))  # an escaped literal

    def _code_point(self, digits: int) -> str:
        text = self.src[self.i : self.i + digits]
        self.i += digits
        return _point(int(text, 16))

    def _octal(self, first: str, in_class: bool) -> str:
        """Python's rule: ``\\0`` with up to two more octal digits, three octal digits, and
        in a class any one to three, are a code point; ``\\1`` to ``\\99`` otherwise refer
        back to a group."""
        src = self.src
        if first == "0" or in_class:
            digits = first
            while len(digits) < 3 and self.i < len(src) and src[self.i] in "01234567":
                digits += src[self.i]
                self.i += 1
            return _point(int(digits, 8))
        follow = src[self.i : self.i + 2]
        if first in "01234567" and len(follow) == 2 and all(c in "01234567" for c in follow):
            self.i += 2
            return _point(int(first + follow, 8))
        raise self.fail(_BACKREFERENCE)


def _point(code: int) -> str:
    return f"\\x{{{code:x}}}"


def _class_body(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(
        _point(low) if low == high else f"{_point(low)}-{_point(high)}" for low, high in ranges
    )


@functools.cache
def _python_set(kind: str) -> tuple[tuple[int, int], ...]:
    """The code points Python's ``re`` matches with ``\\<kind>`` in a str pattern, as ranges:
    found by asking ``re`` itself, so the translation cannot drift from it."""
    found: list[tuple[int, int]] = []
    for offset, text in _all_characters():
        for match in re.finditer(_SETS[kind] + "+", text):
            found.append((offset + match.start(), offset + match.end() - 1))
    return tuple(found)


@functools.cache
def _all_characters() -> tuple[tuple[int, str], ...]:
    """Every code point but the surrogates (text to match never holds one), in two runs."""
    runs = ((0, 0xD800), (0xE000, sys.maxunicode + 1))
    return tuple(
        (low, array("I", range(low, high)).tobytes().decode("utf-32-le")) for low, high in runs
    )


def _complement(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    result: list[tuple[int, int]] = []
    start = 0
    for low, high in ranges:
        result.extend(_without_surrogates(start, low - 1))
        start = high + 1
    result.extend(_without_surrogates(start, sys.maxunicode))
    return tuple(result)


def _without_surrogates(low: int, high: int) -> list[tuple[int, int]]:
    if low > high:
        return []
    if high < 0xD800 or low > 0xDFFF:
        return [(low, high)]
    parts = []
    if low < 0xD800:
        parts.append((low, 0xD7FF))
    if high > 0xDFFF:
        parts.append((0xE000, high))
    return parts
