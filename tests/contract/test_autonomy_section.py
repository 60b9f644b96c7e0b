"""The ``autonomy:`` section: each rule names a declared tool, once."""

from __future__ import annotations

from charter.contract.loader import load_charter
from tests.contract.helpers import CharterFiles, lines

DECLARED = "declare it under tools: (declared: refund, send_email)"
TOOLS = (  # lines 5-10; the autonomy rules given to a test start on line 11
    "tools:\n"
    "  refund: {effect: irreversible}\n"
    "  send_email: {effect: irreversible}\n"
    "policies:\n"
    "  require_approval_for: [{action: refund, any: true}]\n"
    "autonomy:\n"
)


def test_autonomy_rules_for_declared_tools_load(files: CharterFiles) -> None:
    path = files.write(
        TOOLS
        + "  - {tool: refund, min_decisions: 3, max_rejection_rate: 0.34}\n"
        + "  - {tool: send_email}\n"
    )
    rules = load_charter(path).spec.autonomy
    assert [(r.tool, r.min_decisions, r.max_rejection_rate) for r in rules] == [
        ("refund", 3, 0.34),
        ("send_email", 50, 0.02),  # the defaults
    ]


def test_an_autonomy_rule_naming_an_undeclared_tool(files: CharterFiles) -> None:
    problem = files.problem(TOOLS + "  - {tool: refund}\n  - {tool: issue_refund}\n")
    assert problem.line == 12
    assert problem.message == "autonomy rule names tool 'issue_refund', which is not declared"
    assert problem.hint == DECLARED


def test_a_tool_with_two_autonomy_rules(files: CharterFiles) -> None:
    problem = files.problem(
        TOOLS
        + "  - tool: refund\n"
        + "    min_decisions: 10\n"
        + "  - {tool: send_email}\n"
        + "  - {tool: refund, min_decisions: 20}\n"
    )
    assert problem.line == 14
    assert problem.message == "tool 'refund' already has an autonomy rule (on line 11)"
    assert problem.hint == "keep one rule per tool: merge the two"


def test_every_autonomy_problem_is_reported(files: CharterFiles) -> None:
    problems = files.problems(
        TOOLS + "  - {tool: ghost}\n  - {tool: refund}\n  - {tool: ghost}\n  - {tool: refund}\n"
    )
    # An undeclared tool is reported each time (not as a duplicate); a declared one once.
    assert lines(problems) == [11, 13, 14]
    assert [p.message.split(",")[0] for p in problems] == [
        "autonomy rule names tool 'ghost'",
        "autonomy rule names tool 'ghost'",
        "tool 'refund' already has an autonomy rule (on line 12)",
    ]
