"""Hostile charter files are refused cheaply, before anything walks or executes them.

None of these tests measures time. Each document is built so that naive handling (expanding
aliases, recursing into every bracket, parsing half a million tokens) would take minutes or
exhaust memory, so a regression shows up as a test run that does not finish.
"""

from __future__ import annotations

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
