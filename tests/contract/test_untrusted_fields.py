"""``output: {untrusted_fields: [...]}``: the field-level form of a tool's output, and its problems.

A bad declaration is a located problem with a hint, like every other schema mistake; the two
whole-output forms (``trusted``, ``untrusted``) load as before.
"""

from __future__ import annotations

import pytest

from charter.contract.loader import Charter
from charter.contract.schema import CharterSpec, ToolDecl, UntrustedFields
from tests.contract.helpers import CharterFiles


def load(files: CharterFiles, body: str) -> Charter:
    return Charter.load(files.write(body))


def test_the_field_level_form_loads_in_flow_and_block_style(files: CharterFiles) -> None:
    charter = load(
        files,
        """\
        tools:
          get_order: {effect: read, output: {untrusted_fields: [notes, customerComment]}}
          send_email:
            effect: irreversible
            output:
              untrusted_fields:
                - subject
                - free-text
        """,
    )
    get_order, send_email = charter.spec.tools["get_order"], charter.spec.tools["send_email"]
    assert get_order.output == UntrustedFields(untrusted_fields=["notes", "customerComment"])
    assert get_order.untrusted_fields == frozenset({"notes", "customercomment"})  # casefolded
    assert get_order.output_untrusted is True
    assert send_email.untrusted_fields == frozenset({"subject", "free-text"})
    # The dump (hashed into content_sha256) keeps the form as written.
    assert charter.spec.dump()["tools"]["get_order"]["output"] == {
        "untrusted_fields": ["notes", "customerComment"]
    }
    assert "get_order" in charter.cedar_text  # compiles like any declaration


def test_the_whole_output_forms_are_unchanged(files: CharterFiles) -> None:
    charter = load(
        files,
        """\
        tools:
          get_order: {effect: read}
          update_order: {effect: write, output: trusted}
          send_email: {effect: irreversible, output: untrusted}
        """,
    )
    tools = charter.spec.tools
    assert [tools[t].output for t in ("get_order", "update_order", "send_email")] == [
        "trusted",
        "trusted",
        "untrusted",
    ]
    assert [tools[t].untrusted_fields for t in tools] == [None, None, None]
    assert [tools[t].output_untrusted for t in ("get_order", "update_order", "send_email")] == [
        False,
        False,
        True,
    ]


def test_the_field_form_changes_the_content_hash(files: CharterFiles) -> None:
    whole = load(files, "tools:\n  get_order: {effect: read, output: untrusted}\n")
    split = load(files, "tools:\n  get_order: {effect: read, output: {untrusted_fields: [x]}}\n")
    other = load(files, "tools:\n  get_order: {effect: read, output: {untrusted_fields: [y]}}\n")
    assert len({whole.content_sha256, split.content_sha256, other.content_sha256}) == 3


@pytest.mark.parametrize(
    ("output", "message", "hint"),
    [
        (
            "{untrusted_fields: []}",
            "tools.get_order.output.untrusted_fields: List should have at least 1 item",
            "add at least one entry",
        ),
        (
            "{untrusted_fields: [notes, body, notes]}",
            "tools.get_order.output.untrusted_fields: field 'notes' is listed twice",
            "see docs/charter-file.md",
        ),
        (
            "{untrusted_fields: [notes, Notes]}",
            "tools.get_order.output.untrusted_fields: field 'Notes' is listed twice "
            "(keys match ignoring case)",
            "see docs/charter-file.md",
        ),
        (
            "{untrusted_fields: notes}",
            "tools.get_order.output.untrusted_fields: Input should be a valid list",
            "write a list (- item)",
        ),
        (
            "{untrusted_fields: [notes, 7]}",
            "tools.get_order.output.untrusted_fields.1: Input should be a valid string",
            "write text",
        ),
        (
            "{untrusted_fields: [customer.notes]}",
            "tools.get_order.output.untrusted_fields.0: String should match pattern",
            "use the allowed characters shown",
        ),
        (
            "{untrusted_fields: ['']}",
            "tools.get_order.output.untrusted_fields.0: String should match pattern",
            "use the allowed characters shown",
        ),
        (
            "maybe",
            "tools.get_order.output: Input should be 'trusted' or 'untrusted'",
            "use one of the listed values",
        ),
        (
            "5",
            "tools.get_order.output: write trusted, untrusted or {untrusted_fields: [field, ...]}",
            "see docs/charter-file.md",
        ),
        (
            "[notes]",
            "tools.get_order.output: write trusted, untrusted or {untrusted_fields: [field, ...]}",
            "see docs/charter-file.md",
        ),
    ],
    ids=[
        "empty",
        "duplicate",
        "duplicate-ignoring-case",
        "not-a-list",
        "not-text",
        "a-path-not-a-key",
        "empty-name",
        "unknown-word",
        "a-number",
        "a-bare-list",
    ],
)
def test_a_bad_field_level_declaration_is_one_located_problem_with_a_hint(
    files: CharterFiles, output: str, message: str, hint: str
) -> None:
    problem = files.problem(f"""\
        tools:
          update_order: {{effect: write}}
          get_order: {{effect: read, output: {output}}}
        """)
    assert problem.line == 7
    assert str(problem.file).endswith("charter.yaml")
    assert problem.message.startswith(message), problem.message
    assert problem.hint == hint


def test_a_misspelt_key_in_the_field_form_names_the_allowed_key(files: CharterFiles) -> None:
    problems = files.problems("""\
        tools:
          get_order:
            effect: read
            output:
              untrusted_field: [notes]
        """)
    unknown = [p for p in problems if p.message.startswith("unknown key")]
    assert [(p.line, p.message) for p in unknown] == [
        (9, "unknown key 'untrusted_field' in tools.get_order.output")
    ]
    assert unknown[0].hint == "remove it or check the spelling (allowed: untrusted_fields)"
    # Nothing about the word forms: a mapping is only ever checked as the field form.
    assert not [p for p in problems if "'trusted' or 'untrusted'" in p.message]


def test_a_problem_in_a_block_list_points_into_the_list(files: CharterFiles) -> None:
    problem = files.problem("""\
        tools:
          get_order:
            effect: read
            output:
              untrusted_fields:
                - notes
                - bad.name
        """)
    assert problem.line == 11
    assert problem.message.startswith("tools.get_order.output.untrusted_fields.1:")


def test_a_field_level_output_built_in_python_is_validated_too() -> None:
    decl = ToolDecl.model_validate({"effect": "read", "output": {"untrusted_fields": ["body"]}})
    assert decl.untrusted_fields == frozenset({"body"})
    again = ToolDecl(effect="read", output=UntrustedFields(untrusted_fields=["body"]))
    assert again == decl
    with pytest.raises(ValueError, match="listed twice"):
        UntrustedFields(untrusted_fields=["body", "BODY"])


def test_the_spec_round_trips_through_its_dump(files: CharterFiles) -> None:
    # Derived charters (an edited ``spec.dump()``) are validated again from the dump.
    charter = load(
        files,
        """\
        tools:
          get_order: {effect: read, output: {untrusted_fields: [notes]}}
          send_email: {effect: irreversible, output: untrusted}
        """,
    )
    assert CharterSpec.model_validate(charter.spec.dump()) == charter.spec
