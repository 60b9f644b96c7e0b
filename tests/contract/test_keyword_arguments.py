"""Arguments named like Cedar's reserved words, or not in ASCII, compile to Cedar that loads.

Cedar refuses ``context.args.then`` (``then``, ``like``, ``has``, ``true``, ``false``, ``if``,
``else``, ``in``, ``is`` are its reserved words), so a constraint, a ``when:`` condition or a
sink on such an argument used to fail the load with "compiled policy is invalid". Every
compiled reference to an argument reads it in a form Cedar takes whatever its name
(``context.args["then"]``); decisions on such arguments are tested in
``tests/policy/test_keyword_arguments.py``.
"""

from __future__ import annotations

import cedarpy
import pytest

from charter.contract.cedar_text import cedar_attribute, cedar_has
from charter.contract.loader import load_charter
from tests.contract.helpers import HEADER, CharterFiles

KEYWORD_HEADER = HEADER.replace("fixtures_toolkit", "fixtures_keyword_toolkit")
TOOLS = """\
tools:
  read_mail: {effect: read, output: untrusted}
  route:
    effect: write
"""
# Cedar's reserved words, from its grammar (docs.cedarpolicy.com, "Reserved words").
CEDAR_RESERVED = ("true", "false", "if", "then", "else", "in", "like", "has", "is", "__cedar")


def _parses(expression: str) -> bool:
    try:
        cedarpy.policies_to_json_str(
            f"permit(principal, action, resource) when {{ {expression} }};"
        )
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    "name",
    [*CEDAR_RESERVED, "__cedar_x", "größe", "user-id", "a.b", 'say "hi"', "back\\slash", "ok"],
)
def test_any_argument_name_reads_as_cedar_takes_it(name: str) -> None:
    value = cedar_attribute("context.args", name)
    assert _parses(f"{cedar_has('context.args', name)} && {value} == 1")


def test_plain_names_keep_the_dotted_form_and_the_rest_are_indexed() -> None:
    assert cedar_attribute("context.args", "amount_usd") == "context.args.amount_usd"
    assert cedar_has("context.args", "amount_usd") == "context.args has amount_usd"
    assert cedar_attribute("context.args", "then") == 'context.args["then"]'
    assert cedar_has("context.args", "then") == 'context.args has "then"'
    assert cedar_attribute("context.tainted", "größe") == 'context.tainted["größe"]'
    assert cedar_attribute("context.args", 'a"b') == 'context.args["a\\"b"]'


@pytest.mark.parametrize("word", CEDAR_RESERVED)
def test_the_dotted_form_of_every_reserved_word_is_refused_by_cedar(word: str) -> None:
    # Why the indexed form exists: if Cedar ever took these, this test says so.
    assert not _parses(f"context.args.{word} == 1")


CONSTRAINTS = """\
    constraints:
      then: {in: [a, b], pattern: "[a-z]+", max_length: 5, domain_in: [example.com]}
      like: {max: 10, min: 1}
      has: {max_length: 3}
      größe: {max: 100}
"""


def test_constraints_on_keyword_arguments_load(files: CharterFiles) -> None:
    charter = load_charter(files.write(TOOLS + CONSTRAINTS, header=KEYWORD_HEADER))
    assert {
        "constraints.route.then.in",
        "constraints.route.then.pattern",
        "constraints.route.then.max_length",
        "constraints.route.then.domain_in",
        "constraints.route.like.max",
        "constraints.route.like.min",
        "constraints.route.has.max_length",
        "constraints.route.größe.max",
    } <= set(charter.rules)
    assert 'context.args has "has"' in charter.cedar_text
    assert 'context.args["größe"]' in charter.cedar_text


@pytest.mark.parametrize(
    "condition",
    [
        "then == 'x'",
        "args.then == 'x'",
        "args.like > 3",
        "args.has == 'y'",
        "args.true",
        "not args.false",  # not a Bool: refused below, never "compiled policy is invalid"
        "'x' in args.false",
        "größe_fehlt > 3",
        "args.then like '*x*' and environment == 'prod'",
        "tainted.then or tainted.like",
    ],
)
def test_conditions_on_keyword_arguments_load_or_say_why_not(
    files: CharterFiles, condition: str
) -> None:
    body = TOOLS + f'policies:\n  deny:\n    - {{action: route, when: "{condition}"}}\n'
    problems = files.problems(body, header=KEYWORD_HEADER)
    for problem in problems:
        assert "compiled policy is invalid" not in problem.message
        assert problem.message.startswith("in condition: ")
    if condition in ("not args.false", "größe_fehlt > 3"):
        assert len(problems) == 1
    else:
        assert problems == []


def test_sinks_on_keyword_arguments_load(files: CharterFiles) -> None:
    body = TOOLS + (
        "policies:\n  untrusted_content:\n"
        '    sinks: [{tool: route, args: [then, like, has, "true", "false", größe, extra]}]\n'
    )
    charter = load_charter(files.write(body, header=KEYWORD_HEADER))
    assert 'context.tainted["then"]' in charter.cedar_text
