"""``when: tainted.<argument>`` names any argument of the tool, also one whose value Cedar
cannot type; a name the tool does not have stays a problem at its line (issue 11, sibling of
defect 1: ``context.tainted`` declares every argument, the condition language accepted only
those Cedar can type)."""

from __future__ import annotations

import pytest

from charter.contract.conditions import CedarType, ConditionError, compile_condition
from charter.contract.loader import load_charter
from tests.contract.helpers import CharterFiles
from tests.contract.test_sinks import SINK_HEADER

TYPED: dict[str, tuple[CedarType, bool]] = {"to": ("String", True)}
EVERY = ("to", "attachments", "meta")
RULES = """\
tools:
  read_mail: {effect: read, output: untrusted}
  send: {effect: irreversible}
policies:
  deny:
    - action: send
      when: {condition}
"""  # the when: line is line 11


def test_tainted_names_any_argument_of_the_tool() -> None:
    assert compile_condition("tainted.attachments", TYPED, EVERY) == "context.tainted.attachments"
    assert compile_condition("tainted.meta and tainted.to", TYPED, EVERY) == (
        "(context.tainted.meta && context.tainted.to)"
    )


def test_the_value_of_an_untyped_argument_stays_out_of_reach() -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition("attachments == 'x'", TYPED, EVERY)
    assert caught.value.message == (
        "'attachments' is not an argument of this tool that policies can see"
    )


def test_without_every_argument_named_tainted_reads_the_typed_ones() -> None:
    assert compile_condition("tainted.to", TYPED) == "context.tainted.to"
    with pytest.raises(ConditionError, match="'meta' is not an argument of this tool"):
        compile_condition("tainted.meta", TYPED)


@pytest.mark.parametrize("condition", ["tainted.attachments", "tainted.meta or tainted_any"])
def test_a_charter_may_deny_on_the_taint_of_an_untyped_argument(
    files: CharterFiles, condition: str
) -> None:
    charter = load_charter(
        files.write(RULES.replace("{condition}", f'"{condition}"'), header=SINK_HEADER)
    )
    assert charter.rules["deny[0]"].effect == "deny"
    assert "context.tainted." in charter.cedar_text


def test_an_unknown_name_after_tainted_is_a_problem_on_the_when_line(
    files: CharterFiles,
) -> None:
    problem = files.problem(RULES.replace("{condition}", '"tainted.files"'), header=SINK_HEADER)
    assert problem.line == 11
    assert problem.message == "in condition: 'files' is not an argument of this tool"
    assert problem.hint == "tainted.<argument> names one of: attachments, meta, to"
