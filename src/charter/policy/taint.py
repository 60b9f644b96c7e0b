"""Provenance of argument values: did this value come from untrusted content?

The run remembers the text of every untrusted tool output, and of everything trusted (the
user's request, the charter's prompt, trusted tool outputs). An argument value is *tainted*
when it appears in untrusted text but nowhere in trusted text: the model can only have copied
it from content an attacker may control. Matching is on the value's text, case-insensitive,
for every string and number inside the argument, at any depth, mapping keys included.

Fail closed: an argument that cannot be judged is tainted. That is one holding anything but
JSON-like data (an object whose contents cannot be seen, bytes, a subclass of str), one that
cannot be walked (it raises), and one too large to judge: over ``MAX_NODES`` values (also
what ends a cyclic value), ``MAX_TEXT`` characters, or ``MAX_SCAN`` characters of remembered
text scanned to judge them. Booleans and None are judged, and clean: they hold no text that
could have been copied (whether untrusted content *influenced* a call is what
``untrusted_read`` tells). Before anything untrusted is read nothing is tainted, whatever
the arguments hold: there is nothing yet to have copied from.

A tool's output is trusted, untrusted, or split by field (``output: {untrusted_fields: [..]}``
in the charter): see ``split_by_fields``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any, Final

from charter.core.canonical import to_jsonable

__all__ = [
    "MAX_NODES",
    "MAX_SCAN",
    "MAX_TEXT",
    "ProvenanceTracker",
    "TaintReport",
    "split_by_fields",
]

# The walk of one argument: values visited, characters of its own text, and characters of
# remembered text scanned to judge them (each distinct string and number costs a scan of what
# the run read: about a second per 10**9 characters). Far above what a tool's arguments hold
# (16 KiB by default) and a run reads; past any of them the argument cannot be judged.
MAX_NODES: Final = 10_000
MAX_TEXT: Final = 1_000_000
MAX_SCAN: Final = 100_000_000
# Joins the remembered texts of one kind so a value is looked for in one C call, not one
# Python step per text; a value holding it is looked for text by text instead.
_SEPARATOR: Final = "\x00"
# Exact types only: a subclass could hide what it holds (a mapping whose items() lies).
_CONTAINERS: Final = frozenset({dict, list, tuple, set, frozenset})


@dataclass(frozen=True, slots=True)
class TaintReport:
    untrusted_read: bool
    tainted: dict[str, bool]

    @property
    def any(self) -> bool:
        return any(self.tainted.values())


class ProvenanceTracker:
    """What a run has read, trusted and untrusted.

    Args:
        baseline: trusted text known before the run reads anything (the charter itself). It
            is left out of snapshots, which a durable run stores after every step: the
            charter would be most of each one.
    """

    def __init__(self, baseline: tuple[str, ...] = ()) -> None:
        self._baseline = [text.casefold() for text in baseline]
        self._trusted: list[str] = list(self._baseline)
        self._untrusted: list[str] = []
        self._lock = threading.Lock()
        self._joined: tuple[str, str] | None = None  # (untrusted, trusted); None: stale

    def snapshot(self) -> dict[str, list[str]]:
        """What has been read so far, as plain data (for durable runs; see ``restore``)."""
        with self._lock:
            return {
                "trusted": self._trusted[len(self._baseline) :],
                "untrusted": list(self._untrusted),
            }

    def restore(self, snapshot: dict[str, list[str]]) -> None:
        """Become exactly the tracker ``snapshot`` was taken of (with this one's baseline)."""
        with self._lock:
            self._trusted = self._baseline + list(snapshot["trusted"])
            self._untrusted = list(snapshot["untrusted"])
            self._joined = None

    def add_trusted(self, text: str) -> None:
        with self._lock:
            self._trusted.append(text.casefold())
            self._joined = None

    def add_untrusted(self, text: str) -> None:
        with self._lock:
            self._untrusted.append(text.casefold())
            self._joined = None

    def add_fields(self, value: Any, untrusted_fields: Collection[str], budget: int) -> bool:
        """Remember a field-level output (see ``split_by_fields``); False when it cannot be
        split, and nothing was remembered: the caller then treats it as untrusted as a whole."""
        split = split_by_fields(value, untrusted_fields, budget)
        if split is None:
            return False
        trusted, untrusted = split
        with self._lock:
            self._trusted.extend(text.casefold() for text in trusted)
            self._untrusted.extend(text.casefold() for text in untrusted)
            self._joined = None
        return True

    @property
    def untrusted_read(self) -> bool:
        return bool(self._untrusted)

    def report(self, arguments: Mapping[str, Any]) -> TaintReport:
        """Per top-level argument: does any value inside it come only from untrusted text?

        ``arguments`` should be every argument of the call in its canonical JSON form (see
        ``stages/policy.py``); anything that is not JSON-like data counts as tainted.
        """
        if not self._untrusted:
            return TaintReport(False, dict.fromkeys(arguments, False))
        with self._lock:
            if self._joined is None:
                self._joined = (_SEPARATOR.join(self._untrusted), _SEPARATOR.join(self._trusted))
            judge = _Judge(self._joined, list(self._untrusted), list(self._trusted))
        return TaintReport(True, {name: judge.tainted(value) for name, value in arguments.items()})


class _Judge:
    """Judges the arguments of one call against what the run had read when it was made."""

    def __init__(self, joined: tuple[str, str], untrusted: list[str], trusted: list[str]) -> None:
        self._untrusted, self._trusted = joined
        self._chunks = (untrusted, trusted)
        self._seen: dict[str, bool] = {}  # a text repeated in the arguments is judged once
        self._scan_left = 0

    def tainted(self, value: Any) -> bool:
        """Walk ``value`` (iteratively: depth is no limit); True on the first tainted string
        or number, and for anything that cannot be judged (see the module docstring)."""
        nodes, text_left = MAX_NODES, MAX_TEXT
        self._scan_left = MAX_SCAN
        stack: list[Any] = [value]
        try:
            while stack:
                item = stack.pop()
                nodes -= 1
                if nodes < 0:
                    return True
                if item is None or isinstance(item, bool):
                    continue
                kind = type(item)
                if kind is str or kind is int or kind is float or kind is Decimal:
                    text = _text(item)
                    text_left -= len(text)
                    if text_left < 0 or self._untrusted_only(text):
                        return True
                elif kind in _CONTAINERS:
                    if len(item) > nodes:
                        return True
                    if kind is dict:
                        for key, child in item.items():
                            stack += (key, child)
                    else:
                        stack.extend(item)
                else:
                    return True  # an object, bytes, a subclass: its contents are not seen
        except _OverBudget:
            return True
        except Exception:  # a value that fails while being walked cannot be judged
            return True
        return False

    def _untrusted_only(self, text: str) -> bool:
        """Whether ``text`` appears in untrusted text and nowhere in trusted text; True too
        when looking for it would scan more than this argument's budget allows."""
        needle = text.casefold().strip()
        if not needle:
            return False
        known = self._seen.get(needle)
        if known is None:
            known = self._found(needle, 0) and not self._found(needle, 1)
            self._seen[needle] = known
        return known

    def _found(self, needle: str, kind: int) -> bool:
        if _SEPARATOR in needle:
            chunks = self._chunks[kind]
            self._charge(sum(map(len, chunks)))
            return any(needle in chunk for chunk in chunks)
        haystack = (self._untrusted, self._trusted)[kind]
        # The end index bounds the scan itself, so the budget is never overspent.
        found = haystack.find(needle, 0, max(self._scan_left, 0))
        if found >= 0:
            self._scan_left -= found + len(needle)
            return True
        self._charge(len(haystack))
        return False

    def _charge(self, characters: int) -> None:
        self._scan_left -= characters
        if self._scan_left < 0:
            raise _OverBudget


class _OverBudget(Exception):
    """Judging the argument would scan more than ``MAX_SCAN`` characters: it is tainted."""


def _text(value: str | int | float | Decimal) -> str:
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


class _Trust(Enum):
    BARE = "bare"  # not inside any mapping yet: no field name vouches for a value here
    TRUSTED = "trusted"
    UNTRUSTED = "untrusted"


def split_by_fields(
    value: Any, untrusted_fields: Collection[str], budget: int
) -> tuple[list[str], list[str]] | None:
    """The texts of a field-level output, as ``(trusted, untrusted)``; None if it cannot be split.

    Why not remember the output's JSON text, as for a wholly trusted or untrusted tool: a
    record mixes system-of-record fields (ids, accounts, amounts) with free text anyone can
    write (a ticket's body, a CRM note), and the JSON text of the whole record, remembered as
    trusted, would contain that free text, so a value copied from it would look trusted.

    So the value is walked instead. In every mapping, at any depth (mappings inside lists
    too), the value under a key in ``untrusted_fields`` (matched ignoring case) and
    everything inside it is untrusted: like an untrusted output, its JSON text (the form the
    model sees, with escapes) and every string and number inside it are remembered. Every
    other string and number, keys included, is trusted, one value at a time, numbers as the
    text taint matching uses (an amount copied from a trusted field stays trusted).

    Fail closed: a string or number outside any mapping (a plain string output, a list of
    strings) has no field name to vouch for it and is untrusted. None, meaning the caller
    must treat the whole output as untrusted, when the output holds anything that is not
    JSON-like data (an object whose fields cannot be seen, NaN), or when the texts to
    remember (plus one per node walked) add up to more than ``budget`` characters.
    """
    fields = frozenset(name.casefold() for name in untrusted_fields)
    trusted: list[str] = []
    untrusted: list[str] = []
    left = budget
    stack: list[tuple[Any, _Trust]] = [(value, _Trust.BARE)]
    try:
        while stack and left >= 0:
            item, trust = stack.pop()
            left -= 1  # every node costs something, so even a cyclic value ends
            if item is None or isinstance(item, bool):
                continue
            if isinstance(item, float) and item != item:
                return None  # NaN: the output is shown as Python text, not JSON
            if isinstance(item, str | int | float | Decimal):
                texts = [_text(item)]
                if trust is _Trust.BARE:
                    texts.append(_json_text(item))
                (trusted if trust is _Trust.TRUSTED else untrusted).extend(texts)
                left -= sum(map(len, texts))
            elif isinstance(item, Mapping):
                pairs: list[tuple[Any, _Trust]] = []
                for key, child in item.items():
                    if trust is _Trust.UNTRUSTED:
                        pairs += [(key, trust), (child, trust)]
                    elif isinstance(key, str) and key.casefold() in fields:
                        whole = _json_text(child)
                        untrusted.append(whole)
                        left -= len(whole)
                        pairs += [(key, _Trust.TRUSTED), (child, _Trust.UNTRUSTED)]
                    else:
                        pairs += [(key, _Trust.TRUSTED), (child, _Trust.TRUSTED)]
                stack.extend(reversed(pairs))
            elif isinstance(item, list | tuple | set | frozenset):
                stack.extend((child, trust) for child in reversed(list(item)))
            else:
                return None
    except Exception:  # arbitrary tool data: a huge int, a hostile mapping; fail closed
        return None
    return (trusted, untrusted) if left >= 0 else None


def _json_text(value: Any) -> str:
    """``value`` as the model sees it in the output's JSON text (see ``stages/execute.py``)."""
    return json.dumps(to_jsonable(value), ensure_ascii=False, default=str)
