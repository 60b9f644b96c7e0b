"""Every argument type ``@tool`` takes works through the whole pipeline: the model sends JSON,
the tool gets typed values, the audit, the hash, the policy and a durable record all see the
same JSON, and bad input is a governed refusal, never an exception out of ``call_tool``.
Which types are taken at all is in ``tests/contract/test_tool_argument_types.py``."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pydantic
import pytest

from charter.contract.loader import Charter
from charter.contract.tool import ToolContext, tool
from charter.execution.call import ToolResult
from charter.execution.run import Run
from charter.identity.principal import Principal
from charter.runtime import Runtime
from tests.execution.harness import runtime_fixture, tool_records, write_charter


class Order(pydantic.BaseModel):
    sku: str
    qty: int
    unit_usd: Decimal | None = None


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Size(enum.IntEnum):
    S = 1
    M = 2


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Lossy(pydantic.BaseModel):
    """A model whose JSON form drops what it holds: its record could not be read back."""

    code: str

    @pydantic.field_serializer("code")
    def _hide(self, code: str) -> str:
        return "***"


@dataclasses.dataclass
class Seen:
    """What each tool was called with, as the tool saw it."""

    calls: list[tuple[str, Any]] = dataclasses.field(default_factory=list)


def _seen(ctx: ToolContext, name: str, value: Any) -> str:
    ctx.resource(Seen).calls.append((name, value))
    return "ok"


@tool
def place(order: Order, *, ctx: ToolContext) -> str:
    """Place an order.

    Args:
        order: the order.
    """
    return _seen(ctx, "place", order)


@tool
def place_many(orders: list[Order], by_ref: dict[str, Order] | None = None, *,
               ctx: ToolContext) -> str:  # fmt: skip
    """Place orders.

    Args:
        orders: the orders.
        by_ref: more orders, by reference.
    """
    return _seen(ctx, "place_many", (orders, by_ref))


@tool
def schedule(at: datetime.datetime, day: datetime.date, ref: uuid.UUID,
             *, ctx: ToolContext) -> str:  # fmt: skip
    """Schedule something.

    Args:
        at: when.
        day: which day.
        ref: its reference.
    """
    return _seen(ctx, "schedule", (at, day, ref))


@tool
def paint(color: Color, size: Size, *, ctx: ToolContext) -> str:
    """Paint.

    Args:
        color: the colour.
        size: the size.
    """
    return _seen(ctx, "paint", (color, size))


@tool
def tag(tags: set[str], pair: tuple[int, str], point: Point, *, ctx: ToolContext) -> str:
    """Tag something.

    Args:
        tags: the tags.
        pair: a pair.
        point: a point.
    """
    return _seen(ctx, "tag", (tags, pair, point))


@tool
def lossy(value: Lossy, *, ctx: ToolContext) -> str:
    """Take a lossy value.

    Args:
        value: the value.
    """
    return _seen(ctx, "lossy", value)


@tool
def anything(value: Any, *, ctx: ToolContext) -> str:
    """Take anything.

    Args:
        value: the value.
    """
    return _seen(ctx, "anything", value)


@tool
def remind(when: datetime.datetime, *, ctx: ToolContext) -> str:
    """Send a reminder (deferred until the run succeeds).

    Args:
        when: when.
    """
    return _seen(ctx, "remind", when)


TOOLS = [place, place_many, schedule, paint, tag, lossy, anything, remind]
REF = "12345678-1234-5678-1234-567812345678"
BLOCKED = "87654321-4321-8765-4321-876543210000"


@pytest.fixture
def charter(tmp_path: Path) -> Charter:
    return write_charter(
        tmp_path,
        f"""\
        tools:
          place: {{effect: write}}
          place_many: {{effect: write}}
          schedule: {{effect: write}}
          paint: {{effect: write}}
          tag: {{effect: write}}
          lossy: {{effect: write}}
          anything: {{effect: write}}
          remind: {{effect: irreversible, defer: until_run_succeeds}}
        policies:
          deny:
            - {{action: schedule, when: 'ref == "{BLOCKED}"', reason: "that booking is frozen"}}
            - {{action: schedule, when: 'at like "1999-*"', reason: "no bookings in 1999"}}
        """,
        tools=TOOLS,
    )


runtime = runtime_fixture()


def start(runtime: Runtime, charter: Charter) -> tuple[Run, Seen]:
    seen = Seen()
    return runtime.start_run(charter, Principal("alice", "acme"), resources=(seen,)), seen


def call(run: Run, name: str, arguments: Any) -> ToolResult:
    return asyncio.run(run.call_tool(name, arguments))


def recorded(runtime: Runtime) -> dict[str, Any]:
    """The arguments of the last tool call record, as the audit log keeps them."""
    arguments = tool_records(runtime)[-1].entry.arguments
    assert arguments is not None
    return arguments


# --- models ----------------------------------------------------------------------------------


def test_a_pydantic_model_argument_is_validated_and_given_to_the_tool(
    runtime: Runtime, charter: Charter
) -> None:
    run, seen = start(runtime, charter)
    result = call(run, "place", {"order": {"sku": "A-1", "qty": 2, "unit_usd": "9.50"}})

    assert result.outcome == "executed"
    assert seen.calls == [("place", Order(sku="A-1", qty=2, unit_usd=Decimal("9.50")))]
    assert recorded(runtime) == {"order": {"sku": "A-1", "qty": 2, "unit_usd": "9.5"}}


def test_models_inside_lists_and_dicts_work_too(runtime: Runtime, charter: Charter) -> None:
    run, seen = start(runtime, charter)
    result = call(
        run,
        "place_many",
        {"orders": [{"sku": "A", "qty": 1}], "by_ref": {"r1": {"sku": "B", "qty": 3}}},
    )

    assert result.outcome == "executed"
    [(_, (orders, by_ref))] = seen.calls
    assert orders == [Order(sku="A", qty=1)]
    assert by_ref == {"r1": Order(sku="B", qty=3)}
    assert recorded(runtime)["by_ref"] == {"r1": {"sku": "B", "qty": 3, "unit_usd": None}}


def test_host_code_may_pass_a_model_instance(runtime: Runtime, charter: Charter) -> None:
    run, seen = start(runtime, charter)
    value = asyncio.run(run.invoke("place", {"order": Order(sku="A", qty=1)}))

    assert value == "ok"
    assert seen.calls == [("place", Order(sku="A", qty=1))]


@pytest.mark.parametrize(
    ("order", "problem"),
    [
        ({"sku": "A", "qty": "2"}, "'order.qty': Input should be a valid integer"),
        ({"sku": "A", "qty": 2.5}, "'order.qty'"),
        ({"sku": "A"}, "missing argument 'order.qty'"),
        ("A x2", "'order'"),
        ([{"sku": "A", "qty": 2}], "'order'"),
        (None, "'order'"),
    ],
)
def test_a_bad_model_value_is_refused_naming_the_field(
    runtime: Runtime, charter: Charter, order: Any, problem: str
) -> None:
    run, seen = start(runtime, charter)
    result = call(run, "place", {"order": order})

    assert result.outcome == "denied"
    assert result.decision.rule_id == "schema.place"
    assert problem in result.decision.reason
    assert seen.calls == []


# --- strings that carry a type ---------------------------------------------------------------


def test_dates_and_ids_are_sent_as_text_and_received_typed(
    runtime: Runtime, charter: Charter
) -> None:
    run, seen = start(runtime, charter)
    result = call(run, "schedule", {"at": "2024-05-01T09:30:00Z", "day": "2024-05-01",
                                    "ref": REF})  # fmt: skip

    assert result.outcome == "executed"
    [(_, (when, day, ref))] = seen.calls
    assert when == datetime.datetime(2024, 5, 1, 9, 30, tzinfo=datetime.UTC)
    assert day == datetime.date(2024, 5, 1)
    assert ref == uuid.UUID(REF)
    assert recorded(runtime) == {"at": "2024-05-01T09:30:00Z", "day": "2024-05-01",
                                 "ref": REF}  # fmt: skip


def test_host_code_may_pass_a_datetime_and_a_uuid(runtime: Runtime, charter: Charter) -> None:
    run, seen = start(runtime, charter)
    when = datetime.datetime(2024, 5, 1, 9, 30, tzinfo=datetime.UTC)
    arguments = {"at": when, "day": when.date(), "ref": uuid.UUID(REF)}

    assert asyncio.run(run.invoke("schedule", arguments)) == "ok"
    assert seen.calls == [("schedule", (when, when.date(), uuid.UUID(REF)))]


def test_policies_read_dates_and_ids_as_the_text_the_model_sent(
    runtime: Runtime, charter: Charter
) -> None:
    run, seen = start(runtime, charter)
    frozen = call(run, "schedule", {"at": "2024-05-01T09:30:00Z", "day": "2024-05-01",
                                    "ref": BLOCKED})  # fmt: skip
    old = call(run, "schedule", {"at": "1999-12-31T23:59:00Z", "day": "1999-12-31",
                                 "ref": REF})  # fmt: skip

    assert (frozen.outcome, frozen.decision.reason) == ("denied", "that booking is frozen")
    assert (old.outcome, old.decision.reason) == ("denied", "no bookings in 1999")
    assert seen.calls == []


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"at": "yesterday"}, "'at'"),
        ({"at": 1714555800}, "'at'"),  # a timestamp is a number, not the text shown
        ({"at": ""}, "'at'"),
        ({"ref": "not-a-uuid"}, "'ref'"),
        ({"ref": 12345678}, "'ref'"),
        ({"day": "2024-02-30"}, "'day'"),
    ],
)
def test_bad_dates_and_ids_are_refused(
    runtime: Runtime, charter: Charter, arguments: dict[str, Any], problem: str
) -> None:
    run, seen = start(runtime, charter)
    good = {"at": "2024-05-01T09:30:00Z", "day": "2024-05-01", "ref": REF}
    result = call(run, "schedule", {**good, **arguments})

    assert result.outcome == "denied"
    assert result.decision.rule_id == "schema.schedule"
    assert problem in result.decision.reason
    assert seen.calls == []


def test_enums_are_sent_as_their_values(runtime: Runtime, charter: Charter) -> None:
    run, seen = start(runtime, charter)
    assert call(run, "paint", {"color": "red", "size": 2}).outcome == "executed"
    assert seen.calls == [("paint", (Color.RED, Size.M))]
    assert recorded(runtime) == {"color": "red", "size": 2}

    for bad in ({"color": "RED", "size": 2}, {"color": "red", "size": "2"},
                {"color": "red", "size": 3}):  # fmt: skip
        assert call(run, "paint", bad).outcome == "denied"
    assert len(seen.calls) == 1


# --- arrays that carry a type ----------------------------------------------------------------


def test_sets_tuples_and_dataclasses_work_and_a_set_hashes_one_way(
    runtime: Runtime, charter: Charter
) -> None:
    run, seen = start(runtime, charter)
    first = call(run, "tag", {"tags": ["b", "a", "b"], "pair": [1, "x"], "point": {"x": 1, "y": 2}})
    second = call(run, "tag", {"tags": ["a", "b"], "pair": [1, "x"], "point": {"x": 1, "y": 2}})

    assert (first.outcome, second.outcome) == ("executed", "executed")
    assert seen.calls[0] == ("tag", ({"a", "b"}, (1, "x"), Point(1, 2)))
    # The same set whatever order the model wrote it in: one record, one hash.
    assert (
        first.arguments
        == second.arguments
        == {
            "tags": ["a", "b"],
            "pair": [1, "x"],
            "point": {"x": 1, "y": 2},
        }
    )
    hashes = {r.entry.arguments_sha256 for r in tool_records(runtime)}
    assert len(hashes) == 1


def test_the_canonical_order_of_a_set_does_not_depend_on_the_process() -> None:
    """String hashing is salted per process, and so is a set's iteration order."""
    import subprocess
    import sys

    script = (
        "from charter.core.canonical import canonical_text, to_json_form;"
        "print(canonical_text(to_json_form({'tags': set('abcdefghij')})))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in range(1, 6)
    }
    assert outputs == {'{"tags":["a","b","c","d","e","f","g","h","i","j"]}\n'}


