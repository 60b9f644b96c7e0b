"""A constraint's ``pattern`` is compiled once, at load, for linear-time matching (RE2); one
that cannot run so is a problem at its line, naming the pattern and why."""

from __future__ import annotations

import pytest

from charter.contract.loader import load_charter
from charter.core.patterns import UserPattern
from tests.contract.helpers import CharterFiles

# fixtures_toolkit.refund(account: str, amount_usd: Decimal, count: int = 1, note: str | None)
REFUND = """\
tools:
  refund:
    effect: irreversible
    constraints:
"""  # a constraint given to a test is on line 9


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("^(a)\\\\1$", "cannot run in linear time: it refers back to a group"),
        ("^(?!EVIL)[A-Z-]+$", "cannot run in linear time: it looks ahead or behind"),
        ("(?<=acct-)[0-9]+", "cannot run in linear time: it looks ahead or behind"),
        ("^\\\\bacct\\\\b$", "uses \\b, which is not supported"),
        ("^a{5000}$", "is too large to run in linear time"),
    ],
    ids=["backreference", "lookahead", "lookbehind", "word-boundary", "huge-repeat"],
)
def test_a_pattern_that_cannot_run_in_linear_time_is_a_problem_at_its_line(
    files: CharterFiles, pattern: str, reason: str
) -> None:
    problem = files.problem(REFUND + f'      account: {{pattern: "{pattern}"}}\n')
    written = pattern.replace("\\\\", "\\")
    assert problem.file == str(files.path)
    assert problem.line == 9
    assert problem.message.startswith(
        f"tools.refund.constraints.account.pattern: pattern {written!r} {reason}"
    )


def test_every_bad_pattern_is_reported_each_at_its_own_line(files: CharterFiles) -> None:
    problems = files.problems(
        REFUND
        + '      account: {pattern: "(x)\\\\1"}\n'
        + "      note:\n"
        + '        pattern: "(?=y)y"\n'
    )
    assert [(p.line, "linear time" in p.message) for p in problems] == [(9, True), (11, True)]


def test_patterns_are_compiled_once_when_the_charter_loads(files: CharterFiles) -> None:
    charter = load_charter(
        files.write(REFUND + '      account: {pattern: "^[A-Za-z0-9-]{3,40}$"}\n')
    )
    [fact] = charter.derived["refund"]
    assert fact.name == "account_pattern_ok"
    assert isinstance(fact.pattern, UserPattern)
    assert fact.pattern.full  # a constraint is a whole match, as re.fullmatch was
    assert fact.pattern.matches("acct-C-01")
    assert not fact.pattern.matches("acct C 01")
