"""Schema problems: unknown keys, wrong types, missing keys, each at its own line."""

from __future__ import annotations

import pytest

from tests.contract.helpers import CharterFiles, lines

TOOL_KEYS = (
    "effect, output, credential, timeout_seconds, fee_usd, defer, compensate, roles, "
    "constraints, description"
)


def test_an_unknown_top_level_key_names_the_allowed_keys(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          get_order: {effect: read}
        toolz: 1
        """)
    assert problem.line == 7
    assert problem.message == "unknown key 'toolz'"
    assert problem.hint == (
        "remove it or check the spelling (allowed: charter, description, model, prompt, "
        "toolkit, tools, budgets, policies, slos, evals, concurrency, rollout, autonomy)"
    )


def test_an_unknown_key_inside_a_flow_tool_declaration(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          get_order: {effect: read, efect: write}
        """)
    assert problem.line == 6
    assert problem.message == "unknown key 'efect' in tools.get_order"
    assert problem.hint == f"remove it or check the spelling (allowed: {TOOL_KEYS})"


def test_an_unknown_key_inside_a_block_tool_declaration_is_on_its_own_line(
    files: CharterFiles,
) -> None:
    problem = files.problem("""\
        tools:
          get_order:
            effect: read
            timeout: 5
        """)
    assert problem.line == 8
    assert problem.message == "unknown key 'timeout' in tools.get_order"
    assert "timeout_seconds" in problem.hint


def test_an_unknown_key_inside_budgets(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          get_order: {effect: read}
        budgets:
          max_tool_calls: 3
          max_calls: 3
        """)
    assert problem.line == 9
    assert problem.message == "unknown key 'max_calls' in budgets"
    assert problem.hint == (
        "remove it or check the spelling (allowed: max_total_tokens, max_tool_calls, "
        "timeouts, max_usd_per_run, on_exceed)"
    )


def test_an_unknown_key_inside_budget_timeouts(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          get_order: {effect: read}
        budgets:
          timeouts:
            overall: 5
        """)
    assert problem.line == 9
    assert problem.message == "unknown key 'overall' in budgets.timeouts"
    assert "overall_seconds, per_tool_seconds" in problem.hint


def test_an_unknown_key_inside_a_constraint(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          refund:
            effect: irreversible
            constraints:
              amount_usd: {maximum: 500}
        """)
    assert problem.line == 9
    assert problem.message == "unknown key 'maximum' in tools.refund.constraints.amount_usd"
    assert "(allowed: domain_in, in, max, min, pattern, max_length)" in problem.hint


def test_an_unknown_key_inside_an_approval_rule(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          refund: {effect: irreversible}
        policies:
          require_approval_for:
            - action: refund
              iff: "amount_usd > 3"
        """)
    assert problem.line == 10
    assert problem.message == "unknown key 'iff' in policies.require_approval_for.0"
    assert "action, when, any, reason" in problem.hint


def test_a_string_where_an_integer_budget_belongs(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          get_order: {effect: read}
        budgets:
          max_tool_calls: lots
        """)
    assert problem.line == 8
    assert problem.message.startswith("budgets.max_tool_calls: Input should be a valid integer")
    assert problem.hint == "write a whole number"


def test_a_fractional_tool_call_budget_is_not_rounded(files: CharterFiles) -> None:
    problem = files.problem("tools:\n  get_order: {effect: read}\nbudgets: {max_tool_calls: 2.5}\n")
    assert problem.line == 7
    assert problem.message.startswith("budgets.max_tool_calls:")


def test_a_list_where_the_tools_mapping_belongs(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          - get_order
          - refund
        """)
    assert problem.line == 5
    assert problem.message == "tools: Input should be a valid dictionary"
    assert problem.hint == "write a mapping (key: value)"


def test_an_unknown_effect_lists_the_known_ones(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          get_order:
            effect: delete
        """)
    assert problem.line == 7
    assert problem.message == (
        "tools.get_order.effect: Input should be 'read', 'write' or 'irreversible'"
    )
    assert problem.hint == "use one of the listed values"


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (
            "max_usd_per_run: -1",
            "budgets.max_usd_per_run: Input should be greater than or equal to 0",
        ),
        (
            "max_tool_calls: -2",
            "budgets.max_tool_calls: Input should be greater than or equal to 1",
        ),
        (
            "max_total_tokens: 0",
            "budgets.max_total_tokens: Input should be greater than or equal to 1",
        ),
        (
            "timeouts: {overall_seconds: -5}",
            "budgets.timeouts.overall_seconds: Input should be greater than 0",
        ),
    ],
)
def test_negative_or_zero_budgets_are_refused(
    files: CharterFiles, budget: str, message: str
) -> None:
    problem = files.problem(f"tools:\n  get_order: {{effect: read}}\nbudgets:\n  {budget}\n")
    assert problem.line == 8
    assert problem.message == message
    assert problem.hint == "use a larger value"


def test_a_missing_model_is_reported_at_the_top(files: CharterFiles) -> None:
    problem = files.problem(
        "tools:\n  get_order: {effect: read}\n",
        header="charter: orders\nprompt: prompt.md\n",
    )
    assert (problem.line, problem.message, problem.hint) == (
        1,
        "missing required key 'model'",
        "add model: ...",
    )


def test_missing_tools_is_reported(files: CharterFiles) -> None:
    problem = files.problem("description: no tools\n")
    assert (problem.line, problem.message) == (1, "missing required key 'tools'")


def test_a_missing_nested_key_is_reported_at_its_parent(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          get_order: {effect: read}
          refund:
            output: trusted
        """)
    assert problem.line == 7
    assert problem.message == "missing required key 'tools.refund.effect'"


