"""Finding known credentials in text, in the forms a tool or a person commonly gives them.

``Needles.build`` turns the registered values into what to look for, once per registration:

- the value in any letter case (the text is case-folded once; every needle below but base64
  is searched in the folded text, so upper-cased and mixed-case copies are found);
- its UTF-8 bytes in hex, lower or upper case;
- its URL (percent) encodings: ``quote`` and ``quote_plus``, with ``/`` safe or not, and every
  byte percent-encoded; the ``%XX`` digits in either case;
- its JSON string escapes (``\\"``, ``\\uXXXX``), when they differ from the value;
- its base64 forms, standard and URL-safe, padded or not, and inside a longer base64 string at
  any offset: a value starting at byte offset ``k`` of the encoded data encodes differently
  for ``k % 3`` = 0, 1, 2, so each of the three alignments gives one needle, made of the
  characters that depend on the value's bytes alone. A base64 hit is widened to the whole run
  of base64 characters around it: the rest of that string may carry the value's edge bits
  and is an encoding of something that held the credential.

Each needle is found with ``str.find``, which was measured faster than one compiled
alternation (``benchmarks/redaction.py``: Python's ``re`` with ``IGNORECASE`` over three
credentials' needles took 155 µs on a 2 KB text, case-sensitive 17 µs; the finds over the
case-folded text take about 5 µs). Hits are merged, so overlapping credentials are redacted as
one span and none leaks a tail. A text with more than ``_MAX_HITS`` hits is redacted whole,
so a hostile text made of one credential repeated cannot make redaction slow.

Values shorter than ``MIN_SUBSTRING`` characters would match ordinary words: they are redacted
only where a whole text is the value or one of its encodings (any letter case but base64).

What this cannot catch is listed in ``charter.identity.secrets``.
"""

from __future__ import annotations

import base64
import json
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

__all__ = ["MIN_SUBSTRING", "REDACTED", "Needles"]

REDACTED = "[REDACTED]"

MIN_SUBSTRING = 6
_MAX_HITS = 10_000
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")
_URL_SAFE = str.maketrans("+/", "-_")


def fold(text: str) -> str:
    """``text`` in lower case, one character for one: offsets in it are offsets in ``text``.

    Only U+0130 (capital I with dot) lowers to two characters; it folds to ``i`` instead.
    """
    folded = text.lower()
    if len(folded) != len(text):
        folded = text.replace("\u0130", "i").lower()
    return folded


