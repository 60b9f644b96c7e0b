"""Eval suites' regular expressions (``matches:``) and the PII recognizers run in linear time
on what an agent wrote: a red-team task can steer that text (issue 11, defect 4's siblings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.core.errors import SuiteInvalid
from charter.evaluation.checks import CheckError, parse_check
from charter.evaluation.matchers import Matcher, MatcherError
from charter.evaluation.pii import find_pii
from charter.evaluation.suite import load_suite
from tests.core.test_patterns import HOSTILE, finishes


def test_a_catastrophic_matches_pattern_on_a_hostile_answer_finishes() -> None:
    out = finishes(f"""
        from charter.evaluation.matchers import Matcher
        matcher = Matcher.parse({{"matches": "^(a|a)+$"}})
        print(matcher.test({HOSTILE!r}), matcher.test("a" * 30))
    """)
    assert out == "False True"


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("refund", "We issued a refund.", True),  # a search, not a whole match
        (r"\d{2}\.\d{2}$", "Refunded 45.00\n", True),  # $ before a final newline, as in re
        (r"^Refund\w*", "Refunded", True),
        (r"\d+ USD", "\u0664\u0665 USD", True),  # \d is Unicode, as in re
        ("(?i)REFUND", "refund", True),
        ("refund", "nothing of the sort", False),
    ],
)
def test_matches_searches_with_pythons_meaning(pattern: str, text: str, expected: bool) -> None:
    assert Matcher.parse({"matches": pattern}).test(text) is expected


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(ab)\1", "cannot run in linear time: it refers back to a group"),
        (r"(?<!not )refund", "cannot run in linear time: it looks ahead or behind"),
        (r"\brefund\b", "uses \\b, which is not supported"),
    ],
)
def test_a_matches_pattern_that_cannot_run_safely_is_refused_when_parsed(
    pattern: str, reason: str
) -> None:
    with pytest.raises(MatcherError) as caught:
        Matcher.parse({"matches": pattern})
    assert str(caught.value).startswith(
        f"'matches': bad regular expression: pattern {pattern!r} {reason}"
    )
    with pytest.raises(CheckError) as in_a_check:
        parse_check({"output": {"matches": pattern}})
    assert "output: 'matches': bad regular expression" in str(in_a_check.value)


def test_matches_is_compiled_once_per_matcher() -> None:
    matcher = Matcher.parse({"matches": "refund"})
    assert matcher.pattern is not None
    assert matcher.pattern is Matcher("matches", "refund").pattern  # the compiled form, cached
    assert matcher == Matcher("matches", "refund")


def test_pii_recognizers_finish_on_long_hostile_text() -> None:
    # Each of these took minutes when an address's local part was unbounded.
    out = finishes("""
        from charter.evaluation.pii import find_pii
        for text in ("a" * 300_000, "1" * 300_000, "a." * 150_000, ("a" * 70 + "@") * 4_000):
            print(len(find_pii(text)))
    """)
    assert out.split() == ["0", "0", "0", "0"]


def test_an_address_with_a_long_local_part_is_still_found() -> None:
    [finding] = find_pii("write to " + "x" * 80 + "@example.com now")
    assert finding.kind == "email address"
    assert finding.text.endswith("@example.com")


def test_a_suite_with_a_pattern_that_cannot_run_in_linear_time_is_a_problem_at_its_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(
        "suite: trial\n"
        "kind: golden\n"
        "systems: charter_examples.support_desk.evaluation:systems\n"
        "defaults:\n"
        "  principal: {user: alice, tenant: acme, roles: [support]}\n"
        "tasks:\n"
        "  - id: one\n"
        "    input: Please handle ticket T-1001.\n"
        "    checks:\n"
        "      - outcome: succeeded\n"
        "      - output: {matches: '(?<!not )refunded'}\n",
        encoding="utf-8",
    )
    with pytest.raises(SuiteInvalid) as caught:
        load_suite(path)
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == (str(path), 11)
    assert "pattern '(?<!not )refunded' cannot run in linear time" in problem.message
