"""Untrusted-content sinks watch every argument of a tool, not only those Cedar can type.

``send(to, attachments: list[dict] | None, meta: dict[str, str] | None)``: policies can read
``to`` but not the other two (Cedar has no type for them), yet a value copied from untrusted
content can ride in either, so a sink may name them and the ``tainted`` record holds them.
"""

from __future__ import annotations

import pytest

from charter.contract.loader import load_charter
from tests.contract.helpers import HEADER, CharterFiles

SINK_HEADER = HEADER.replace("fixtures_toolkit", "fixtures_sink_toolkit")
TOOLS = """\
tools:
  read_mail: {effect: read, output: untrusted}
  send: {effect: irreversible}
policies:
  untrusted_content:
"""  # a sink given to a test is on line 10


@pytest.mark.parametrize("args", ["[attachments]", "[meta, attachments]", "[to, meta]"])
def test_a_sink_may_name_arguments_policies_cannot_see(files: CharterFiles, args: str) -> None:
    path = files.write(TOOLS + f"    sinks: [{{tool: send, args: {args}}}]\n", header=SINK_HEADER)
    charter = load_charter(path)
    names = args.strip("[]").split(", ")
    forbid = next(
        text for text in charter.cedar_text.split("\n\n") if "untrusted_content.send" in text
    )
    assert forbid.count("context.tainted[") == len(names)
    for name in names:
        assert f'context.tainted["{name}"]' in forbid


def test_a_sink_naming_an_argument_the_tool_does_not_have_is_a_problem_at_its_line(
    files: CharterFiles,
) -> None:
    problem = files.problem(
        TOOLS + "    sinks: [{tool: send, args: [attachments, files]}]\n", header=SINK_HEADER
    )
    assert problem.line == 10
    assert problem.file == str(files.path)
    assert problem.message == "send has no argument(s) files"
    assert problem.hint == "use some of: attachments, meta, to"


def test_the_tainted_record_declares_every_argument_and_args_only_the_typed_ones(
    files: CharterFiles,
) -> None:
    charter = load_charter(files.write(TOOLS + "    sinks: [send]\n", header=SINK_HEADER))
    context = charter.cedar_schema["Charter"]["actions"]["send"]["appliesTo"]["context"]
    attributes = context["attributes"]
    assert set(attributes["tainted"]["attributes"]) == {"to", "attachments", "meta"}
    assert set(attributes["args"]["attributes"]) == {"to"}
    assert set(charter.tool_args["send"]) == {"to"}


def test_raw_cedar_may_read_the_taint_of_an_untyped_argument_but_not_its_value(
    files: CharterFiles,
) -> None:
    body = TOOLS.replace("  untrusted_content:\n", "  cedar: extra.cedar\n")
    scope = '(principal, action == Charter::Action::"send", resource)'
    files.add("extra.cedar", f'@id("t") forbid {scope} when {{ context.tainted.meta }};\n')
    assert files.problems(body, header=SINK_HEADER) == []

    files.add("extra.cedar", f'@id("v") forbid {scope} when {{ context.args.meta.x == "y" }};\n')
    [problem] = files.problems(body, header=SINK_HEADER)
    assert problem.line == 1
    assert "Cedar rule 'v'" in problem.message
