"""A person named in a policy must be named in canonical form (issue 11, sibling of defect 5).

People are canonical since d435ab9: a run for ``Mallory`` is the user ``mallory``. A rule
naming ``"Mallory"`` (``when: principal.user == "Mallory"``, ``Charter::User::"Mallory"``,
``context.principal.user like "Mal*"``) can never match, and a ``forbid`` that never fires
fails open. Each is a problem at its line saying the spelling to use; nothing is rewritten.
"""

from __future__ import annotations

import pytest

from charter.contract.loader import load_charter
from tests.contract.helpers import CharterFiles

CANONICAL = "people are named in canonical form, lower case (see docs/governance.md)"
RULES = """\
tools:
  refund: {effect: irreversible}
policies:
  deny:
    - action: refund
      when: {condition}
"""  # the when: line is line 10


@pytest.mark.parametrize(
    ("condition", "message", "hint"),
    [
        (
            "principal.user == 'Mallory'",
            'principal.user is compared with "Mallory", which is no user\'s name',
            'write "mallory"',
        ),
        (
            "'Mallory' == principal.user",
            'principal.user is compared with "Mallory", which is no user\'s name',
            'write "mallory"',
        ),
        (
            "principal.user != 'Bob' and amount_usd > 5",
            'principal.user is compared with "Bob", which is no user\'s name',
            'write "bob"',
        ),
        (
            "principal.user in ['eve', 'Mallory@Example.com']",
            'principal.user is compared with "Mallory@Example.com", which is no user\'s name',
            'write "mallory@example.com"',
        ),
        (
            "principal.user == '\uff2d\uff21\uff2c\uff2c\uff2f\uff32\uff39'",  # fullwidth: NFKC
            'principal.user is compared with "\uff2d\uff21\uff2c\uff2c\uff2f\uff32\uff39"',
            'write "mallory"',
        ),
        (
            "principal.user like 'Mal*'",
            'principal.user like "Mal*" can match no user',
            'write "mal*"',
        ),
        (
            "principal.user like '*@Example.COM'",
            'principal.user like "*@Example.COM" can match no user',
            'write "*@example.com"',
        ),
        (
            "principal.user like '*Straße*'",
            'principal.user like "*Straße*" can match no user',
            'write "*strasse*"',
        ),
    ],
    ids=[
        "equals",
        "literal-on-the-left",
        "not-equals",
        "in-a-list",
        "fullwidth",
        "like",
        "like-domain",
        "like-folds",
    ],
)
def test_a_condition_naming_a_person_not_in_canonical_form_is_a_problem_on_the_when_line(
    files: CharterFiles, condition: str, message: str, hint: str
) -> None:
    problem = files.problem(RULES.replace("{condition}", f'"{condition}"'))
    assert (problem.file, problem.line) == (str(files.path), 10)
    assert problem.message.startswith(f"in condition: {message}")
    assert CANONICAL in problem.message
    assert problem.hint == hint


@pytest.mark.parametrize(
    "condition",
    [
        "principal.user == 'a b'",  # whitespace inside: no user is named so
        "principal.user == '\u041callory'",  # a Cyrillic M: refused as a likely confusable
        "principal.user like '*ñ*'",  # no canonical name holds it
        "principal.user like '* *'",
    ],
)
def test_a_name_no_user_can_have_is_a_problem_that_says_so(
    files: CharterFiles, condition: str
) -> None:
    problem = files.problem(RULES.replace("{condition}", f'"{condition}"'))
    assert problem.line == 10
    assert "no user" in problem.message
    assert "write" not in problem.hint


@pytest.mark.parametrize(
    "condition",
    [
        "principal.user == 'mallory'",
        "principal.user in ['eve', 'mallory@example.com', 'svc:billing+1']",
        "principal.user like '*@example.com'",
        "principal.user like '*'",
        "principal.tenant == 'ACME'",  # tenants are not people: kept as given
        "note == 'Mallory'",  # an argument, not a person
        "'Support' in principal.roles",
    ],
)
def test_canonical_names_and_other_values_load(files: CharterFiles, condition: str) -> None:
    load_charter(files.write(RULES.replace("{condition}", f'"{condition}"')))


SCOPE = 'principal, action == Charter::Action::"refund", resource'
RAW = """\
tools:
  refund: {effect: irreversible}
policies:
  cedar: extra.cedar
"""


