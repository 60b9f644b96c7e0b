"""The ``when:`` condition language: what it compiles to, and what it refuses, and where."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import cedarpy
import pytest

from charter.contract.conditions import (
    CedarType,
    ConditionError,
    compile_condition,
    decimal_literal,
)
from charter.contract.loader import load_charter
from tests.contract.helpers import CharterFiles

# The arguments of fixtures_toolkit.refund, as policies see them: (Cedar type, required).
REFUND: dict[str, tuple[CedarType, bool]] = {
    "account": ("String", True),
    "amount_usd": ("Decimal", True),
    "count": ("Long", False),
    "note": ("String", False),
    "tags": ("SetString", True),
    "flag": ("Bool", True),
}


def compiled(text: str) -> str:
    return compile_condition(text, REFUND)


def refused(text: str) -> ConditionError:
    with pytest.raises(ConditionError) as caught:
        compiled(text)
    return caught.value


# --- what good conditions compile to -------------------------------------------------------


def test_an_amount_comparison_compiles_to_a_decimal_method() -> None:
    assert compiled("amount_usd > 200") == (
        'context.args.amount_usd.greaterThan(decimal("200.0000"))'
    )


@pytest.mark.parametrize(
    ("op", "method"),
    [(">=", "greaterThanOrEqual"), ("<", "lessThan"), ("<=", "lessThanOrEqual")],
)
def test_every_ordering_of_amounts_uses_its_decimal_method(op: str, method: str) -> None:
    assert compiled(f"amount_usd {op} 12.5") == (
        f'context.args.amount_usd.{method}(decimal("12.5000"))'
    )


def test_amount_equality_compares_decimals() -> None:
    assert compiled("amount_usd == 3") == 'context.args.amount_usd == decimal("3.0000")'


def test_a_negative_number_is_a_literal() -> None:
    assert compiled("amount_usd > -5") == 'context.args.amount_usd.greaterThan(decimal("-5.0000"))'


def test_integers_compare_with_cedar_operators() -> None:
    assert compiled("count >= 2") == "(context.args has count && context.args.count >= 2)"


def test_membership_in_a_literal_list() -> None:
    assert compiled('account in ["a", "b"]') == '["a", "b"].contains(context.args.account)'


def test_membership_of_a_literal_in_the_principals_roles() -> None:
    assert compiled('"support" in principal.roles') == (
        'context.principal.roles.contains("support")'
    )


def test_not_negates_its_operand() -> None:
    assert compiled("not untrusted_read") == "!(context.untrusted_read)"


def test_and_binds_tighter_than_or() -> None:
    assert compiled('flag or account == "a" and untrusted_read') == (
        '(context.args.flag || (context.args.account == "a" && context.untrusted_read))'
    )


def test_parentheses_override_precedence() -> None:
    assert compiled('(flag or account == "a") and untrusted_read') == (
        '(((context.args.flag || context.args.account == "a")) && context.untrusted_read)'
    )


def test_an_optional_argument_is_guarded_by_has() -> None:
    assert compiled('note == "vip"') == '(context.args has note && context.args.note == "vip")'


def test_a_guard_stays_inside_its_own_side_of_or() -> None:
    assert compiled('note == "vip" or amount_usd > 1') == (
        '((context.args has note && context.args.note == "vip") || '
        'context.args.amount_usd.greaterThan(decimal("1.0000")))'
    )


def test_tainted_argument_facts() -> None:
    assert compiled("tainted.account") == "context.tainted.account"
    assert compiled("tainted_any and untrusted_read") == (
        "(context.tainted_any && context.untrusted_read)"
    )


def test_run_cost_is_an_amount() -> None:
    assert compiled("run.cost_usd > 0.5") == ('context.run.cost_usd.greaterThan(decimal("0.5000"))')


def test_run_counters_and_environment() -> None:
    assert compiled('run.tool_calls > 3 and environment == "prod"') == (
        '(context.run.tool_calls > 3 && context.environment == "prod")'
    )


def test_like_takes_a_quoted_pattern() -> None:
    assert compiled('account like "acct-*"') == 'context.args.account like "acct-*"'


def test_args_prefix_names_the_same_argument() -> None:
    assert compiled("args.amount_usd > 1") == compiled("amount_usd > 1")


def test_quotes_in_strings_are_escaped_for_cedar() -> None:
    assert compiled(r'account == "a\"b"') == r'context.args.account == "a\"b"'
    assert compiled("account == 'it'") == 'context.args.account == "it"'


def test_four_decimal_places_are_allowed() -> None:
    assert compiled("amount_usd > 0.0001") == (
        'context.args.amount_usd.greaterThan(decimal("0.0001"))'
    )


def test_decimal_literal_refuses_more_than_four_places() -> None:
    assert decimal_literal(Decimal("1.5")) == 'decimal("1.5000")'
    with pytest.raises(ConditionError, match="more than 4 decimal places"):
        decimal_literal(Decimal("1.00001"))


# --- what the compiled conditions mean ------------------------------------------------------


def _forbidden(condition: str, args: dict[str, Any]) -> bool:
    policies = (
        "permit(principal, action, resource);\n"
        f"forbid(principal, action, resource) when {{ {condition} }};"
    )
    request = {
        "principal": 'User::"u"',
        "action": 'Action::"refund"',
        "resource": 'Tool::"refund"',
        "context": {"args": args},
    }
    result = cedarpy.is_authorized(request, policies, [])
    assert result.diagnostics.errors == []  # an erroring forbid would be skipped: fail-open
    return not result.allowed


def test_an_absent_optional_argument_makes_the_condition_false_not_an_error() -> None:
    condition = compiled('note == "vip"')
    assert not _forbidden(condition, {})
    assert _forbidden(condition, {"note": "vip"})


def test_the_amount_threshold_is_exact_to_the_hundredth_of_a_cent() -> None:
    condition = compiled("amount_usd > 200")

    def amount(value: str) -> dict[str, Any]:
        return {"amount_usd": {"__extn": {"fn": "decimal", "arg": value}}}

    assert not _forbidden(condition, amount("200.0000"))
    assert _forbidden(condition, amount("200.0001"))


# --- what is refused, and why ---------------------------------------------------------------


def test_an_unknown_argument_lists_the_arguments() -> None:
    error = refused("amonut_usd > 3")
    assert error.message == "'amonut_usd' is not an argument of this tool that policies can see"
    assert error.hint.startswith("use one of: account, amount_usd, count, flag, note, tags;")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"abc" > 3', "> compares numbers, but got text and an integer"),
        ("account > 3", "> compares numbers, but got text and an integer"),
        ('amount_usd > "x"', "cannot compare an amount with text"),
        ("account == 3", "cannot compare text with an integer"),
        ("principal.roles > 3", "> compares numbers, but got a list of text and an integer"),
        ('account in "x"', "'in' needs a value and a list of the same kind, got text in text"),
        ("account in 3", "'in' needs a value and a list of the same kind, got text in an integer"),
        ('count in ["a"]', "'in' needs a value and a list of the same kind, got an integer in"),
        ("account like account", "'like' needs text on the left and a quoted pattern"),
        ("amount_usd", "condition 'amount_usd' is not true/false"),
        ("not amount_usd", "'not' needs a true/false value"),
        ('[1, "a"] == [1]', "a list must hold only strings or only integers"),
        ("account in []", "an empty list matches nothing"),
    ],
)
def test_type_errors_are_refused(text: str, message: str) -> None:
    assert refused(text).message.startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("(amount_usd > 3", "expected ')' in condition '(amount_usd > 3'"),
        ("amount_usd > 3)", "unexpected ')' in condition"),
        ("amount_usd > 3 and", "condition 'amount_usd > 3 and' ends too early"),
        ("and amount_usd > 3", "'and' cannot start a value"),
        ("amount_usd $ 3", "unexpected character '$' in condition 'amount_usd $ 3'"),
        ("amount_usd > 3 3", "unexpected '3' in condition"),
        ('account in ["a", "b"', "expected ']'"),
        ("   ", "the condition is empty"),
        ("amount_usd > 3.12345", "3.12345 has more than 4 decimal places"),
        ("count > 99999999999999999999", "99999999999999999999 is out of range"),
        ("tainted.iban", "'iban' is not an argument of this tool"),
        ("principal.email == 'x'", "'principal.email' is not an argument of this tool"),
    ],
)
def test_syntax_errors_are_refused(text: str, message: str) -> None:
    assert refused(text).message.startswith(message)


# --- through the loader: the problem is on the when: line -----------------------------------

RULES = """\
tools:
  refund: {effect: irreversible}