def test_an_empty_tools_mapping_needs_at_least_one_tool(files: CharterFiles) -> None:
    problem = files.problem("tools: {}\n")
    assert problem.line == 5
    assert problem.message.startswith("tools: Dictionary should have at least 1 item")
    assert problem.hint == "add at least one entry"


def test_a_bad_charter_name_is_reported(files: CharterFiles) -> None:
    problem = files.problem(
        "tools:\n  get_order: {effect: read}\n",
        header="charter: Orders_Agent\nmodel: {provider: openai, name: m}\nprompt: prompt.md\n",
    )
    assert problem.line == 1
    assert problem.message.startswith("charter: String should match pattern")


def test_a_scripted_model_without_a_factory_is_reported_on_the_model_line(
    files: CharterFiles,
) -> None:
    header = "charter: orders\nmodel: {provider: scripted, name: s}\nprompt: prompt.md\n"
    problem = files.problem("tools:\n  get_order: {effect: read}\n", header=header)
    assert problem.line == 2
    assert problem.message == "model: a scripted model needs factory: 'module:attribute'"


def test_a_rule_needs_exactly_one_of_when_and_any(files: CharterFiles) -> None:
    problems = files.problems("""\
        tools:
          refund: {effect: irreversible}
        policies:
          require_approval_for:
            - {action: refund}
            - {action: refund, when: "amount_usd > 1", any: true}
        """)
    assert lines(problems) == [9, 10]
    for problem in problems:
        assert problem.message.endswith("give exactly one of when: '<condition>' or any: true")


def test_a_sink_of_the_wrong_shape_is_one_problem_not_one_per_union_branch(
    files: CharterFiles,
) -> None:
    problem = files.problem("""\
        tools:
          refund: {effect: irreversible}
        policies:
          untrusted_content:
            sinks: [Refund]
        """)
    assert problem.line == 9
    assert problem.message.startswith("policies.untrusted_content.sinks.0: String should match")
    assert "(or: Input should be a valid dictionary" in problem.message


def test_a_bool_is_not_accepted_as_an_integer_in_a_constraint_list(
    files: CharterFiles,
) -> None:
    problem = files.problem("""\
        tools:
          refund:
            effect: irreversible
            constraints:
              count: {in: [1, true]}
        """)
    assert problem.line == 9
    assert problem.message.startswith("tools.refund.constraints.count.in.1: Input should be")


@pytest.mark.parametrize(
    ("slo", "message"),
    [
        ("{name: task_success_rate, objective: 'at least 95%'}", "must look like '>= 0.95'"),
        ("{name: task_success_rate, objective: '>= 0.9', window: 7days}", "must look like 30m"),
        ("{name: happiness, objective: '>= 1'}", "Input should be 'task_success_rate'"),
    ],
)
def test_bad_slos_are_reported(files: CharterFiles, slo: str, message: str) -> None:
    problem = files.problem(f"tools:\n  get_order: {{effect: read}}\nslos:\n  - {slo}\n")
    assert problem.line == 8
    assert message in problem.message


def test_every_schema_problem_is_reported_sorted_by_line(files: CharterFiles) -> None:
    problems = files.problems("""\
        tools:
          get_order: {effect: read, efect: write}
          refund:
            effect: delete
        budgets:
          max_tool_calls: lots
          max_usd_per_run: -1
        policies:
          deny:
            - {action: refund}
        nonsense: true
        """)
    assert lines(problems) == [6, 8, 10, 11, 14, 15]
    assert "unknown key 'efect'" in problems[0].message
    assert "tools.refund.effect" in problems[1].message
    assert "budgets.max_tool_calls" in problems[2].message
    assert "budgets.max_usd_per_run" in problems[3].message
    assert "give exactly one of when" in problems[4].message
    assert "unknown key 'nonsense'" in problems[5].message
