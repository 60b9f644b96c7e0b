"""Canonical JSON: one byte string per value, so hashes bind to meaning, not formatting.

Keys are sorted, separators are minimal, ``Decimal`` is written as its exact string, and the
text must be valid UTF-8 (lone surrogates are refused rather than smuggled into a hash).
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

__all__ = ["canonical_json", "canonical_text", "sha256_hex", "to_jsonable"]


_PLAIN = frozenset({str, int, bool, type(None)})


def to_jsonable(value: Any) -> Any:
    """Turn ``value`` into plain JSON types; Decimals become exact strings."""
    kind = type(value)
    if kind in _PLAIN:  # the common case first: this runs on every audited call
        return value
    if kind is dict:
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN has no canonical form
        raise ValueError("NaN cannot be represented in canonical JSON")
    return value


def canonical_json(value: Any) -> str:
    """Serialize ``value`` canonically. Raises ``ValueError`` for non-UTF-8 text or NaN."""
    return canonical_text(to_jsonable(value))


def canonical_text(jsonable: Any) -> str:
    """``canonical_json`` for a value that is already plain JSON data (see ``to_jsonable``)."""
    text = json.dumps(
        jsonable,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text is not valid UTF-8 (it contains a lone surrogate)") from exc
    return text


def sha256_hex(text: str) -> str:
    """SHA-256 of the UTF-8 bytes of ``text``, as lowercase hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _decimal_text(value: Decimal) -> str:
    # normalize() would turn 200 into 2E+2; format with 'f' keeps plain notation.
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
