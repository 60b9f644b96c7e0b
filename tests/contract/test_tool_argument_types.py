"""Which argument types ``@tool`` takes: each one a model can send as JSON and Charter can
record, hash and read back; the others are refused when the tool is defined, saying why.
What happens when such tools are called is in ``tests/execution/test_argument_types.py``."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import ipaddress
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Optional

import pydantic
import pytest

from charter.contract.tool import ToolContext, ToolSpec, tool
from charter.core.errors import ToolDefinitionError


class Order(pydantic.BaseModel):
    sku: str
    qty: int


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: int
    y: int


def define(annotation: Any, name: str = "probe") -> ToolSpec:
    def probe(value: Any, *, ctx: ToolContext) -> str:
        return "ok"

    probe.__annotations__ = {"value": annotation, "ctx": ToolContext, "return": str}
    probe.__name__ = probe.__qualname__ = name
    probe.__doc__ = "Probe.\n\nArgs:\n    value: the value.\n"
    return tool(probe)


def refused(annotation: Any) -> str:
    with pytest.raises(ToolDefinitionError) as caught:
        define(annotation)
    return str(caught.value)


@pytest.mark.parametrize(
    "annotation",
    [
        str,
        int,
        float,
        bool,
        Decimal,
        Any,
        Literal["a", "b"],
        Optional[str],  # noqa: UP045 - the old spelling too
        list[int],
        dict[str, int],
        list[dict[str, Decimal]],
    ],
)
def test_json_types_are_plain(annotation: Any) -> None:
    """Their validated values are already the JSON a model sends: nothing to read back."""
    assert define(annotation).plain_arguments


@pytest.mark.parametrize(
    "annotation",
    [
        Order,
        list[Order],
        dict[str, Order],
        Order | None,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        uuid.UUID,
        Color,
        tuple[int, str],
        tuple[int, ...],
        set[str],
        frozenset[int],
        Point,
        Path,
        ipaddress.IPv4Address,
        dict[int, str],
        complex,
    ],
)
def test_other_json_carried_types_are_taken_and_marked_to_read_back(annotation: Any) -> None:
    spec = define(annotation)
    assert not spec.plain_arguments  # a call checks that its record reads back the same


@pytest.mark.parametrize(
    ("annotation", "words"),
    [
        (bytes, "bytes"),
        (bytes | None, "bytes"),
        (pydantic.Base64Bytes, "bytes"),
        (list[bytes], "bytes"),
        (pydantic.SecretStr, "secret"),
        (pydantic.SecretBytes, "secret"),
        (pydantic.Json[list[int]], "JSON text"),
        (Iterable[int], "iterat"),
        (Iterator[int], "iterat"),
        (Generator[int, None, None], "iterat"),
        (list[Iterable[int]], "iterat"),
    ],
)
def test_types_a_call_could_not_record_are_refused_at_definition(
    annotation: Any, words: str
) -> None:
    message = refused(annotation)
    assert "'value'" in message  # names the parameter
    assert words in message
    assert "probe" in message  # and the function


class WithBytes(pydantic.BaseModel):
    name: str
    blob: bytes


class WithSecret(pydantic.BaseModel):
    password: pydantic.SecretStr


@dataclasses.dataclass
class Deep:
    inner: list[WithBytes]


@pytest.mark.parametrize("annotation", [WithBytes, list[WithSecret], Deep, dict[str, Deep]])
def test_a_refused_type_inside_a_model_or_dataclass_is_refused_too(annotation: Any) -> None:
    message = refused(annotation)
    assert "'value'" in message


@pytest.mark.parametrize("annotation", [Callable[[int], int], type, bytearray, memoryview])
def test_types_pydantic_cannot_describe_were_refused_already(annotation: Any) -> None:
    assert "cannot build an argument schema" in refused(annotation)


def test_an_unsupported_type_is_refused_with_what_pydantic_said() -> None:
    class Opaque:
        pass

    assert "cannot build an argument schema" in refused(Opaque)


def test_what_a_model_is_shown_for_each_type_is_what_it_must_send() -> None:
    props = {
        name: define(annotation, name).json_schema["properties"]["value"]
        for name, annotation in [
            ("when", datetime.datetime),
            ("ref", uuid.UUID),
            ("pair", tuple[int, str]),
            ("tags", set[str]),
        ]
    }
    assert props["when"] == {"type": "string", "format": "date-time", "description": "the value."}
    assert props["ref"] == {"type": "string", "format": "uuid", "description": "the value."}
    assert props["pair"]["type"] == "array"
    assert props["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "uniqueItems": True,
        "description": "the value.",
    }