@dataclass(frozen=True, slots=True)
class Forms:
    """What one value looks like: needles for text search, and whole-text forms."""

    folded: frozenset[str]  # searched in the case-folded text
    base64: frozenset[str]  # searched as they are (base64 is case-sensitive)

    @classmethod
    def of(cls, value: str) -> Forms:
        raw = value.encode("utf-8", "surrogatepass")
        texts = {
            value,
            raw.hex(),
            quote(raw, safe=""),
            quote(raw),
            quote_plus(raw, safe=""),
            quote_plus(raw),
            "".join(f"%{byte:02x}" for byte in raw),
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
        }
        if len(value) < MIN_SUBSTRING:
            # Whole-text forms: the complete encodings, with and without padding.
            whole = base64.b64encode(raw).decode("ascii")
            encodings = {whole, whole.rstrip("="), whole.translate(_URL_SAFE)}
            encodings.add(whole.translate(_URL_SAFE).rstrip("="))
            return cls(frozenset(fold(t) for t in texts), frozenset(encodings))
        cores: set[str] = set()
        for offset in range(3):
            encoded = base64.b64encode(bytes(offset) + raw).decode("ascii")
            # Characters before `start` mix in the preceding bytes, those from `end` on the
            # following ones (or padding): the core depends on the value alone.
            start, end = -(-8 * offset // 6), 8 * (offset + len(raw)) // 6
            core = encoded[start:end]
            cores.update((core, core.translate(_URL_SAFE)))
        return cls(frozenset(fold(t) for t in texts), frozenset(cores))


@dataclass(frozen=True, slots=True)
class Needles:
    """Every form of every registered value, ready to search (immutable: a registration builds
    a new one, so a search never sees half of an update)."""

    folded: tuple[str, ...]
    percent: tuple[str, ...]  # folded needles with a "%": skipped for a text without one
    base64: tuple[str, ...]
    shortest: int  # no text shorter than this holds a needle
    whole_folded: frozenset[str]  # short values' forms, matched against a whole text
    whole_exact: frozenset[str]
    whole_longest: int

    @classmethod
    def build(cls, long_forms: Iterable[Forms], short_forms: Iterable[Forms]) -> Needles:
        folded: set[str] = set()
        encoded: set[str] = set()
        for forms in long_forms:
            folded |= forms.folded
            encoded |= forms.base64
        whole_folded: set[str] = set()
        whole_exact: set[str] = set()
        for forms in short_forms:
            whole_folded |= forms.folded
            whole_exact |= forms.base64
        lengths = [len(n) for n in (*folded, *encoded)]
        whole_lengths = [len(n) for n in (*whole_folded, *whole_exact)]
        return cls(
            # Longest first only for determinism; overlapping hits are merged anyway.
            _ordered(n for n in folded if "%" not in n),
            _ordered(n for n in folded if "%" in n),
            _ordered(encoded),
            min(lengths, default=0) or 1 << 62,
            frozenset(whole_folded),
            frozenset(whole_exact),
            max(whole_lengths, default=-1),
        )

    def is_whole(self, text: str) -> bool:
        """Whether ``text`` is, as a whole, a short value or one of its forms."""
        if len(text) > self.whole_longest:
            return False
        return text in self.whole_exact or fold(text) in self.whole_folded

    def spans(self, text: str, bounds: Sequence[int] = ()) -> list[tuple[int, int]]:
        """The merged ``[start, end)`` spans of ``text`` holding a value in one of its forms.

        ``bounds`` (sorted offsets) are where pieces joined into ``text`` meet; a base64 hit
        is not widened across them (see ``redact_pieces``).
        """
        if len(text) < self.shortest:
            return []
        found: list[tuple[int, int]] = []
        if self.folded or self.percent:
            folded = fold(text)
            needles = self.folded + self.percent if "%" in text else self.folded
            for needle in needles:
                at = folded.find(needle)
                while at >= 0:
                    found.append((at, at + len(needle)))
                    if len(found) > _MAX_HITS:
                        return [(0, len(text))]
                    at = folded.find(needle, at + 1)
        for needle in self.base64:
            widened_to = -1
            at = text.find(needle)
            while at >= 0:
                if at >= widened_to:  # else this hit is inside the token widened already
                    span = _widened(text, at, at + len(needle), bounds)
                    widened_to = span[1]
                    found.append(span)
                    if len(found) > _MAX_HITS:
                        return [(0, len(text))]
                at = text.find(needle, at + 1)
        return _merged(found)

    def redact_text(self, text: str) -> str:
        """``text`` with every span holding a value replaced by ``REDACTED``."""
        if self.whole_longest >= 0 and self.is_whole(text):
            return REDACTED
        spans = self.spans(text)
        return _replaced(text, spans) if spans else text

    def redact_pieces(self, pieces: Sequence[str]) -> list[str]:
        """Adjacent strings (a list's items, a dict's values) redacted as one text would be.

        A value split across pieces (``["sk_live_ab", "cd12..."]``) is found in their
        concatenation; every piece holding part of it becomes ``REDACTED`` as a whole. A
        value inside one piece is redacted within that piece, as ``redact_text`` would.
        """
        starts: list[int] = []
        length = 0
        for piece in pieces:
            starts.append(length)
            length += len(piece)
        spans = self.spans("".join(pieces), starts[1:])
        out = list(pieces)
        inside: dict[int, list[tuple[int, int]]] = {}
        for start, end in spans:
            first = bisect_right(starts, start) - 1
            last = bisect_left(starts, end) - 1
            if first == last:
                offset = starts[first]
                inside.setdefault(first, []).append((start - offset, end - offset))
            else:
                out[first : last + 1] = [REDACTED] * (last + 1 - first)
        for index, piece_spans in inside.items():
            if out[index] is not REDACTED:
                out[index] = _replaced(pieces[index], piece_spans)
        if self.whole_longest >= 0:
            out = [REDACTED if self.is_whole(piece) else piece for piece in out]
        return out


def _ordered(needles: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(needles, key=lambda n: (-len(n), n)))


def _widened(text: str, start: int, end: int, bounds: Sequence[int]) -> tuple[int, int]:
    """``[start, end)`` grown to the run of base64 characters (and padding) around it, within
    the piece it lies in."""
    low = bounds[bisect_right(bounds, start) - 1] if bounds and bounds[0] <= start else 0
    index = bisect_left(bounds, end)
    high = bounds[index] if index < len(bounds) else len(text)
    while start > low and text[start - 1] in _BASE64:
        start -= 1
    while end < high and text[end] in _BASE64:
        end += 1
    while end < high and text[end] == "=":
        end += 1
    return start, end


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    if len(spans) < 2:
        return spans
    spans.sort()
    merged = [spans[0]]
    for start, end in spans[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def _replaced(text: str, spans: list[tuple[int, int]]) -> str:
    spans = _merged(spans)
    parts: list[str] = []
    at = 0
    for start, end in spans:
        parts.append(text[at:start])
        parts.append(REDACTED)
        at = end
    parts.append(text[at:])
    return "".join(parts)
