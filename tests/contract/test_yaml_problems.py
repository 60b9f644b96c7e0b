"""Files that are not a well-formed YAML mapping: each is one problem with the right line."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.contract.loader import check_charter, load_charter
from charter.core.errors import CharterInvalid
from tests.contract.helpers import HEADER, CharterFiles


def test_an_unclosed_flow_bracket_is_reported_where_noticed_and_where_opened(
    files: CharterFiles,
) -> None:
    problem = files.problem("""\
        tools:
          get_order: {effect: read
          refund: {effect: write}
        """)
    assert problem.line == 7
    assert problem.message.startswith("invalid YAML: expected ',' or '}'")
    assert "flow mapping that starts on line 6" in problem.message
    assert problem.hint == "fix the syntax at this line"


def test_bad_indentation_is_reported_on_the_misindented_line(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          get_order:
            effect: read
         refund: {effect: write}
        """)
    assert problem.line == 8
    assert problem.message.startswith("invalid YAML: expected <block end>")


def test_an_unterminated_quoted_string_is_a_yaml_problem(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          get_order: {effect: read}
        description: "never closed
        """)
    assert problem.message.startswith("invalid YAML:")
    assert problem.line in (7, 8)  # the scanner notices at the end of the stream


def test_a_duplicate_tool_key_is_an_error_not_a_silent_override(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          get_order: {effect: read}
          get_order: {effect: write}
        """)
    assert problem.line == 7
    assert 'duplicate key "get_order"' in problem.message
    assert problem.hint == "keep only one of the two"


def test_a_duplicate_top_level_key_is_reported_on_its_second_occurrence(
    files: CharterFiles,
) -> None:
    problem = files.problem("""\
        tools:
          get_order: {effect: read}
        prompt: other.md
        """)
    assert problem.line == 7
    assert 'duplicate key "prompt"' in problem.message


def test_two_yaml_documents_in_one_file_are_refused(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          get_order: {effect: read}
        ---
        charter: other
        """)
    assert problem.line == 7
    assert "invalid YAML" in problem.message
    assert "single document" in problem.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_an_empty_file_is_reported_as_empty(files: CharterFiles, text: str) -> None:
    problem = files.problem(text, header="")
    assert (problem.line, problem.message) == (1, "the file is empty")
    assert "charter: <name>" in problem.hint


@pytest.mark.parametrize(
    "text", ["- charter: orders\n- tools: {}\n", "just some text\n", "42\n", "[a, b]\n"]
)
def test_a_document_that_is_not_a_mapping_is_refused(files: CharterFiles, text: str) -> None:
    problem = files.problem(text, header="")
    assert (problem.line, problem.message) == (1, "a charter must be a YAML mapping")


def test_bytes_that_are_not_utf8_are_reported_on_their_line(files: CharterFiles) -> None:
    files.path.write_bytes(
        b"charter: orders\nmodel: {provider: openai, name: m}\nprompt: \xff.md\n"
    )
    [problem] = check_charter(files.path)
    assert problem.line == 3
    assert problem.message == "byte 0xff is not valid UTF-8"
    assert problem.hint == "save the file as UTF-8"


def test_a_byte_order_mark_is_not_a_problem(files: CharterFiles) -> None:
    text = HEADER + "tools:\n  get_order: {effect: read}\n"
    files.path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_charter(files.path).name == "orders"


def test_a_missing_file_is_one_problem_on_line_1(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    [problem] = check_charter(missing)
    assert (problem.file, problem.line, problem.message) == (str(missing), 1, "file not found")


def test_a_directory_is_one_problem_not_a_crash(tmp_path: Path) -> None:
    [problem] = check_charter(tmp_path)
    assert problem.line == 1
    assert problem.message.startswith("cannot read file")


def test_charter_invalid_lists_every_problem_in_its_message(files: CharterFiles) -> None:
    files.write("tools:\n  get_order: {effect: read}\ntoolz: 1\nbudgetz: 2\n")
    with pytest.raises(CharterInvalid) as caught:
        load_charter(files.path)
    assert caught.value.code == "charter_invalid"
    text = str(caught.value)
    assert text.startswith("2 problems found:\n")
    assert f"{files.path}:7: unknown key 'toolz'" in text
    assert f"{files.path}:8: unknown key 'budgetz'" in text


@pytest.mark.parametrize(
    ("byte", "code"), [(b"\x00", "0000"), (b"\x1b", "001B"), (b"\x7f", "007F")]
)
def test_a_character_yaml_forbids_is_reported_on_its_line(
    files: CharterFiles, byte: bytes, code: str
) -> None:
    files.path.write_bytes(
        b"charter: orders\nmodel: {provider: openai, name: m}\ndescription: a" + byte + b"b\n"
    )
    [problem] = check_charter(files.path)
    assert problem.line == 3
    assert problem.message == f"invalid YAML: character U+{code} is not allowed in a YAML file"
