"""Cross references: tools, toolkits, compensation, referenced files and the model factory."""

from __future__ import annotations

from charter.contract.loader import check_charter, load_charter
from charter.contract.tool import tool
from tests.contract.helpers import HEADER, CharterFiles, lines

DECLARED = "declare it under tools: (declared: delete_order, refund, send_email)"
TOOLS = (  # lines 5-9; the policies given to a test start on line 10
    "tools:\n"
    "  refund: {effect: irreversible}\n"
    "  send_email: {effect: irreversible}\n"
    "  delete_order: {effect: irreversible}\n"
    "policies:\n"
)


def test_an_approval_rule_naming_an_undeclared_tool(files: CharterFiles) -> None:
    problem = files.problem(
        TOOLS + "  require_approval_for:\n    - {action: issue_refund, any: true}\n"
    )
    assert problem.line == 11
    assert problem.message == "policy names tool 'issue_refund', which is not declared"
    assert problem.hint == DECLARED


def test_a_deny_rule_naming_an_undeclared_tool(files: CharterFiles) -> None:
    problem = files.problem(TOOLS + "  deny:\n    - any: true\n      action: drop_table\n")
    assert problem.line == 12  # the action: line, not the list item's
    assert problem.message == "policy names tool 'drop_table', which is not declared"


def test_a_condition_on_an_undeclared_tool_reports_only_the_tool(files: CharterFiles) -> None:
    problem = files.problem(TOOLS + '  deny:\n    - {action: ghost, when: "nonsense > 1"}\n')
    assert (problem.line, problem.message) == (
        11,
        "policy names tool 'ghost', which is not declared",
    )


def test_untrusted_content_sinks_naming_undeclared_tools(files: CharterFiles) -> None:
    problems = files.problems(
        TOOLS
        + "  untrusted_content:\n"
        + "    sinks:\n"
        + "      - send_mail\n"
        + "      - {tool: wire_money, args: [to]}\n"
        + "      - send_email\n"
    )
    assert lines(problems) == [12, 13]
    assert problems[0].message == "sink 'send_mail' is not a declared tool"
    assert problems[1].message == "sink 'wire_money' is not a declared tool"
    assert problems[0].hint == DECLARED


def test_a_sink_naming_arguments_the_tool_does_not_have(files: CharterFiles) -> None:
    problem = files.problem(
        TOOLS + "  untrusted_content:\n    sinks: [{tool: refund, args: [account, iban]}]\n"
    )
    assert problem.line == 11
    assert problem.message == "refund has no argument(s) iban"
    assert problem.hint == "use some of: account, amount_usd, count, note"


def test_compensation_by_an_undeclared_tool(files: CharterFiles) -> None:
    problem = files.problem("tools:\n  update_order: {effect: write, compensate: undo_order}\n")
    assert problem.line == 6
    assert problem.message == "compensation tool 'undo_order' is not declared"
    assert problem.hint == "declare it under tools: (declared: update_order)"


def test_compensation_on_a_read_tool(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          revert_order: {effect: write}
          get_order:
            effect: read
            compensate: revert_order
        """)
    assert problem.line == 9
    assert problem.message == "only write tools can be compensated; get_order is read"
    assert "defer irreversible tools instead" in problem.hint


def test_compensation_on_an_irreversible_tool(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          revert_order: {effect: write}
          refund: {effect: irreversible, compensate: revert_order}
        """)
    assert problem.line == 7
    assert problem.message == "only write tools can be compensated; refund is irreversible"


def test_deferring_a_read_tool(files: CharterFiles) -> None:
    problem = files.problem("tools:\n  get_order: {effect: read, defer: until_run_succeeds}\n")
    assert (problem.line, problem.message) == (6, "deferring a read tool has no effect")


