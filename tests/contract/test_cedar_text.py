"""``contract.cedar_text``: the one door to cedarpy, bounded, and speaking in rule ids."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from charter.contract.cedar_text import (
    MAX_NESTING,
    MAX_OPERATORS,
    CedarRefused,
    ValidationIssue,
    cedar_string,
    check_round_trip,
    name_policies,
    policies_json,
    policy_ids,
    policy_set,
    scan_cedar,
    validate_policies,
)
from charter.contract.loader import load_charter
from tests.contract.helpers import CharterFiles

SRC = Path(__file__).resolve().parents[2] / "src" / "charter"
SCOPE = '(principal, action == Charter::Action::"get_order", resource)'


def refused(text: str) -> CedarRefused:
    with pytest.raises(CedarRefused) as caught:
        scan_cedar(text)
    return caught.value


# --- the bounds ------------------------------------------------------------------------------


@pytest.mark.parametrize("opener", ["(", "[", "{a: ", "if true then "])
def test_nesting_past_the_bound_is_refused_where_it_happens(opener: str) -> None:
    closer = {"(": ")", "[": "]", "{a: ": "}", "if true then ": " else true"}[opener]
    deep = opener * (MAX_NESTING + 1) + "1" + closer * (MAX_NESTING + 1)
    error = refused(f"permit{SCOPE}\nwhen {{\n  {deep} }};")
    assert error.message == f"Cedar expression nests deeper than {MAX_NESTING} levels"
    assert error.line == 3


def test_nesting_at_the_bound_is_handed_to_cedar() -> None:
    # The policy scope and `when {` take two levels of their own.
    deep = "(" * (MAX_NESTING - 2) + "true" + ")" * (MAX_NESTING - 2)
    assert policies_json(f"permit{SCOPE} when {{ {deep} }};")["staticPolicies"]


def test_brackets_in_strings_and_comments_do_not_count() -> None:
    text = (
        f"// {'(' * 100}\n"
        f'@id("{"[" * 100}")\n'
        f'permit{SCOPE} when {{ context.args.x == "{"{" * 100}\\"" }};'
    )
    scan_cedar(text)


def test_nesting_is_per_policy_and_an_else_closes_its_if() -> None:
    one = f"permit{SCOPE} when {{ if true then (true) else (false) }};\n"
    scan_cedar(one * (MAX_NESTING * 2))


def test_operators_are_counted_per_policy() -> None:
    chain = " && ".join(["true"] * (MAX_OPERATORS // 2))
    policy = f"permit{SCOPE} when {{ {chain} }};\n"
    scan_cedar(policy * 4)  # each under the bound, together far over it
    error = refused(f"permit{SCOPE} when {{ {chain} && {chain} && true && true }};")
    assert error.message == f"a Cedar policy has more than {MAX_OPERATORS} operators"


def test_text_over_the_size_bound_is_refused_before_scanning() -> None:
    error = refused(" " * 2_000_001)
    assert error.message.startswith("the Cedar text is 2000001 characters")


def test_an_unterminated_string_is_left_for_cedar_to_report() -> None:
    with pytest.raises(CedarRefused) as caught:
        policies_json(f'permit{SCOPE} when {{ "((((((((((((((((((((((((((((((((((((((( }};')
    assert caught.value.message.startswith("Cedar syntax error: ")


# --- every door is guarded -------------------------------------------------------------------


@pytest.mark.parametrize(
    "door",
    [
        policies_json,
        policy_set,
        policy_ids,
        check_round_trip,
        lambda text: validate_policies(text, '{"": {"entityTypes": {}, "actions": {}}}'),
    ],
    ids=["policies_json", "policy_set", "policy_ids", "check_round_trip", "validate"],
)
def test_every_function_refuses_text_that_would_crash_cedarpy(door: object) -> None:
    deep = f"permit{SCOPE} when {{ " + "(" * 5_000 + "true" + ")" * 5_000 + " };"
    with pytest.raises(CedarRefused):
        door(deep)  # type: ignore[operator]


def test_no_other_module_hands_text_to_cedarpy() -> None:
    # cedarpy crashes the process on deep text: every parse goes through cedar_text.
    parsing = re.compile(
        r"cedarpy\.(policies_to_json_str|policies_from_json_str|validate_policies|"
        r"format_policies|policies_to_pst|PolicySet|is_authorized_batch|is_authorized_partial)"
    )
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "cedar_text.py":
            continue
        text = path.read_text(encoding="utf-8")
        code = ast.unparse(ast.parse(text))  # without comments and docstrings' formatting
        if parsing.search(code):
            offenders.append(str(path.relative_to(SRC)))
    assert offenders == []


# --- Cedar's JSON form -----------------------------------------------------------------------


def test_an_expression_too_deep_for_the_json_form_is_refused_with_its_rule() -> None:
    chain = " && ".join(["true"] * 70)
    text = f'@id("fine")\npermit{SCOPE};\n@id("long")\nforbid{SCOPE} when {{ {chain} }};'
    with pytest.raises(CedarRefused) as caught:
        check_round_trip(text)
    assert caught.value.message.startswith("Cedar rule 'long': Cedar expression nests too deeply")


# --- cedarpy's position ids become rule ids ---------------------------------------------------


def test_position_ids_map_to_each_policys_id() -> None:
    text = f'@id("a")\npermit{SCOPE};\npermit{SCOPE};\n@id("c")\nforbid{SCOPE};'
    assert policy_ids(text) == {"policy0": "a", "policy1": "policy1", "policy2": "c"}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "error while evaluating policy `policy1`: type error: expected long, got string",
            "error while evaluating rule 'deny[0]' (charter.yaml:12): type error: expected "
            "long, got string",
        ),
        (
            "for policy `policy0`, attribute `x` not found",
            "for rule 'a' (x.cedar:3), attribute `x` not found",
        ),
        ("policy `policy9` is odd", "a rule is odd"),
        ("nothing to name here, not even policy0", "nothing to name here, not even policy0"),
    ],
)
def test_name_policies_replaces_every_position_id(message: str, expected: str) -> None:
    labels = {"policy0": "'a' (x.cedar:3)", "policy1": "'deny[0]' (charter.yaml:12)"}
    assert name_policies(message, labels) == expected


def test_a_validation_issue_drops_the_position_id_from_its_detail() -> None:
    issue = ValidationIssue("policy3", "for policy `policy3`, attribute `args.x` not found")
    assert issue.detail == "attribute `args.x` not found"


def test_a_cedar_type_error_in_a_raw_rule_names_the_rule_not_policy0(
    files: CharterFiles,
) -> None:
    files.add(
        "x.cedar",
        f'@id("first")\npermit{SCOPE};\n\n@id("typo")\nforbid{SCOPE} when {{ context.nope }};\n',
    )
    [problem] = files.problems("tools:\n  get_order: {effect: read}\npolicies: {cedar: x.cedar}\n")
    assert (problem.file, problem.line) == (str(files.root / "x.cedar"), 4)
    assert problem.message.startswith("Cedar rule 'typo': ")
    assert "policy0" not in problem.message
    assert "policy1" not in problem.message


def test_a_raw_rule_without_an_id_in_a_file_with_a_non_ascii_name_loads(
    files: CharterFiles,
) -> None:
    # The rule is named after its file and line; json.dumps would have written 'pol\u00edtica'
    # which is not a Cedar escape.
    files.add("política.cedar", f"forbid{SCOPE} when {{ false }};\n")
    charter = load_charter(
        files.write("tools:\n  get_order: {effect: read}\npolicies: {cedar: política.cedar}\n")
    )
    assert "política.cedar:1" in charter.rules


def test_cedar_string_escapes_what_cedar_needs_and_nothing_else() -> None:
    value = 'a "quoted" \\ política\n'
    [policy] = policies_json(f"@id({cedar_string(value)})\npermit{SCOPE};")[
        "staticPolicies"
    ].values()
    assert policy["annotations"]["id"] == value
