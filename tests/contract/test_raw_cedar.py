"""Raw Cedar files beside the charter: problems at the .cedar file's own lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.contract.cedar_compile import CedarStatement, split_cedar_statements
from charter.contract.loader import load_charter
from tests.contract.helpers import CharterFiles

CHARTER = """\
tools:
  refund: {effect: irreversible}
  send_email: {effect: irreversible}
policies:
  cedar: policies/extra.cedar
"""
REFUND_SCOPE = '(principal, action == Charter::Action::"refund", resource)'


@pytest.fixture
def cedar(files: CharterFiles) -> Path:
    """Where the charter's raw Cedar file goes."""
    files.write(CHARTER)
    return files.root / "policies" / "extra.cedar"


def problems_with(files: CharterFiles, cedar: Path, text: str) -> list[tuple[str, int, str]]:
    files.add("policies/extra.cedar", text)
    return [(p.file, p.line, p.message) for p in files.problems(CHARTER)]


def test_a_rule_reading_an_argument_that_does_not_exist_is_located_in_the_cedar_file(
    files: CharterFiles, cedar: Path
) -> None:
    files.add(
        "policies/extra.cedar",
        f"""\
        // Refund rules.
        @id("big-refunds")
        forbid {REFUND_SCOPE}
        when {{ context.args.amount_usd.greaterThan(decimal("1000.00")) }};

        @id("typo")
        @verdict("require_approval")
        forbid {REFUND_SCOPE}
        when {{ context.args.amount > 3 }};
        """,
    )
    [problem] = files.problems(CHARTER)
    assert (problem.file, problem.line) == (str(cedar), 6)
    assert problem.message.startswith("Cedar rule 'typo': ")
    assert "attribute `args.amount` in context" in problem.message
    assert "not found" in problem.message
    assert "context.args.<argument>" in problem.hint


def test_a_cedar_syntax_error_is_reported_at_its_statement(
    files: CharterFiles, cedar: Path
) -> None:
    found = problems_with(
        files,
        cedar,
        f"""\
        @id("ok")
        forbid {REFUND_SCOPE};


        @id("broken")
        forbid {REFUND_SCOPE}
        when {{ context.args.account == }};
        """,
    )
    assert len(found) == 1
    file, line, message = found[0]
    assert (file, line) == (str(cedar), 5)
    assert message.startswith("Cedar syntax error: ")


def test_an_unterminated_last_statement_is_a_syntax_error(files: CharterFiles, cedar: Path) -> None:
    [(_, line, message)] = problems_with(files, cedar, f'\n\n@id("x")\nforbid {REFUND_SCOPE}\n')
    assert line == 3
    assert message.startswith("Cedar syntax error: ")


def test_an_unknown_verdict(files: CharterFiles, cedar: Path) -> None:
    files.add(
        "policies/extra.cedar", f'// x\n@id("r")\n@verdict("maybe")\nforbid {REFUND_SCOPE};\n'
    )
    [problem] = files.problems(CHARTER)
    assert (problem.file, problem.line) == (str(cedar), 2)
    assert problem.message == "@verdict('maybe') is not known"
    assert problem.hint == 'use @verdict("deny") or @verdict("require_approval")'


def test_a_duplicate_id_in_the_file(files: CharterFiles, cedar: Path) -> None:
    found = problems_with(
        files,
        cedar,
        f"""\
        @id("same")
        forbid {REFUND_SCOPE};
        @id("same")
        forbid (principal, action == Charter::Action::"send_email", resource);
        """,
    )
    assert found == [(str(cedar), 3, "policy id 'same' is used twice")]


def test_an_id_that_a_compiled_rule_already_uses(files: CharterFiles, cedar: Path) -> None:
    found = problems_with(files, cedar, f'@id("tools.refund")\nforbid {REFUND_SCOPE};\n')
    assert found == [(str(cedar), 1, "policy id 'tools.refund' is used twice")]


