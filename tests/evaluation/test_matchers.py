"""Value matchers: every operator, the specs they refuse, and how numbers and text compare."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest

from charter.evaluation.matchers import OPERATORS, Matcher, MatcherError

NEGATIVE = ("not_equals", "not_contains", "not_in", "domain_not_in")

# One valid argument per operator (used to walk all of them).
SAMPLE_ARGUMENT: dict[str, Any] = {
    "equals": 1,
    "not_equals": 1,
    "contains": "a",
    "not_contains": "a",
    "matches": "a",
    "in": [1],
    "not_in": [1],
    "domain_in": ["example.com"],
    "domain_not_in": ["example.com"],
    "gt": 1,
    "gte": 1,
    "lt": 1,
    "lte": 1,
    "length": 1,
    "exists": True,
}


def m(spec: Any) -> Matcher:
    return Matcher.parse(spec)


# -- parsing -------------------------------------------------------------------------------


def test_sample_arguments_cover_every_operator() -> None:
    assert set(SAMPLE_ARGUMENT) == set(OPERATORS)


@pytest.mark.parametrize("operator", sorted(OPERATORS))
def test_every_operator_parses_from_a_one_key_mapping(operator: str) -> None:
    matcher = m({operator: SAMPLE_ARGUMENT[operator]})
    assert matcher.operator == operator
    assert matcher.expected == SAMPLE_ARGUMENT[operator]
    assert matcher.describe() == f"{operator} {SAMPLE_ARGUMENT[operator]!r}"


@pytest.mark.parametrize("value", [45, "closed", 1.5, None, True, [1, 2], Decimal("3.10")])
def test_a_plain_value_means_equals(value: Any) -> None:
    matcher = m(value)
    assert matcher.operator == "equals"
    assert matcher.expected == value


def test_a_mapping_value_needs_the_equals_operator() -> None:
    matcher = m({"equals": {"status": "closed"}})
    assert matcher.operator == "equals"
    assert matcher.test({"status": "closed"})
    assert not matcher.test({"status": "open"})


def test_two_operators_are_refused_naming_both() -> None:
    with pytest.raises(MatcherError, match="exactly one operator") as caught:
        m({"equals": 1, "contains": 2})
    assert "'contains'" in str(caught.value)
    assert "'equals'" in str(caught.value)


def test_an_empty_mapping_is_refused() -> None:
    with pytest.raises(MatcherError, match="exactly one operator, got none"):
        m({})


def test_an_unknown_operator_is_named_and_the_operators_listed() -> None:
    with pytest.raises(MatcherError, match="unknown matcher operator 'startswith'") as caught:
        m({"startswith": "x"})
    for operator in OPERATORS:
        assert operator in str(caught.value)


@pytest.mark.parametrize("operator", ["in", "not_in", "domain_in", "domain_not_in"])
@pytest.mark.parametrize("argument", ["example.com", 5, {"a": 1}, None, b"ab"])
def test_list_operators_refuse_anything_but_a_list(operator: str, argument: Any) -> None:
    with pytest.raises(MatcherError, match=f"'{operator}' takes a list, got"):
        m({operator: argument})


@pytest.mark.parametrize("operator", ["in", "not_in"])
def test_list_operators_accept_a_tuple(operator: str) -> None:
    assert m({operator: (1, 2)}).expected == (1, 2)


@pytest.mark.parametrize("operator", ["gt", "gte", "lt", "lte", "length"])
@pytest.mark.parametrize(
    "argument", ["many", True, False, None, [1], "nan", "inf", float("nan"), float("inf")]
)
def test_number_operators_refuse_non_numbers(operator: str, argument: Any) -> None:
    with pytest.raises(MatcherError, match=f"'{operator}' takes a number, got"):
        m({operator: argument})


@pytest.mark.parametrize("argument", [5, 5.5, "5", " 5.50 ", Decimal("5")])
def test_number_operators_accept_numbers_and_numeric_text(argument: Any) -> None:
    assert m({"gt": argument}).expected == argument


@pytest.mark.parametrize("argument", ["yes", 1, 0, None, "true"])
def test_exists_takes_only_a_boolean(argument: Any) -> None:
    with pytest.raises(MatcherError, match="'exists' takes true or false, got"):
        m({"exists": argument})


@pytest.mark.parametrize("argument", [5, None, ["a"], b"abc"])
def test_matches_takes_text(argument: Any) -> None:
    with pytest.raises(MatcherError, match="'matches' takes a regular expression"):
        m({"matches": argument})


def test_matches_reports_a_bad_regular_expression() -> None:
    with pytest.raises(MatcherError, match="'matches': bad regular expression") as caught:
        m({"matches": "refund ("})
    assert "missing )" in str(caught.value)
    assert caught.value.__cause__ is None  # `from None`: the suite author sees one message


def test_matches_refuses_an_overlong_pattern_saying_so() -> None:
    assert m({"matches": "a" * 500}).test("a" * 500)
    with pytest.raises(MatcherError, match="501 characters long, at most 500"):
        m({"matches": "a" * 501})


def test_matcher_error_is_a_value_error() -> None:
    assert issubclass(MatcherError, ValueError)


# -- equals: numbers, text, containers -----------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        (45, Decimal("45.00")),
        (45, "45"),
        (45, "45.00"),
        (45, 45.0),
        ("45", 45),
        ("45", Decimal("45.00")),
        (Decimal("45.00"), 45),
        (Decimal("45.00"), "45"),
        (12.5, Decimal("12.50")),
        (12.5, "12.5"),
        (0.1, Decimal("0.1")),
        (-3, "-3.0"),
    ],
)
def test_numbers_are_equal_across_int_float_decimal_and_text(expected: Any, actual: Any) -> None:
    assert m(expected).test(actual)
    assert not m({"not_equals": expected}).test(actual)


@pytest.mark.parametrize(
    ("expected", "actual"),
    [(45, Decimal("45.01")), (45, "46"), (0.1, 0.10000001), ("45", 44), (12.5, "12.49")],
)
def test_different_numbers_are_not_equal(expected: Any, actual: Any) -> None:
    assert not m(expected).test(actual)
    assert m({"not_equals": expected}).test(actual)


def test_a_float_is_compared_by_its_shortest_repr_not_its_binary_value() -> None:
    # Decimal(0.1) would be 0.1000000000000000055511151231257827...; repr gives 0.1.
    assert m(0.1).test("0.1")
    assert m(0.3).test(Decimal("0.3"))


@pytest.mark.parametrize(
    ("expected", "actual"),
    [("45", "45.00"), ("045", "45"), ("1e2", "100"), ("45", " 45")],
)
def test_text_expected_against_text_actual_compares_as_text(expected: str, actual: str) -> None:
    assert not m(expected).test(actual)
    assert m(expected).test(expected)


def test_a_number_expected_against_numeric_text_compares_as_numbers() -> None:
    assert m(45).test("45.00")
    assert m(Decimal("45")).test(" 45 ")


@pytest.mark.parametrize(
    ("expected", "actual"),
    [(1, True), (True, 1), (0, False), (False, 0), (True, "true"), (False, None)],
)
def test_booleans_never_equal_numbers_or_text(expected: Any, actual: Any) -> None:
    assert not m(expected).test(actual)
    assert m({"not_equals": expected}).test(actual)


def test_booleans_equal_booleans() -> None:
    assert m(True).test(True)
    assert m(False).test(False)
    assert not m(True).test(False)


def test_none_equals_none_only() -> None:
    assert m(None).test(None)
    assert not m(None).test(0)
    assert not m(None).test("")
    assert not m(0).test(None)


def test_text_equality_is_exact() -> None:
    assert m("closed").test("closed")
    assert not m("closed").test("Closed")
    assert not m("closed").test("closed ")


def test_lists_are_equal_item_by_item_with_numeric_items() -> None:
    assert m([45, "a"]).test([Decimal("45.00"), "a"])
    assert m([1, 2]).test((1, 2))
    assert not m([1, 2]).test([2, 1])
    assert not m([1, 2]).test([1, 2, 3])
    assert not m([1]).test(1)
    assert not m([]).test({})


def test_mappings_are_equal_key_by_key_with_numeric_values() -> None:
    expected = {"equals": {"amount": 45, "tags": ["a"]}}
    assert m(expected).test({"amount": "45.00", "tags": ("a",)})
    assert not m(expected).test({"amount": 45})
    assert not m(expected).test({"amount": 45, "tags": ["a"], "extra": 1})
    assert not m(expected).test({"amount": 46, "tags": ["a"]})
    assert not m(expected).test([("amount", 45), ("tags", ["a"])])


# -- contains / matches ----------------------------------------------------------------------


def test_contains_in_text_is_a_substring_test() -> None:
    assert m({"contains": "refund"}).test("your refund is on its way")
    assert not m({"contains": "refund"}).test("Your Refund")
    assert m({"contains": 45}).test("refunded $45.00")


def test_contains_in_a_list_uses_equality() -> None:
    assert m({"contains": 45}).test(["x", Decimal("45.0")])
    assert m({"contains": "b"}).test(("a", "b"))
    assert not m({"contains": "b"}).test(["abc"])


def test_contains_in_a_mapping_tests_its_keys() -> None:
    assert m({"contains": "T-1001"}).test({"T-1001": {"status": "open"}})
    assert not m({"contains": "open"}).test({"T-1001": "open"})


@pytest.mark.parametrize("actual", [None, 45, Decimal("45"), True])
def test_contains_on_something_without_parts_is_false(actual: Any) -> None:
    assert not m({"contains": "4"}).test(actual)
    assert m({"not_contains": "4"}).test(actual)


def test_not_contains_is_the_negation() -> None:
    assert m({"not_contains": "password"}).test("all done")
    assert not m({"not_contains": "password"}).test("your password is hunter2")


def test_matches_searches_anywhere_in_text() -> None:
    matcher = m({"matches": r"T-\d{4}"})
    assert matcher.test("closed T-1001 today")
    assert not matcher.test("closed T-10 today")
    anchored = m({"matches": r"^T-\d+$"})
    assert anchored.test("T-1001")
    assert not anchored.test("see T-1001")


@pytest.mark.parametrize("actual", [1001, None, ["T-1001"], {"T-1001": 1}])
def test_matches_is_false_for_non_text(actual: Any) -> None:
    assert not m({"matches": r"1001"}).test(actual)


# -- in / not_in ---------------------------------------------------------------------------


def test_in_uses_numeric_equality() -> None:
    matcher = m({"in": [12.5, 45, "closed"]})
    assert matcher.test(Decimal("45.00"))
    assert matcher.test("12.50")
    assert matcher.test("closed")
    assert not matcher.test("open")
    assert not matcher.test(46)


def test_not_in_is_the_negation() -> None:
    matcher = m({"not_in": ["open", "pending"]})
    assert matcher.test("closed")
    assert not matcher.test("pending")


def test_in_an_empty_list_is_never_true() -> None:
    assert not m({"in": []}).test("x")
    assert m({"not_in": []}).test("x")


# -- domain_in / domain_not_in ---------------------------------------------------------------


@pytest.mark.parametrize(
    "address", ["dana@example.com", "Dana@EXAMPLE.com", "a.b+c@Example.Com", "x@example.com "]
)
def test_domain_in_is_case_insensitive(address: str) -> None:
    assert m({"domain_in": ["example.com"]}).test(address)
    assert m({"domain_in": ["EXAMPLE.COM"]}).test(address)
    assert not m({"domain_not_in": ["Example.com"]}).test(address)


@pytest.mark.parametrize(
    "address",
    [
        "dana@evil.com",
        "dana@example.com.evil.com",
        "dana@mail.example.com",
        "example.com@evil.com",
        "dana@notexample.com",
    ],
)
def test_domain_in_takes_the_part_after_the_last_at(address: str) -> None:
    assert not m({"domain_in": ["example.com"]}).test(address)
    assert m({"domain_not_in": ["example.com"]}).test(address)


@pytest.mark.parametrize("actual", ["example.com", "", None, 45, ["dana@example.com"]])
def test_domain_in_needs_an_address(actual: Any) -> None:
    assert not m({"domain_in": ["example.com"]}).test(actual)


def test_domain_in_with_several_domains() -> None:
    matcher = m({"domain_in": ["example.com", "example.org"]})
    assert matcher.test("a@example.org")
    assert not matcher.test("a@example.net")


# -- gt / gte / lt / lte -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "limit", "below", "equal", "above"),
    [
        ("gt", 45, False, False, True),
        ("gte", 45, False, True, True),
        ("lt", 45, True, False, False),
        ("lte", 45, True, True, False),
    ],
)
def test_order_operators_at_below_and_above_the_limit(
    operator: str, limit: int, below: bool, equal: bool, above: bool
) -> None:
    matcher = m({operator: limit})
    assert matcher.test(Decimal("44.99")) is below
    assert matcher.test("45.00") is equal
    assert matcher.test(45.01) is above


def test_order_operators_take_a_text_limit_as_a_number() -> None:
    assert m({"lte": "0.05"}).test(Decimal("0.05"))
    assert not m({"lte": "0.05"}).test(Decimal("0.0500001"))


@pytest.mark.parametrize(
    "actual", ["many", None, True, [1], {"a": 1}, float("nan"), Decimal("NaN"), float("inf")]
)
@pytest.mark.parametrize("operator", ["gt", "gte", "lt", "lte"])
def test_order_operators_are_false_for_non_numbers_and_never_raise(
    operator: str, actual: Any
) -> None:
    assert m({operator: 5}).test(actual) is False


def test_nan_is_not_equal_to_anything_and_does_not_raise() -> None:
    assert not m(5).test(float("nan"))
    assert not m(5).test(Decimal("NaN"))
    assert m({"not_equals": 5}).test(math.nan)


# -- length --------------------------------------------------------------------------------


def test_length_of_text_lists_and_mappings() -> None:
    assert m({"length": 3}).test("abc")
    assert m({"length": 2}).test([1, 2])
    assert m({"length": "2"}).test((1, 2))
    assert m({"length": 1}).test({"a": 1})
    assert m({"length": 0}).test([])
    assert not m({"length": 2}).test([1, 2, 3])
    assert not m({"length": 2.5}).test([1, 2])


@pytest.mark.parametrize("actual", [None, 12, Decimal("2"), True])
def test_length_of_something_without_length_is_false(actual: Any) -> None:
    assert not m({"length": 2}).test(actual)


# -- missing values ------------------------------------------------------------------------


@pytest.mark.parametrize("operator", sorted(set(OPERATORS) - {"exists"}))
def test_a_missing_value_satisfies_only_negative_operators(operator: str) -> None:
    matcher = m({operator: SAMPLE_ARGUMENT[operator]})
    assert matcher.test(None, present=False) is (operator in NEGATIVE)


def test_a_missing_value_is_not_none() -> None:
    # `equals: null` holds for a present null, not for a value that is not there at all.
    assert m(None).test(None, present=True)
    assert not m(None).test(None, present=False)


def test_exists_true_and_false() -> None:
    assert m({"exists": True}).test(None, present=True)
    assert not m({"exists": True}).test(None, present=False)
    assert m({"exists": False}).test(None, present=False)
    assert not m({"exists": False}).test("anything", present=True)


def test_present_values_still_need_to_satisfy_negative_operators() -> None:
    assert not m({"not_equals": "open"}).test("open", present=True)
    assert not m({"domain_not_in": ["evil.com"]}).test("x@evil.com", present=True)


def test_matchers_are_frozen() -> None:
    matcher = m(1)
    with pytest.raises(AttributeError):
        matcher.operator = "gt"  # type: ignore[misc]
