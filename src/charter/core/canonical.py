"""Canonical JSON: one byte string per value, so hashes bind to meaning, not formatting.

Keys are sorted, separators are minimal, ``Decimal`` is written as its exact string, and the
text must be valid UTF-8 (lone surrogates are refused rather than smuggled into a hash).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from decimal import Decimal
from typing import Any

import pydantic
import pydantic_core

__all__ = ["canonical_json", "canonical_text", "sha256_hex", "to_json_form", "to_jsonable"]


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


def to_json_form(value: Any) -> Any:
    """The JSON a model would send for ``value``, a tool's argument of any type ``@tool``
    takes (see ``contract/tool.py``): ``to_jsonable``'s plain JSON for plain data; enums
    their values; sets sorted lists (a set has no order, and its iteration order changes
    from process to process, so a hash needs one); pydantic models and dataclasses objects
    of their fields (by alias); dates, times, durations, UUIDs, paths and the like
    pydantic's JSON text for them. Anything else (bytes among them) is returned as it is,
    for the caller to refuse.

    Raises:
        ValueError: a float is NaN (it has no canonical form).
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, dict):
        return {_key(k): to_json_form(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_form(v) for v in value]
    if isinstance(value, Decimal | float):
        return to_jsonable(value)
    if isinstance(value, enum.Enum):
        return to_json_form(value.value)
    if isinstance(value, set | frozenset):
        return sorted((to_json_form(v) for v in value), key=_order)
    if isinstance(value, pydantic.BaseModel):
        return to_json_form(value.model_dump(by_alias=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_form(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, str | int | bytes | bytearray | memoryview):
        return value  # str and int subclasses are JSON already; bytes are not text
    try:
        return pydantic_core.to_jsonable_python(value)
    except pydantic_core.PydanticSerializationError:
        return value  # not a type pydantic knows either


def _key(key: Any) -> str:
    """A JSON object key: text (an int key 1 is "1", an enum key its value's text)."""
    return key if type(key) is str else str(to_json_form(key))


def _order(item: Any) -> str:
    """A total order for a set's members, whatever their types: their JSON text."""
    try:
        return json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(item)


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