def test_an_unknown_action_is_reported(files: CharterFiles, cedar: Path) -> None:
    found = problems_with(
        files,
        cedar,
        '@id("x")\nforbid (principal, action == Charter::Action::"ghost", resource);\n',
    )
    assert found
    assert all(line == 1 for _, line, _ in found)
    assert 'unrecognized action `Charter::Action::"ghost"`' in found[0][2]


def test_rules_get_ids_effects_and_reasons(files: CharterFiles, cedar: Path) -> None:
    files.add(
        "policies/extra.cedar",
        f"""\
        // A rule without @id is named after its file and line.
        forbid {REFUND_SCOPE}
        when {{ context.args.account == "a;b // not a comment" }};

        @id("approve-emails")
        @verdict("require_approval")
        @reason("emails need a look (for now)")
        forbid (principal, action == Charter::Action::"send_email", resource);

        @id("permit-refunds") permit {REFUND_SCOPE};
        """,
    )
    charter = load_charter(files.path)
    unnamed = charter.rules["policies/extra.cedar:2"]
    assert (unnamed.effect, unnamed.source) == ("deny", "policies/extra.cedar:2")
    assert unnamed.reason == "Cedar rule policies/extra.cedar:2"
    approve = charter.rules["approve-emails"]
    assert (approve.effect, approve.reason) == ("require_approval", "emails need a look (for now)")
    assert charter.rules["permit-refunds"].effect == "permit"
    assert '@id("policies/extra.cedar:2")' in charter.cedar_text


def test_an_empty_or_comment_only_cedar_file_adds_nothing(files: CharterFiles, cedar: Path) -> None:
    files.add("policies/extra.cedar", "// nothing yet; see ticket 12\n")
    charter = load_charter(files.path)
    assert set(charter.rules) == {"tools.refund", "tools.send_email"}


# --- split_cedar_statements -----------------------------------------------------------------


def test_statements_split_at_semicolons_with_their_start_lines() -> None:
    text = (
        'permit (principal, action, resource);\n\n@id("b")\nforbid (principal, action, resource);\n'
    )
    assert split_cedar_statements(text) == [
        CedarStatement("permit (principal, action, resource);", 1),
        CedarStatement('@id("b")\nforbid (principal, action, resource);', 3),
    ]


def test_semicolons_and_quotes_in_comments_do_not_split() -> None:
    text = '// a; "b\n// c;\nforbid (principal, action, resource); // trailing; "x\n'
    [statement] = split_cedar_statements(text)
    assert statement == CedarStatement("forbid (principal, action, resource);", 3)


def test_semicolons_and_slashes_in_strings_do_not_split() -> None:
    text = (
        'forbid (principal, action, resource)\nwhen { context.a == "x; // y" };\n'
        "permit (principal, action, resource);\n"
    )
    statements = split_cedar_statements(text)
    assert [s.line for s in statements] == [1, 3]
    assert statements[0].text.endswith('"x; // y" };')


def test_escaped_quotes_in_strings_do_not_end_them() -> None:
    text = (
        'forbid (principal, action, resource) when { context.a == "q\\";" };\npermit (p, a, r);\n'
    )
    statements = split_cedar_statements(text)
    assert len(statements) == 2
    assert statements[0].text.endswith('"q\\";" };')
    assert statements[1].line == 2


def test_a_statement_without_a_final_semicolon_is_kept() -> None:
    assert split_cedar_statements("\n\nforbid (principal, action, resource)\n") == [
        CedarStatement("forbid (principal, action, resource)\n", 3)
    ]


def test_two_statements_on_one_line() -> None:
    statements = split_cedar_statements("permit (a, b, c); forbid (a, b, c);")
    assert [(s.text, s.line) for s in statements] == [
        ("permit (a, b, c);", 1),
        ("forbid (a, b, c);", 1),
    ]


@pytest.mark.parametrize("text", ["", "   \n\n", "// only\n// comments;\n"])
def test_nothing_to_split(text: str) -> None:
    assert split_cedar_statements(text) == []