@pytest.mark.parametrize(
    "arguments",
    [
        {"tags": "a", "pair": [1, "x"], "point": {"x": 1, "y": 2}},
        {"tags": ["a"], "pair": [1, "x", 3], "point": {"x": 1, "y": 2}},
        {"tags": ["a"], "pair": ["1", "x"], "point": {"x": 1, "y": 2}},
        {"tags": ["a"], "pair": [1, "x"], "point": [1, 2]},
        {"tags": [["a"]], "pair": [1, "x"], "point": {"x": 1, "y": 2}},
    ],
)
def test_bad_sets_tuples_and_dataclasses_are_refused(
    runtime: Runtime, charter: Charter, arguments: dict[str, Any]
) -> None:
    run, seen = start(runtime, charter)
    result = call(run, "tag", arguments)
    assert result.outcome == "denied"
    assert result.decision.rule_id == "schema.tag"
    assert seen.calls == []


# --- what cannot be recorded faithfully is refused, never raised -----------------------------


def test_a_value_whose_record_would_not_read_back_is_refused(
    runtime: Runtime, charter: Charter
) -> None:
    run, seen = start(runtime, charter)
    result = call(run, "lossy", {"value": {"code": "A-7"}})

    assert result.outcome == "denied"
    assert "does not read back" in result.decision.reason
    assert seen.calls == []


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