policies:
  require_approval_for:
    - action: refund
      reason: big refunds
      when: {condition}
"""  # the when: line is line 11


def test_a_condition_naming_a_missing_argument_is_reported_on_the_when_line(
    files: CharterFiles,
) -> None:
    problem = files.problem(RULES.replace("{condition}", '"amount > 200"'))
    assert problem.line == 11
    assert problem.message == (
        "in condition: 'amount' is not an argument of this tool that policies can see"
    )
    assert problem.hint == (
        "use one of: account, amount_usd, count, note; "
        "or principal.*, environment, run.*, untrusted_read"
    )


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("'\"abc\" > 3'", "> compares numbers"),
        ("'amount_usd > \"x\"'", "cannot compare an amount with text"),
        ('"(amount_usd > 3"', "expected ')'"),
        ('"amount_usd > 3 and"', "ends too early"),
        ('"amount_usd $ 3"', "unexpected character '$'"),
        ('"account in []"', "an empty list matches nothing"),
    ],
)
def test_condition_problems_are_reported_on_the_when_line(
    files: CharterFiles, condition: str, message: str
) -> None:
    problem = files.problem(RULES.replace("{condition}", condition))
    assert problem.line == 11
    assert problem.message.startswith("in condition: ")
    assert message in problem.message


def test_an_empty_condition_is_a_schema_problem(files: CharterFiles) -> None:
    problem = files.problem(RULES.replace("{condition}", '""'))
    assert problem.line == 11
    assert problem.message == (
        "policies.require_approval_for.0.when: String should have at least 1 character"
    )


def test_every_bad_condition_is_reported(files: CharterFiles) -> None:
    problems = files.problems("""\
        tools:
          refund: {effect: irreversible}
          delete_order: {effect: irreversible}
        policies:
          require_approval_for:
            - {action: refund, when: "amount > 1"}
            - {action: refund, when: "count > 1"}
            - {action: refund, when: "note > 1"}
          deny:
            - {action: delete_order, when: "force and"}
        """)
    assert [p.line for p in problems] == [10, 12, 14]


def test_good_conditions_compile_to_cedar_that_validates(files: CharterFiles) -> None:
    # The loader type-checks the compiled policies against the Cedar schema.
    charter = load_charter(
        files.write("""\
            tools:
              refund: {effect: irreversible}
              send_email: {effect: irreversible}
            policies:
              require_approval_for:
                - {action: refund, when: "amount_usd > 200 or note == \\"vip\\""}
                - {action: refund, when: "count >= 2 and not untrusted_read"}
                - {action: refund, when: "run.cost_usd > 0.5 or run.tool_calls > 6"}
                - {action: refund, when: "tainted.account or tainted_any"}
                - {action: send_email, when: "to like \\"*@example.com\\""}
                - {action: send_email, when: "\\"vip\\" in tags"}
              deny:
                - {action: send_email, when: "not (\\"support\\" in principal.roles)"}
                - {action: refund, when: "account in [\\"a\\", \\"b\\"] and count in [1, 2]"}
            """)
    )
    assert charter.rules["require_approval_for[0]"].effect == "require_approval"
    assert charter.rules["deny[1]"].effect == "deny"
    assert "context.args has tags &&" in charter.cedar_text


# --- bounds (issue 11, defect 3) --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "(" * 17 + "count > 1" + ")" * 17,
        "not " * 17 + "flag",
        "count in " + "[" * 17 + "1" + "]" * 17,
        "(" * 900 + "count > 1" + ")" * 900,  # a RecursionError before the bound
        "not " * 1_500 + "flag",
    ],
    ids=["parentheses", "not", "brackets", "parentheses-900", "not-1500"],
)
def test_nesting_past_the_bound_is_refused(text: str) -> None:
    error = refused(text)
    assert error.message == (
        "the condition nests deeper than 16 levels of parentheses, brackets and not"
    )
    assert error.hint == "flatten it, or split it into several rules"


def test_nesting_at_the_bound_compiles() -> None:
    assert compiled("(" * 16 + "count > 1" + ")" * 16).count("(") >= 16
    assert compiled("not " * 16 + "flag").startswith("!(")


def test_a_condition_with_too_many_tokens_is_refused_without_quadratic_work() -> None:
    # 300,000 tokens: tokenizing re-sliced the rest of the text at every token (minutes).
    error = refused(" or ".join(["count == 1"] * 100_000))
    assert error.message == "the condition has more than 2000 words and symbols"


@pytest.mark.parametrize("digits", [20, 5_000])
def test_an_integer_longer_than_cedar_holds_is_out_of_range(digits: int) -> None:
    error = refused(f"count > {'9' * digits}")
    assert error.message == f"{'9' * digits} is out of range"


def test_leading_zeros_do_not_make_an_integer_out_of_range() -> None:
    assert (
        compiled("count > 0000000000000000000000001")
        == "(context.args has count && context.args.count > 0000000000000000000000001)"
    )


@pytest.mark.parametrize(
    "value", ["1E+30", "-1E+30", "922337203685477.5808", "100000000000000000000000000000.5"]
)
def test_an_amount_outside_cedars_decimal_range_is_refused(value: str) -> None:
    with pytest.raises(ConditionError) as caught:
        decimal_literal(Decimal(value))
    assert caught.value.message.startswith(f"{Decimal(value)} is outside the amounts Cedar")


def test_the_largest_amount_cedar_holds_is_a_literal() -> None:
    assert decimal_literal(Decimal("922337203685477.5807")) == 'decimal("922337203685477.5807")'
    assert refused("amount_usd > 100000000000000000000000000000.5").message.startswith(
        "100000000000000000000000000000.5 is outside the amounts Cedar can compare"
    )
