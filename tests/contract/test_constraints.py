"""Argument constraints: checked against the bound tool's argument types, at their lines."""

from __future__ import annotations

import pytest

from charter.contract.loader import load_charter
from tests.contract.helpers import CharterFiles

# fixtures_toolkit.refund(account: str, amount_usd: Decimal, count: int = 1, note: str | None)
REFUND = """\
tools:
  refund:
    effect: irreversible
    constraints:
"""  # a constraint given to a test is on line 9


def constrained(constraint: str) -> str:
    return REFUND + f"      {constraint}\n"


@pytest.mark.parametrize(
    ("constraint", "message"),
    [
        ("count: {domain_in: [example.com]}", "domain_in does not apply to 'count' (it is Long)"),
        ("count: {pattern: '^[0-9]+$'}", "pattern does not apply to 'count' (it is Long)"),
        ("count: {max_length: 3}", "max_length does not apply to 'count' (it is Long)"),
        (
            "amount_usd: {max_length: 3}",
            "max_length does not apply to 'amount_usd' (it is Decimal)",
        ),
        ("account: {max: 3}", "max does not apply to 'account' (it is String)"),
        ("note: {min: 1}", "min does not apply to 'note' (it is String)"),
        ("amount_usd: {in: [1, 2]}", "in does not apply to 'amount_usd' (it is Decimal)"),
    ],
)
def test_a_constraint_that_does_not_fit_the_argument_type(
    files: CharterFiles, constraint: str, message: str
) -> None:
    problem = files.problem(constrained(constraint))
    assert problem.line == 9
    assert problem.message == message
    assert problem.hint == "remove it or change the argument type"


def test_a_constraint_on_a_missing_argument_lists_the_arguments(files: CharterFiles) -> None:
    problem = files.problem(constrained("iban: {max_length: 34}"))
    assert problem.line == 9
    assert problem.message == (
        "constraint on 'iban', which is not an argument of refund that policies can see"
    )
    assert problem.hint == "use one of: account, amount_usd, count, note"


@pytest.mark.parametrize(
    ("constraint", "message", "hint"),
    [
        (
            "account: {in: [1, 2]}",
            "values [1, 2] are not of the argument's type",
            "account is String",
        ),
        (
            "count: {in: [a, b]}",
            "values ['a', 'b'] are not of the argument's type",
            "count is Long",
        ),
        ("count: {in: [1, '2']}", "values ['2'] are not of the argument's type", "count is Long"),
    ],
)
def test_in_values_of_the_wrong_type(
    files: CharterFiles, constraint: str, message: str, hint: str
) -> None:
    problem = files.problem(constrained(constraint))
    assert (problem.line, problem.message, problem.hint) == (9, message, hint)


def test_an_invalid_regular_expression(files: CharterFiles) -> None:
    problem = files.problem(constrained("account: {pattern: '([a-z'}"))
    assert problem.line == 9
    assert problem.message.startswith(
        "tools.refund.constraints.account.pattern: pattern '([a-z' is not a valid regular "
        "expression: "
    )


def test_min_greater_than_max(files: CharterFiles) -> None:
    problem = files.problem(constrained("amount_usd: {min: 10, max: 5}"))
    assert problem.line == 9
    assert problem.message == "tools.refund.constraints.amount_usd: min 10 is greater than max 5"


def test_an_empty_constraint(files: CharterFiles) -> None:
    problem = files.problem(constrained("amount_usd: {}"))
    assert problem.line == 9
    assert problem.message.endswith(
        "a constraint needs at least one of domain_in, in, max, min, pattern, max_length"
    )


def test_a_fractional_bound_on_an_integer_argument(files: CharterFiles) -> None:
    problem = files.problem(constrained("count: {max: 2.5}"))
    assert (problem.line, problem.message) == (
        9,
        "bound 2.5 is not an integer but the argument is",
    )


def test_an_amount_bound_with_more_than_four_decimal_places(files: CharterFiles) -> None:
    problem = files.problem(constrained("amount_usd: {max: 1.00001}"))
    assert (problem.line, problem.message) == (9, "1.00001 has more than 4 decimal places")


@pytest.mark.parametrize(
    ("constraint", "fragment"),
    [
        ("account: {domain_in: [EXAMPLE]}", "domain_in.0: String should match pattern"),
        ("account: {in: []}", "in: List should have at least 1 item"),
        ("note: {max_length: 0}", "max_length: Input should be greater than or equal to 1"),
        ("amount_usd: {max: lots}", "max: Input should be a valid decimal"),
    ],
)
def test_malformed_constraint_values(files: CharterFiles, constraint: str, fragment: str) -> None:
    problem = files.problem(constrained(constraint))
    assert problem.line == 9
    assert fragment in problem.message


def test_the_problem_of_one_constraint_is_on_its_own_line(files: CharterFiles) -> None:
    problems = files.problems("""\
        tools:
          refund:
            effect: irreversible
            constraints:
              amount_usd:
                max: 500
                max_length: 3
              account:
                pattern: "^a"
                max: 3
        """)
    assert [(p.line, p.message) for p in problems] == [
        (11, "max_length does not apply to 'amount_usd' (it is Decimal)"),
        (14, "max does not apply to 'account' (it is String)"),
    ]


def test_constraints_compile_to_rules_named_after_the_argument(files: CharterFiles) -> None:
    charter = load_charter(
        files.write("""\
            tools:
              refund:
                effect: irreversible
                constraints:
                  amount_usd: {max: 500, min: 0.01}
                  count: {in: [1, 2], max: 2}
                  note: {max_length: 40, pattern: "^[a-z ]*$"}
              send_email:
                effect: irreversible
                constraints:
                  to: {domain_in: [example.com, example.org]}
            """)
    )
    text = charter.cedar_text
    assert 'context.args.amount_usd.greaterThan(decimal("500.0000"))' in text
    assert 'context.args.amount_usd.lessThan(decimal("0.0100"))' in text
    assert "context.args has count && !([1, 2].contains(context.args.count))" in text
    assert "context.args has note && context.derived.note_length > 40" in text
    assert '!(["example.com", "example.org"].contains(context.derived.to_domain))' in text
    rule = charter.rules["constraints.refund.amount_usd.max"]
    assert rule.effect == "deny"
    assert rule.source == f"{files.path}:9"
    assert {fact.name for fact in charter.derived["refund"]} == {"note_length", "note_pattern_ok"}


def test_a_yaml_number_is_not_taken_as_text_in_an_in_list(files: CharterFiles) -> None:
    # YAML reads 1.5 as a number; it must not quietly become the string "1.5".
    problem = files.problem(constrained("account: {in: [1.5]}"))
    assert problem.line == 9
    assert problem.message.startswith("tools.refund.constraints.account.in.0: Input should be")
