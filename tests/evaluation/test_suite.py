"""Loading eval suites: good files load; every kind of bad file is a file:line problem."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from charter.contract.loader import Charter
from charter.core.errors import SuiteInvalid
from charter.evaluation.suite import load_suite, load_suites

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_desk"

HEADER = """\
suite: trial
kind: golden
systems: charter_examples.support_desk.evaluation:systems
defaults:
  principal: {user: alice, tenant: acme, roles: [support]}
tasks:
"""


def _write(tmp_path: Path, tasks: str, header: str = HEADER, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(header + textwrap.indent(textwrap.dedent(tasks), "  "), encoding="utf-8")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(SuiteInvalid) as caught:
        load_suite(path)
    return [str(p) for p in caught.value.problems]


def test_a_good_suite_loads_with_defaults_applied(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        - id: refund
          tags: [refund]
          input: Please handle ticket T-1001.
          checks:
            - outcome: succeeded
            - tool_called: {tool: issue_refund, args: {amount_usd: 45}}
        - id: routing
          input: Please handle ticket T-1004.
          principal: {user: bob, tenant: acme}
          environment: staging
          checks: [{outcome: succeeded}]
        """,
    )
    suite = load_suite(path)
    assert [t.key for t in suite.tasks] == ["trial/refund", "trial/routing"]
    first, second = suite.tasks
    assert first.principal.user == "alice"
    assert first.principal.roles == ("support",)
    assert first.environment == "prod"
    assert second.principal.user == "bob"
    assert second.environment == "staging"
    assert first.checks[1].line == 12  # the line of the check in the file
    assert len(suite.sha256) == 64


def test_the_example_suites_load_and_match_the_example_charter() -> None:
    charter = Charter.load(EXAMPLE / "charter.yaml")
    suites = load_suites(sorted((EXAMPLE / "evals").glob("*.yaml")))
    golden = [s for s in suites if s.kind == "golden"]
    security = [s for s in suites if s.kind == "security"]
    assert sum(len(s.tasks) for s in golden) >= 60
    assert sum(len(s.tasks) for s in security) >= 40
    assert [p for s in suites for p in s.problems_with(charter)] == []


def test_unknown_check_is_reported_at_its_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        - id: one
          input: Please handle ticket T-1001.
          checks:
            - outcome: succeeded
            - tool_was_called: {tool: issue_refund}
        """,
    )
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}:11:")
    assert "unknown check 'tool_was_called'" in problem
    assert "tool_called" in problem


def test_bad_matcher_and_bad_outcome_are_each_reported(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        - id: one
          input: Please handle ticket T-1001.
          checks:
            - outcome: finished
            - tool_called: {tool: issue_refund, args: {amount_usd: {bigger: 3}}}
        """,
    )
    problems = _problems(path)
    assert len(problems) == 2
    assert ":10:" in problems[0]
    assert "unknown outcome 'finished'" in problems[0]
    assert "unknown matcher operator 'bigger'" in problems[1]


def test_malformed_fixture_is_reported_inside_the_fixture(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        - id: one
          input: Please handle ticket T-9001.
          fixture:
            tickets:
              - {id: T-9001, customer_id: C-99, subject: Hi, body: Refund me}
          checks: [{outcome: succeeded}]
        - id: two
          input: Please handle ticket T-1001.
          fixture:
            tickets:
              - {id: T-9002, subject: Hi}
            colour: blue
          checks: [{outcome: succeeded}]
        """,
    )
    problems = _problems(path)
    assert any(":11:" in p and "C-99" in p and "not in the fixture" in p for p in problems)
    assert any("colour" in p for p in problems), problems


def test_schema_problems_duplicates_and_missing_principal(tmp_path: Path) -> None:
    header = HEADER.replace("suite: trial", "suite: Bad Name").split("defaults:")[0] + "tasks:\n"
    path = _write(
        tmp_path,
        """\
        - id: one
          input: Please handle ticket T-1001.
          checks: [{outcome: succeeded}]
        - id: one
          input: Please handle ticket T-1001.
          checks: [{outcome: succeeded}]
          extra: 1
        """,
        header=header,
    )
    problems = _problems(path)
    assert any(p.startswith(f"{path}:1:") and "suite" in p for p in problems)
    assert any("unknown key 'extra'" in p for p in problems)


def test_duplicate_ids_and_no_principal(tmp_path: Path) -> None:
    header = HEADER.split("defaults:")[0] + "tasks:\n"
    path = _write(
        tmp_path,
        """\
        - id: one
          input: Please handle ticket T-1001.
          principal: {user: a, tenant: t}
          checks: [{outcome: succeeded}]
        - id: one
          input: Please handle ticket T-1001.
          checks: [{outcome: succeeded}]
        """,
        header=header,
    )
    problems = _problems(path)
    assert any(":9:" in p and "used twice" in p for p in problems)
    assert any("has no principal" in p for p in problems)


def test_unknown_systems_and_not_yaml(tmp_path: Path) -> None:
    header = "suite: trial\nkind: golden\nsystems: nowhere.module:systems\ntasks:\n"
    path = _write(tmp_path, "- {id: a, input: x, checks: [{outcome: succeeded}]}\n", header=header)
    (problem,) = _problems(path)
    assert ":3:" in problem
    assert "cannot import 'nowhere.module'" in problem
    broken = tmp_path / "broken.yaml"
    broken.write_text("suite: [unclosed\n", encoding="utf-8")
    (problem,) = _problems(broken)
    assert "invalid YAML" in problem
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text("suite: !!python/object:os.system x\n", encoding="utf-8")
    (problem,) = _problems(tagged)
    assert "tag" in problem


def test_unknown_tool_or_argument_is_caught_against_the_charter(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        - id: one
          input: Please handle ticket T-1001.
          checks:
            - tool_called: {tool: refund_money}
            - tool_not_called: {tool: issue_refund, args: {amount: 5}}
            - tool_not_called: {tool: escalate_to_human}
        """,
    )
    suite = load_suite(path)
    problems = [str(p) for p in suite.problems_with(Charter.load(EXAMPLE / "charter.yaml"))]
    assert len(problems) == 2
    assert ":10:" in problems[0]
    assert "refund_money" in problems[0]
    assert ":11:" in problems[1]
    assert "argument 'amount'" in problems[1]


def test_two_files_with_one_suite_name_are_refused(tmp_path: Path) -> None:
    task = "- {id: a, input: Please handle ticket T-1001., checks: [{outcome: succeeded}]}\n"
    one = _write(tmp_path, task, name="one.yaml")
    two = _write(tmp_path, task, name="two.yaml")
    with pytest.raises(SuiteInvalid, match="used by another file"):
        load_suites([one, two])


def test_systems_that_exit_when_imported_are_a_problem_not_an_exit(tmp_path: Path) -> None:
    header = (
        "suite: trial\nkind: golden\nsystems: tests.contract.fixtures_exiting_toolkit:systems\n"
        "tasks:\n"
    )
    path = _write(tmp_path, "- {id: a, input: x, checks: [{outcome: succeeded}]}\n", header=header)
    (problem,) = _problems(path)
    assert ":3:" in problem
    assert "the module tried to exit the process (SystemExit(3))" in problem
