"""Provenance of argument values: did this value come from untrusted content?

The run remembers the text of every untrusted tool output, and of everything trusted (the
user's request, the charter's prompt, trusted tool outputs). An argument value is *tainted*
when it appears in untrusted text but nowhere in trusted text: the model can only have copied
it from content an attacker may control. Matching is on the value's text, case-insensitive,
for every string and number inside the argument.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["ProvenanceTracker", "TaintReport"]


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

    def add_trusted(self, text: str) -> None:
        with self._lock:
            self._trusted.append(text.casefold())

    def add_untrusted(self, text: str) -> None:
        with self._lock:
            self._untrusted.append(text.casefold())

    @property
    def untrusted_read(self) -> bool:
        return bool(self._untrusted)

    def report(self, arguments: Mapping[str, Any]) -> TaintReport:
        """Per top-level argument: does any value inside it come only from untrusted text?"""
        if not self._untrusted:
            return TaintReport(False, dict.fromkeys(arguments, False))
        return TaintReport(True, {name: self._tainted(value) for name, value in arguments.items()})

    def _tainted(self, value: Any) -> bool:
        if isinstance(value, bool) or value is None:
            return False
        if isinstance(value, str | int | float | Decimal):
            return self._is_untrusted_only(_text(value))
        if isinstance(value, Mapping):
            return any(self._tainted(v) for v in value.values())
        if isinstance(value, list | tuple | set | frozenset):
            return any(self._tainted(v) for v in value)
        return self._is_untrusted_only(str(value))

    def _is_untrusted_only(self, text: str) -> bool:
        needle = text.casefold().strip()
        if not needle:
            return False
        in_untrusted = any(needle in chunk for chunk in self._untrusted)
        return in_untrusted and not any(needle in chunk for chunk in self._trusted)


def _text(value: str | int | float | Decimal) -> str:
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)