def test_a_declared_tool_no_toolkit_provides(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          get_order: {effect: read}
          teleport:
            effect: write
            constraints:
              destination: {max_length: 10}
        """)
    # Only the binding problem: no noise about its constraints or the Cedar schema.
    assert problem.line == 7
    assert problem.message == "tool 'teleport' is declared but no toolkit provides it"
    assert "add the module defining it to toolkit:" in problem.hint


def test_an_unbound_tool_named_by_policies_is_reported_once(files: CharterFiles) -> None:
    files.add(
        "policies/extra.cedar",
        """\
        @id("r1")
        forbid (principal, action == Charter::Action::"teleport", resource)
        when { context.args.destination == "moon" };
        """,
    )
    problem = files.problem("""\
        tools:
          teleport: {effect: write}
        policies:
          require_approval_for:
            - {action: teleport, when: "destination == \\"moon\\""}
          untrusted_content: {sinks: [{tool: teleport, args: [destination]}]}
          cedar: policies/extra.cedar
        """)
    assert (problem.line, problem.message) == (
        6,
        "tool 'teleport' is declared but no toolkit provides it",
    )


def test_without_any_toolkit_the_hint_says_to_list_one(files: CharterFiles) -> None:
    header = HEADER.replace("toolkit: [tests.contract.fixtures_toolkit]\n", "")
    problem = files.problem("tools:\n  get_order: {effect: read}\n", header=header)
    assert problem.line == 5
    assert problem.hint == "list the module that defines it under toolkit:"


def test_tools_passed_in_code_bind_without_a_toolkit(files: CharterFiles) -> None:
    @tool
    def ping(host: str) -> str:
        """Ping a host."""
        return host

    header = HEADER.replace("toolkit: [tests.contract.fixtures_toolkit]\n", "")
    path = files.write("tools:\n  ping: {effect: read}\n", header=header)
    assert check_charter(path) != []
    assert load_charter(path, tools=[ping]).tools["ping"] is ping


def test_a_toolkit_module_that_cannot_be_imported(files: CharterFiles) -> None:
    header = HEADER.replace("fixtures_toolkit", "no_such_toolkit")
    problems = files.problems("tools:\n  get_order: {effect: read}\n", header=header)
    assert lines(problems) == [4, 6]
    assert problems[0].message == (
        "cannot import toolkit 'tests.contract.no_such_toolkit': "
        "No module named 'tests.contract.no_such_toolkit'"
    )
    assert problems[0].hint == "check the module path and that its package is installed"
    assert problems[1].message == "tool 'get_order' is declared but no toolkit provides it"


def test_a_toolkit_that_raises_on_import_is_a_problem_not_a_crash(files: CharterFiles) -> None:
    header = HEADER.replace("fixtures_toolkit", "fixtures_raising_toolkit")
    problems = files.problems("tools:\n  get_order: {effect: read}\n", header=header)
    assert lines(problems) == [4, 6]
    assert problems[0].message == (
        "cannot import toolkit 'tests.contract.fixtures_raising_toolkit': "
        "the payments SDK is not configured"
    )


def test_a_toolkit_without_tool_functions(files: CharterFiles) -> None:
    header = HEADER.replace("fixtures_toolkit", "fixtures_empty_toolkit")
    problems = files.problems("tools:\n  get_order: {effect: read}\n", header=header)
    assert lines(problems) == [4, 6]
    assert problems[0].message == (
        "toolkit 'tests.contract.fixtures_empty_toolkit' defines no @tool functions"
    )
    assert problems[0].hint == "decorate the tool functions with @charter.tool"


def test_a_missing_prompt_file(files: CharterFiles) -> None:
    header = HEADER.replace("prompt.md", "prompts/missing.md")
    problem = files.problem("tools:\n  get_order: {effect: read}\n", header=header)
    assert problem.line == 3
    assert problem.message.startswith("prompt file 'prompts/missing.md' not found (looked at ")
    assert problem.hint == "paths are relative to the charter file"


def test_a_prompt_that_is_not_utf8(files: CharterFiles) -> None:
    (files.root / "prompt.md").write_bytes(b"caf\xe9\n")
    problem = files.problem("tools:\n  get_order: {effect: read}\n")
    assert (problem.line, problem.message) == (3, "prompt file 'prompt.md' is not UTF-8")


def test_a_prompt_path_that_is_a_directory(files: CharterFiles) -> None:
    (files.root / "prompts").mkdir()
    header = HEADER.replace("prompt.md", "prompts")
    problem = files.problem("tools:\n  get_order: {effect: read}\n", header=header)
    assert problem.line == 3
    assert problem.message.startswith("cannot read prompt file 'prompts'")


def test_a_missing_cedar_file(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          get_order: {effect: read}
        policies:
          cedar: policies/missing.cedar
        """)
    assert problem.line == 8
    assert problem.message.startswith("Cedar policy file 'policies/missing.cedar' not found")


