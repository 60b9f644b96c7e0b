"""``@tool``: argument schemas from type hints, strict validation, and refused signatures."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, Literal, Optional

import pydantic
import pytest

from charter.contract.cedar_compile import argument_types
from charter.contract.tool import ToolContext, ToolSpec, tool
from charter.core.errors import ToolDefinitionError
from charter.identity.principal import Principal


@tool
def book_trip(
    city: str,
    nights: int,
    budget_usd: Decimal,
    rating: float,
    refundable: bool,
    cabin: Literal["economy", "business"],
    travellers: list[str],
    note: Optional[str] = None,  # noqa: UP045 - Optional is what is under test
    max_stops: int = 1,
    deposit_usd: Decimal | None = None,
    *,
    ctx: ToolContext,
) -> dict[str, Any]:
    """Book a trip for a customer.

    Only for existing customers.

    Args:
        city: where to go,
            as a city name.
        nights (int): how many nights.
        budget_usd: the most to spend.

    Returns:
        city: the booked city.
    """
    return {"city": city, "run": ctx.run_id}


GOOD: dict[str, Any] = {
    "city": "Lisbon",
    "nights": 3,
    "budget_usd": "450.50",
    "rating": 4.5,
    "refundable": True,
    "cabin": "economy",
    "travellers": ["ana"],
}


def validate(**changes: Any) -> pydantic.BaseModel:
    return book_trip.arguments_model.model_validate({**GOOD, **changes})


def rejects(**changes: Any) -> str:
    with pytest.raises(pydantic.ValidationError) as caught:
        validate(**changes)
    [error] = caught.value.errors()
    return str(error["type"])


# --- the schema ------------------------------------------------------------------------------


def test_the_schema_comes_from_the_type_hints() -> None:
    props = book_trip.json_schema["properties"]
    assert props["city"]["type"] == "string"
    assert props["nights"]["type"] == "integer"
    assert props["budget_usd"] == {"type": "number", "description": "the most to spend."}
    assert props["rating"]["type"] == "number"
    assert props["refundable"]["type"] == "boolean"
    assert props["cabin"] == {"enum": ["economy", "business"], "type": "string"}
    assert props["travellers"] == {"items": {"type": "string"}, "type": "array"}
    assert props["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert props["max_stops"] == {"default": 1, "type": "integer"}
    assert props["deposit_usd"] == {
        "anyOf": [{"type": "number"}, {"type": "null"}],
        "default": None,
    }
    assert book_trip.json_schema["required"] == [
        "city",
        "nights",
        "budget_usd",
        "rating",
        "refundable",
        "cabin",
        "travellers",
    ]
    assert book_trip.json_schema["additionalProperties"] is False
    assert "title" not in book_trip.json_schema
    assert all("title" not in prop for prop in props.values())


def test_descriptions_come_from_the_docstring() -> None:
    assert book_trip.description == "Book a trip for a customer."
    props = book_trip.json_schema["properties"]
    assert props["city"]["description"] == "where to go, as a city name."
    assert props["nights"]["description"] == "how many nights."
    assert "description" not in props["rating"]  # not documented
    assert "description" not in props["note"]  # Returns: is not Args:


def test_the_context_parameter_is_never_in_the_schema() -> None:
    assert book_trip.context_parameter == "ctx"
    assert "ctx" not in book_trip.json_schema["properties"]
    assert rejects(ctx="forged") == "extra_forbidden"


def test_what_the_model_sees_is_name_description_and_parameters_only() -> None:
    assert book_trip.model_view() == {
        "name": "book_trip",
        "description": "Book a trip for a customer.",
        "parameters": book_trip.json_schema,
    }


def test_policies_see_optional_amounts_as_amounts() -> None:
    args = argument_types(book_trip.json_schema)
    assert args["budget_usd"] == ("Decimal", True)
    assert args["deposit_usd"] == ("Decimal", False)
    assert args["note"] == ("String", False)
    assert args["travellers"] == ("SetString", True)
    assert args["cabin"] == ("String", True)


def test_a_name_and_description_can_be_given() -> None:
    @tool(name="lookup", description="Look a thing up.")
    def find(key: str) -> str:
        """Ignored summary."""
        return key

    assert (find.name, find.description) == ("lookup", "Look a thing up.")


def test_without_a_docstring_the_name_describes_the_tool() -> None:
    @tool
    def close_ticket(ticket_id: str) -> None:
        pass

    assert close_ticket.description == "close ticket"


def test_sync_and_async_tools_are_told_apart() -> None:
    @tool
    async def fetch(url: str) -> str:
        return url

    assert fetch.is_async
    assert not book_trip.is_async


def test_call_passes_the_context_to_its_parameter() -> None:
    @tool
    async def whoami(greeting: str, ctx: ToolContext) -> str:
        return f"{greeting} {ctx.principal.user}"

    context = ToolContext(
        run_id="r1",
        call_id="c1",
        idempotency_key="k1",
        tool="whoami",
        principal=Principal(user="ana", tenant="acme"),
        environment="dev",
    )
    assert asyncio.run(whoami.call({"greeting": "hi"}, context)) == "hi ana"


# --- strict validation -----------------------------------------------------------------------


def test_good_arguments_validate() -> None:
    model = validate()
    assert model.budget_usd == Decimal("450.50")  # type: ignore[attr-defined]
    assert model.max_stops == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"nights": "5"}, "int_type"),
        ({"nights": 5.0}, "int_type"),
        ({"nights": True}, "int_type"),
        ({"city": 5}, "string_type"),
        ({"refundable": 1}, "bool_type"),
        ({"refundable": "true"}, "bool_type"),
        ({"rating": "4.5"}, "float_type"),
        ({"cabin": "first"}, "literal_error"),
        ({"travellers": "ana"}, "list_type"),
        ({"travellers": [1]}, "string_type"),
        ({"unknown": 1}, "extra_forbidden"),
    ],
)
def test_nothing_is_coerced(changes: dict[str, Any], error: str) -> None:
    assert rejects(**changes) == error


def test_a_missing_required_argument_is_refused() -> None:
    arguments = {k: v for k, v in GOOD.items() if k != "city"}
    with pytest.raises(pydantic.ValidationError) as caught:
        book_trip.arguments_model.model_validate(arguments)
    assert [e["type"] for e in caught.value.errors()] == ["missing"]


@pytest.mark.parametrize("value", [450, 450.5, "450.50", Decimal("450.50"), "-1e2"])
def test_amounts_accept_numbers_and_numeric_strings(value: Any) -> None:
    assert validate(budget_usd=value).budget_usd == Decimal(str(value))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (True, "decimal_type"),
        (False, "decimal_type"),
        ("NaN", "finite_number"),
        (float("nan"), "finite_number"),
        (float("inf"), "finite_number"),
        ("-Infinity", "finite_number"),
        ("abc", "decimal_parsing"),
        ([1], "decimal_type"),
    ],
)
def test_amounts_refuse_bools_and_non_finite_values(value: Any, error: str) -> None:
    assert rejects(budget_usd=value) == error


def test_optional_amounts_are_as_strict() -> None:
    assert validate(deposit_usd="12.5").deposit_usd == Decimal("12.5")  # type: ignore[attr-defined]
    assert rejects(deposit_usd=True) == "decimal_type"
    assert rejects(deposit_usd="NaN") == "finite_number"


def test_validated_arguments_are_frozen() -> None:
    model = validate()
    with pytest.raises(pydantic.ValidationError):
        model.city = "Porto"  # type: ignore[attr-defined]


# --- refused definitions ---------------------------------------------------------------------


def _definition_error(fn: Any) -> str:
    with pytest.raises(ToolDefinitionError) as caught:
        tool(fn)
    return str(caught.value)


def test_star_args_are_refused() -> None:
    def spread(*names: str) -> None: ...

    assert "takes *names; tools need named, typed parameters" in _definition_error(spread)


def test_star_star_kwargs_are_refused() -> None:
    def anything(**options: str) -> None: ...

    assert "takes *options" in _definition_error(anything)


def test_a_parameter_without_a_type_hint_is_refused() -> None:
    def untyped(city, nights: int) -> None: ...  # type: ignore[no-untyped-def]

    message = _definition_error(untyped)
    assert "parameter 'city' has no type hint" in message
    assert "test_tool_decorator" in message  # names where the function is


def test_positional_only_parameters_are_refused() -> None:
    def positional(city: str, /) -> None: ...

    assert "parameter 'city' is positional-only" in _definition_error(positional)


def test_an_unresolvable_type_hint_is_refused() -> None:
    def forward(city: NotDefinedAnywhere) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    assert "cannot read the type hints" in _definition_error(forward)


@pytest.mark.parametrize("name", ["BookTrip", "book-trip", "1st_tool", "", "a" * 65])
def test_bad_tool_names_are_refused(name: str) -> None:
    def fine(city: str) -> None: ...

    with pytest.raises(ToolDefinitionError, match="must be lowercase letters, digits and _"):
        tool(name=name)(fine)


def test_a_function_name_that_is_not_a_valid_tool_name_is_refused() -> None:
    def BookTrip(city: str) -> None: ...

    assert "tool name 'BookTrip'" in _definition_error(BookTrip)


def test_a_64_character_name_is_the_longest_allowed() -> None:
    def fine(city: str) -> None: ...

    assert tool(name="a" * 64)(fine).name == "a" * 64


def test_a_tool_spec_is_what_the_decorator_returns() -> None:
    assert isinstance(book_trip, ToolSpec)
    assert book_trip.fn.__name__ == "book_trip"