@pytest.mark.parametrize(
    ("rule", "message", "hint"),
    [
        (
            'forbid(principal == Charter::User::"Mallory", action, resource);',
            'Charter::User::"Mallory" is no user\'s name',
            'write Charter::User::"mallory"',
        ),
        (
            'forbid(principal in Charter::User::"Mallory", action, resource);',
            'Charter::User::"Mallory" is no user\'s name',
            'write Charter::User::"mallory"',
        ),
        (
            f"forbid({SCOPE}) when "
            '{ principal in [Charter::User::"eve", Charter::User::"Bob"] };',
            'Charter::User::"Bob" is no user\'s name',
            'write Charter::User::"bob"',
        ),
        (
            f'forbid({SCOPE}) when {{ context.principal.user == "Mallory" }};',
            'context.principal.user is compared with "Mallory"',
            'write "mallory"',
        ),
        (
            f'forbid({SCOPE}) when {{ context.principal["user"] != "Mallory" }};',
            'context.principal.user is compared with "Mallory"',
            'write "mallory"',
        ),
        (
            f'forbid({SCOPE}) when {{ ["eve", "Mallory"].contains(context.principal.user) }};',
            'context.principal.user is compared with "Mallory"',
            'write "mallory"',
        ),
        (
            f'forbid({SCOPE}) when {{ ["Mallory"].containsAny([context.principal.user]) }};',
            'context.principal.user is compared with "Mallory"',
            'write "mallory"',
        ),
        (
            f'forbid({SCOPE}) when {{ [context.principal.user].containsAll(["Mallory"]) }};',
            'context.principal.user is compared with "Mallory"',
            'write "mallory"',
        ),
        (
            f'forbid({SCOPE}) when {{ context.principal.user like "*@Evil.example" }};',
            'context.principal.user like "*@Evil.example" can match no user',
            'write "*@evil.example"',
        ),
        (
            f'forbid({SCOPE}) when {{ context.environment == "prod" && '
            f'(if context.run.tool_calls > 3 then context.principal.user == "Mallory" '
            "else false) };",
            'context.principal.user is compared with "Mallory"',
            'write "mallory"',
        ),
    ],
    ids=[
        "principal-scope",
        "principal-in-scope",
        "principal-in-a-set",
        "equals",
        "indexed-not-equals",
        "contains",
        "contains-any",
        "contains-all",
        "like",
        "inside-if",
    ],
)
def test_a_raw_cedar_rule_naming_a_person_not_in_canonical_form_is_a_problem_at_its_line(
    files: CharterFiles, rule: str, message: str, hint: str
) -> None:
    cedar = files.add("extra.cedar", f'// refunds\n\n@id("no-mallory")\n{rule}\n')
    problem = files.problem(RAW)
    assert (problem.file, problem.line) == (str(cedar), 3)
    assert problem.message.startswith(f"Cedar rule 'no-mallory': {message}")
    assert CANONICAL in problem.message
    assert problem.hint == hint


def test_raw_cedar_naming_people_canonically_loads(files: CharterFiles) -> None:
    files.add(
        "extra.cedar",
        f"""\
        @id("a") forbid(principal == Charter::User::"mallory", action, resource);
        @id("b") forbid({SCOPE}) when {{ context.principal.user == "eve@example.com" }};
        @id("c") forbid({SCOPE}) when {{ context.principal.user like "*@evil.example" }};
        @id("d") forbid({SCOPE}) when {{ ["bob", "svc:x"].contains(context.principal.user) }};
        @id("e") forbid({SCOPE}) when {{ context.principal.tenant == "ACME" }};
        """,
    )
    charter = load_charter(files.write(RAW))
    assert {"a", "b", "c", "d", "e"} <= set(charter.rules)


def test_every_rule_naming_people_wrongly_is_reported_not_only_the_first(
    files: CharterFiles,
) -> None:
    files.add(
        "extra.cedar",
        f"""\
        @id("a") forbid(principal == Charter::User::"Mallory", action, resource);
        @id("b") forbid({SCOPE}) when {{ context.principal.user == "mallory" }};
        @id("c") forbid({SCOPE}) when {{ context.principal.user == "Eve" }};
        """,
    )
    assert [p.line for p in files.problems(RAW)] == [1, 3]


def test_a_text_cedar_cannot_parse_has_no_people_problems_of_its_own() -> None:
    from charter.contract.cedar_people import people_problems_in

    assert people_problems_in("forbid(principal ==", "principal.user") == []