@pytest.mark.parametrize(
    "value",
    [Opaque(), b"\xff\xfe", b"text", object(), float("nan"), {"k": Opaque()}, {float("nan")}],
    ids=["object", "bytes", "text-bytes", "bare-object", "nan", "nested-object", "nan-in-set"],
)
def test_host_values_that_are_not_json_data_are_refused_for_an_any_argument(
    runtime: Runtime, charter: Charter, value: Any
) -> None:
    run, seen = start(runtime, charter)
    result = call(run, "anything", {"value": value})

    assert result.outcome == "denied"
    assert result.decision.rule_id == "schema.anything"
    assert seen.calls == []


def test_json_data_for_an_any_argument_is_taken_as_is(runtime: Runtime, charter: Charter) -> None:
    run, seen = start(runtime, charter)
    value = {"a": [1, "two", None, True, {"b": 2.5}]}
    assert call(run, "anything", {"value": value}).outcome == "executed"
    assert seen.calls == [("anything", value)]


def test_a_host_value_for_an_any_argument_is_taken_as_the_json_a_model_would_send(
    runtime: Runtime, charter: Charter
) -> None:
    run, seen = start(runtime, charter)
    value = {"tags": {"b", "a"}, "color": Color.RED, "at": datetime.date(2024, 5, 1)}
    assert call(run, "anything", {"value": value}).outcome == "executed"
    assert seen.calls == [("anything", {"tags": ["a", "b"], "color": "red", "at": "2024-05-01"})]


# --- durable records -------------------------------------------------------------------------


def test_a_deferred_call_with_typed_arguments_is_sent_typed_after_a_restore(
    runtime: Runtime, charter: Charter
) -> None:
    run, seen = start(runtime, charter)
    assert call(run, "remind", {"when": "2024-05-01T09:30:00Z"}).outcome == "deferred"
    stored = json.loads(json.dumps(run.snapshot()))  # as a durable runner keeps it

    twin, twin_seen = start(runtime, charter)
    twin.restore(stored)
    asyncio.run(twin.settle_effects(succeeded=True))

    assert seen.calls == []
    assert twin_seen.calls == [
        ("remind", datetime.datetime(2024, 5, 1, 9, 30, tzinfo=datetime.UTC))
    ]