def test_missing_eval_suites_are_each_reported(files: CharterFiles) -> None:
    files.add("evals/golden.yaml", "tasks: []\n")
    problems = files.problems("""\
        tools:
          get_order: {effect: read}
        evals:
          golden: evals/golden.yaml
          redteam: evals/redteam.yaml
        """)
    assert lines(problems) == [9]
    # Found the way the prompt is: where it was looked for, relative to the charter.
    assert problems[0].message == (
        f"eval suite 'evals/redteam.yaml' not found (looked at {files.root / 'evals/redteam.yaml'})"
    )
    assert problems[0].hint == "paths are relative to the charter file"


def test_a_model_factory_whose_module_cannot_be_imported(files: CharterFiles) -> None:
    header = HEADER.replace(
        "{provider: openai, name: gpt-4o-mini}",
        "\n  provider: scripted\n  name: s\n  factory: 'no_such_models.scripted:Model'",
    )  # the factory is on line 5
    problem = files.problem("tools:\n  get_order: {effect: read}\n", header=header)
    assert problem.line == 5
    assert problem.message == (
        "cannot import model factory module: No module named 'no_such_models'"
    )


def test_a_model_factory_naming_a_missing_attribute(files: CharterFiles) -> None:
    header = HEADER.replace(
        "{provider: openai, name: gpt-4o-mini}",
        "{provider: scripted, name: s, factory: 'tests.contract.fixtures_toolkit:Model'}",
    )
    problem = files.problem("tools:\n  get_order: {effect: read}\n", header=header)
    assert problem.line == 2
    assert problem.message == "module 'tests.contract.fixtures_toolkit' has no attribute 'Model'"


def test_every_semantic_problem_is_reported_sorted_by_file_and_line(
    files: CharterFiles,
) -> None:
    files.add(
        "policies/extra.cedar",
        """\
        @id("r1")
        @verdict("maybe")
        forbid (principal, action == Charter::Action::"refund", resource);
        """,
    )
    header = HEADER.replace("prompt.md", "missing.md")
    problems = files.problems(
        """\
        tools:
          refund:
            effect: irreversible
            compensate: ghost
            constraints:
              iban: {max_length: 34}
        policies:
          require_approval_for:
            - {action: refund, when: "amount > 200"}
          deny:
            - {action: wipe, any: true}
          cedar: policies/extra.cedar
        """,
        header=header,
    )
    charter, cedar = str(files.path), str(files.root / "policies" / "extra.cedar")
    assert [(p.file, p.line) for p in problems] == [
        (charter, 3),
        (charter, 8),
        (charter, 8),
        (charter, 10),
        (charter, 13),
        (charter, 15),
        (cedar, 1),
    ]
    messages = [p.message for p in problems]
    assert "prompt file 'missing.md' not found" in messages[0]
    assert "compensation tool 'ghost' is not declared" in messages[1]
    assert "only write tools can be compensated; refund is irreversible" in messages[2]
    assert "constraint on 'iban'" in messages[3]
    assert "'amount' is not an argument" in messages[4]
    assert "policy names tool 'wipe'" in messages[5]
    assert "@verdict('maybe') is not known" in messages[6]
