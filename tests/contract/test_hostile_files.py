"""Hostile charter files are refused cheaply, before anything walks or executes them.

None of these tests measures time. Each document is built so that naive handling (expanding
aliases, recursing into every bracket, parsing half a million tokens) would take minutes or
exhaust memory, so a regression shows up as a test run that does not finish.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from charter.contract.loader import check_charter, load_charter
from charter.contract.yaml_source import MAX_FILE_BYTES
from tests.contract.helpers import HEADER, CharterFiles


def test_billion_laughs_alias_expansion_is_refused(files: CharterFiles) -> None:
    # Ten levels of nine aliases: 9**9 (about 387 million) strings if expanded.
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for index in range(1, 10):
        name, previous = chr(ord("a") + index), chr(ord("a") + index - 1)
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    problem = files.problem("\n".join(levels) + "\n", header="")
    assert problem.message == "document expands to more than 100000 values"
    assert "anchors/aliases" in problem.hint


def test_a_few_aliases_inside_the_limits_are_fine(files: CharterFiles) -> None:
    charter = load_charter(
        files.write("""\
            tools:
              get_order: &read {effect: read}
              revert_order: {effect: write}
              update_order: *read
            """)
    )
    assert charter.spec.tools["update_order"].effect == "read"


@pytest.mark.parametrize("depth", [41, 5_000, 200_000])
def test_deeply_nested_flow_brackets_are_refused(files: CharterFiles, depth: int) -> None:
    problem = files.problem("tools: " + "[" * depth + "]" * depth + "\n")
    assert problem.line == 5
    assert problem.message == "document nests deeper than 40 levels"
    assert problem.hint == "flatten the structure"


def test_deeply_nested_block_mappings_are_refused(files: CharterFiles) -> None:
    body = "".join("  " * level + f"k{level}:\n" for level in range(60)) + "  " * 60 + "v\n"
    problem = files.problem(body, header="")
    assert problem.message == "document nests deeper than 40 levels"


def test_a_deep_block_sequence_on_one_line_is_refused(files: CharterFiles) -> None:
    # Block nesting needs no brackets: "- - - x" is a list in a list in a list.
    problem = files.problem("- " * 3_000 + "x\n", header="")
    assert problem.line == 1
    assert problem.message == "YAML nests too deeply"
    assert problem.hint == "keep nesting under 40"


def test_a_file_over_one_megabyte_is_refused_unparsed(files: CharterFiles) -> None:
    files.write("description: '" + "x" * MAX_FILE_BYTES + "'\n")
    size = files.path.stat().st_size
    [problem] = check_charter(files.path)
    assert problem.line == 1
    assert problem.message == f"file is {size} bytes, more than the {MAX_FILE_BYTES} allowed"
    assert "move data elsewhere" in problem.hint


@pytest.mark.parametrize(
    "body",
    [
        "x: [" + ",".join(["1"] * 400_000) + "]\n",  # 800 kB of flow items
        "x:\n" + "- 1\n" * 240_000,  # 960 kB of block items
        "x: [" + ", ".join(["[" * 38 + "]" * 38] * 12_000) + "]\n",  # nesting just allowed
    ],
    ids=["flow-items", "block-items", "many-nested-lists"],
)
def test_a_file_under_the_size_limit_but_dense_with_values_is_refused(
    files: CharterFiles, body: str
) -> None:
    # Under the byte limit, but parsing it would take a minute: bounded by tokens instead.
    problem = files.problem(body, header="")
    assert problem.message == "document has more than 50000 YAML tokens"


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ('!!python/object/apply:os.system ["touch {marker}"]', "!!python/object/apply:os.system"),
        ('!!python/object/new:os.system ["touch {marker}"]', "!!python/object/new:os.system"),
        ("!!python/name:os.system", "!!python/name:os.system"),
        ("!<tag:yaml.org,2002:python/object/apply:os.system> ['touch {marker}']", None),
        ("!custom {effect: read}", "!custom"),
    ],
)
def test_yaml_tags_never_execute_and_are_reported(
    files: CharterFiles, tmp_path: Path, value: str, tag: str | None
) -> None:
    marker = tmp_path / "pwned"
    problem = files.problem(f"tools:\n  get_order: {value.replace('{marker}', str(marker))}\n")
    assert not marker.exists()
    assert problem.line == 6  # the get_order line
    assert problem.message.startswith("YAML tag ")
    assert problem.message.endswith("is not allowed in a charter")
    if tag is not None:
        assert repr(tag) in problem.message


def test_a_python_tag_on_the_whole_document_never_executes(
    files: CharterFiles, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    problem = files.problem(f'!!python/object/apply:os.system ["touch {marker}"]\n', header="")
    assert not marker.exists()
    assert (problem.line, problem.message) == (
        1,
        "YAML tag '!!python/object/apply:os.system' is not allowed in a charter",
    )


def test_a_tag_alias_declared_with_a_directive_is_refused(files: CharterFiles) -> None:
    problem = files.problem(
        "%TAG !py! tag:yaml.org,2002:python/\n---\ndescription: !py!name:os.system\n",
        header="",
    )
    assert problem.line == 3
    assert "'!py!name:os.system' is not allowed" in problem.message


def test_even_a_standard_tag_is_refused_with_a_hint_to_quote(files: CharterFiles) -> None:
    problem = files.problem("description: !!str 42\ntools:\n  get_order: {effect: read}\n")
    assert problem.line == 5
    assert problem.message == "YAML tag '!!str' is not allowed in a charter"
    assert "quote the value" in problem.hint


def test_a_huge_but_legal_string_value_loads(files: CharterFiles) -> None:
    charter = load_charter(
        files.write("description: '" + "x" * 900_000 + "'\ntools:\n  get_order: {effect: read}\n")
    )
    assert len(charter.spec.description) == 900_000


def test_a_huge_key_is_a_yaml_problem_on_its_line(files: CharterFiles) -> None:
    problem = files.problem("tools:\n  get_order: {effect: read}\n" + "k" * 200_000 + ": 1\n")
    assert problem.line == 7
    assert problem.message.startswith("invalid YAML")
    assert len(problem.message) < 200


@pytest.mark.parametrize(
    "body",
    [
        # a duplicate key whose values YAML quotes in its error
        "tools:\n  get_order: {{effect: read}}\ndescription: {big}\ndescription: {big}\n",
        # an invalid regular expression quoted by the schema
        "tools:\n  refund:\n    effect: write\n    constraints:\n"
        "      account: {{pattern: '({big}'}}\n",
    ],
    ids=["duplicate-key", "bad-pattern"],
)
def test_problem_messages_quoting_huge_values_are_clipped(files: CharterFiles, body: str) -> None:
    problem = files.problem(body.format(big="x" * 200_000))
    assert len(problem.message) <= 500
    assert "characters)" in problem.message


def test_a_huge_prompt_path_is_clipped_in_the_problem(files: CharterFiles) -> None:
    header = HEADER.replace("prompt.md", "p" * 100_000 + ".md")
    problem = files.problem("tools:\n  get_order: {effect: read}\n", header=header)
    assert problem.line == 3
    assert problem.message.startswith("cannot read prompt file 'ppp")
    assert len(problem.message) <= 500


# --- issue 11, defect 3: each of these crashed, hung or exhausted memory --------------------

CEDAR_CHARTER = "tools:\n  get_order: {effect: read}\npolicies:\n  cedar: x.cedar\n"
GET_ORDER = 'Charter::Action::"get_order"'


def _forbid(condition: str) -> str:
    return f"forbid(principal, action == {GET_ORDER}, resource) when {{ {condition} }};\n"


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("(" * 1_000 + "true" + ")" * 1_000, "Cedar expression nests deeper than 32 levels"),
        ("[" * 1_000 + "]" * 1_000 + " == []", "Cedar expression nests deeper than 32 levels"),
        (
            "{a: " * 1_000 + "1" + "}" * 1_000 + " == {}",
            "Cedar expression nests deeper than 32 levels",
        ),
        (
            "if true then " * 5_000 + "true" + " else true" * 5_000,
            "Cedar expression nests deeper than 32 levels",
        ),
        (" && ".join(["true"] * 20_000), "a Cedar policy has more than 1000 operators"),
        (" + ".join(["1"] * 20_000) + " == 1", "a Cedar policy has more than 1000 operators"),
    ],
    ids=["parentheses", "sets", "records", "if-then-else", "and-chain", "plus-chain"],
)
def test_cedar_nested_past_what_cedarpy_survives_is_a_problem_not_a_segfault(
    files: CharterFiles, condition: str, message: str
) -> None:
    # Each of these overflows cedarpy's native stack (SIGSEGV, exit 139) if it reaches it.
    files.add("x.cedar", '// a rule\n@id("deep")\n' + _forbid(condition))
    problem = files.problem(CEDAR_CHARTER)
    assert (problem.file, problem.line) == (str(files.root / "x.cedar"), 3)
    assert problem.message == message


def test_cedar_deeper_than_its_json_form_allows_is_named_by_rule_and_line(
    files: CharterFiles,
) -> None:
    # 70 chained && parse, but Cedar's JSON form (which the policy engine needs to split the
    # policies per action) refuses them: the charter must not load and then fail to serve.
    files.add("x.cedar", '@id("long-chain")\n' + _forbid(" && ".join(["true"] * 70)))
    problem = files.problem(CEDAR_CHARTER)
    assert (problem.file, problem.line) == (str(files.root / "x.cedar"), 1)
    assert problem.message == (
        "rule 'long-chain': Cedar expression nests too deeply (Cedar's JSON form allows about "
        "60 levels)"
    )
    assert "split the condition" in problem.hint


def test_cedar_as_deep_as_a_person_writes_loads(files: CharterFiles) -> None:
    files.add(
        "x.cedar",
        '@id("nested")\n' + _forbid("(" * 20 + 'context.args.order_id == "O-1"' + ")" * 20),
    )
    charter = load_charter(files.write(CEDAR_CHARTER))
    assert "nested" in charter.rules


def test_a_when_condition_nested_200_deep_is_a_problem_not_a_recursion_error(
    files: CharterFiles,
) -> None:
    deep = "(" * 200 + "amount_usd > 1" + ")" * 200
    problem = files.problem(
        "tools:\n  refund: {effect: write}\npolicies:\n  deny:\n"
        f"    - action: refund\n      when: '{deep}'\n"
    )
    assert problem.line == 10
    assert problem.message == (
        "in condition: the condition nests deeper than 16 levels of parentheses, brackets and not"
    )


def test_a_long_or_chain_in_a_when_condition_is_refused_at_its_rule(files: CharterFiles) -> None:
    # It parses, but compiles to Cedar nested once per `or`: deeper than Cedar is handed.
    chain = " or ".join(f"count == {n}" for n in range(80))
    problem = files.problem(
        "tools:\n  refund: {effect: write}\npolicies:\n  deny:\n"
        f"    - action: refund\n      when: '{chain}'\n"
    )
    assert problem.line == 9  # the rule
    assert problem.message == (
        "rule 'deny[0]': the rule compiles to Cedar that Charter will not evaluate: Cedar "
        "expression nests deeper than 32 levels"
    )
    assert problem.hint == "flatten the condition, or split it into several rules"


def test_an_or_chain_of_twenty_loads(files: CharterFiles) -> None:
    chain = " or ".join(f"count == {n}" for n in range(20))
    charter = load_charter(
        files.write(
            "tools:\n  refund: {effect: write}\npolicies:\n  deny:\n"
            f"    - action: refund\n      when: '{chain}'\n"
        )
    )
    assert "deny[0]" in charter.rules


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ('description: "bad \\uD800 text"\n', 6),
        ('description: "\\uD83D\\uDE00"\n', 6),  # JSON's surrogate pair is not YAML's
        ('tools:\n  get_order: {effect: read}\n  "get_\\uDC00": {effect: read}\n', 6),
        ('toolkit: [tests.contract.fixtures_toolkit, "\\uDFFF"]\n', 6),
    ],
    ids=["description", "pair", "key", "list-item"],
)
def test_a_lone_surrogate_anywhere_is_a_problem_at_its_line(
    files: CharterFiles, body: str, line: int
) -> None:
    header = HEADER.replace("toolkit: [tests.contract.fixtures_toolkit]\n", "")
    if "tools:" not in body:
        header += "tools:\n  get_order: {effect: read}\n"
    problem = files.problem(body, header=header)
    assert problem.line == line
    assert problem.message.startswith("text holds a lone surrogate")
    assert "\\U0001F600" in problem.hint


def test_a_tool_whose_schema_cannot_be_hashed_is_a_problem_at_its_line(
    files: CharterFiles,
) -> None:
    header = HEADER.replace("fixtures_toolkit", "fixtures_odd_toolkit")
    problem = files.problem("tools:\n  surrogate_doc: {effect: read}\n", header=header)
    assert problem.line == 6
    assert problem.message.startswith("tool 'surrogate_doc' cannot be described exactly: ")


@pytest.mark.parametrize("digits", [4_301, 50_000])
def test_an_integer_too_long_for_python_is_a_problem(files: CharterFiles, digits: int) -> None:
    problem = files.problem(f"budgets:\n  max_tool_calls: {'1' * digits}\n")
    assert problem.line == 6
    assert problem.message == f"a number with {digits} digits is too long"


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (
            "this",
            "toolkit 'this' printed to standard output when imported (857 characters, "
            "starting 'The Zen of Python, by Tim Peters')",
        ),
        (
            # unittest.__main__ does this too (tests/cli/test_validate.py runs it in a
            # process of its own: here it would read pytest's arguments as tests to run).
            "tests.contract.fixtures_exiting_toolkit",
            "cannot import toolkit 'tests.contract.fixtures_exiting_toolkit': the module tried "
            "to exit the process (SystemExit(3))",
        ),
        (
            "tests.contract.fixtures_input_toolkit",
            "cannot import toolkit "
            "'tests.contract.fixtures_input_toolkit': EOF when reading a line",
        ),
    ],
    ids=["prints", "exits", "reads-stdin"],
)
def test_a_toolkit_cannot_exit_print_or_wait_for_input(
    files: CharterFiles,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    message: str,
) -> None:
    monkeypatch.delitem(sys.modules, module, raising=False)  # so that importing runs it
    header = HEADER.replace("tests.contract.fixtures_toolkit", f"'{module}'")
    problems = files.problems("tools:\n  get_order: {effect: read}\n", header=header)
    assert [p.line for p in problems if p.message == message] == [4]
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing the module printed reaches Charter's stdout


def test_values_cedar_cannot_hold_are_problems_at_their_rules(files: CharterFiles) -> None:
    problems = files.problems("""\
        tools:
          refund:
            effect: write
            constraints:
              count: {in: [99999999999999999999]}
              account: {max_length: 99999999999999999999}
              amount_usd: {max: 1e30}
        """)
    assert [(p.line, p.message) for p in problems] == [
        (
            9,
            "rule 'constraints.refund.count.in': Cedar syntax error: integer parse error: "
            "number too large to fit in target type",
        ),
        (
            10,
            "rule 'constraints.refund.account.max_length': Cedar syntax error: integer parse "
            "error: number too large to fit in target type",
        ),
        (
            11,
            "1E+30 is outside the amounts Cedar can compare (at most 922337203685477.5807 "
            "either side of zero)",
        ),
    ]


def test_a_cedar_file_with_too_many_policies_is_refused_unchecked(files: CharterFiles) -> None:
    # Each raw policy is parsed and type-checked on its own: 9,000 of them took 10 s.
    files.add("x.cedar", _forbid('context.args.order_id == "O-1"') * 9_000)
    problem = files.problem(CEDAR_CHARTER)
    assert (problem.file, problem.line) == (str(files.root / "x.cedar"), 501)
    assert problem.message == "the Cedar file holds more than 500 policies"


def test_a_cedar_file_with_500_policies_loads(files: CharterFiles) -> None:
    files.add(
        "x.cedar",
        "".join(
            f'@id("r{n}")\n' + _forbid(f'context.args.order_id == "O-{n}"') for n in range(500)
        ),
    )
    assert len(load_charter(files.write(CEDAR_CHARTER)).rules) == 501  # and tools.get_order


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("tools:\n  get_order: {effect: read}\n? a: {b: c}\n: 1\n", 7),  # found by the fuzzer
        ("tools:\n  get_order: {effect: read}\n{ {a: {b: c}}: d }: 1\n", 7),
        ("tools:\n  get_order: {effect: read}\n[a, {b: c}]: 1\n", 7),
        ("tools:\n  get_order: {effect: read}\nx: { [a, [b, {c: d}]]: d }\n", 7),
        ("tools:\n  get_order: {effect: read}\nx: &m {a: {b: c}}\ny: {*m : 1}\n", 8),
    ],
    ids=["explicit-key", "flow-mapping-key", "flow-list-key", "nested-list-key", "alias-key"],
)
def test_a_mapping_or_list_as_a_key_is_a_problem_not_a_type_error(
    files: CharterFiles, body: str, line: int
) -> None:
    # ruamel raised TypeError (unhashable CommentedMap) building these.
    problem = files.problem(body)
    assert problem.line == line
    assert problem.message == "a key must be text, not a mapping, a list or an alias"
