"""Rules on arguments named like Cedar's reserved words decide, and ``when: tainted.<arg>``
reads the taint of any argument (issue 11, siblings of defect 1).

A constraint, a ``when:`` condition or a sink on an argument named ``then``, ``like`` or
``has`` used to fail the load ("compiled policy is invalid"); ``tainted.attachments`` in a
condition was refused because Cedar has no type for the value of ``attachments``, although
the ``tainted`` record declares every argument. Through the real pipeline: each rule fires on
the call it is about, and only on it.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from charter.contract.tool import tool
from charter.execution.run import Run
from charter.identity.principal import Principal
from charter.runtime import Runtime
from tests.execution.harness import call, write_charter
from tests.policy.test_taint_sinks import EVIL, read_mail


@tool
def route(
    then: str,
    like: int = 1,
    has: str | None = None,
    größe: Decimal | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> str:
    """Route a message.

    Args:
        then: where to.
        like: how many.
        has: a note.
        größe: the size.
        attachments: files, as records.
    """
    return "routed"


CHARTER = """\
tools:
  read_mail: {effect: read, output: untrusted}
  route:
    effect: write
    constraints:
      then: {in: [desk, queue]}
      like: {max: 10}
      has: {max_length: 3}
      größe: {max: 100}
policies:
  deny:
    - {action: route, when: "then == 'queue' and args.like > 5", reason: "queue takes 5"}
    - {action: route, when: "größe > 50 and args.has == 'big'", reason: "big and large"}
    - {action: route, when: "tainted.attachments", reason: "attachments copied from mail"}
"""


def start(runtime: Runtime, tmp_path: Path) -> Run:
    charter = write_charter(tmp_path, CHARTER, tools=[read_mail, route])
    run = runtime.start_run(charter, Principal("alice", "acme"))
    assert call(run, "read_mail", {"folder": "inbox"}).executed
    return run


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"then": "desk"}, ("executed", "tools.route")),
        ({"then": "street"}, ("denied", "constraints.route.then.in")),
        ({"then": "desk", "like": 11}, ("denied", "constraints.route.like.max")),
        ({"then": "desk", "has": "long"}, ("denied", "constraints.route.has.max_length")),
        ({"then": "desk", "größe": "100.5"}, ("denied", "constraints.route.größe.max")),
        ({"then": "queue", "like": 6}, ("denied", "deny[0]")),
        ({"then": "desk", "like": 6}, ("executed", "tools.route")),
        ({"then": "desk", "größe": 60, "has": "big"}, ("denied", "deny[1]")),
        ({"then": "desk", "größe": 60}, ("executed", "tools.route")),  # has absent: false
        ({"then": "desk", "attachments": [{"file_id": EVIL}]}, ("denied", "deny[2]")),
        ({"then": "desk", "attachments": [{"file_id": "a.pdf"}]}, ("executed", "tools.route")),
    ],
    ids=[
        "allowed",
        "then-not-in",
        "like-over-max",
        "has-too-long",
        "größe-over-max",
        "when-then-and-like",
        "when-like-alone",
        "when-größe-and-has",
        "when-has-absent",
        "tainted-untyped-argument",
        "clean-untyped-argument",
    ],
)
def test_rules_on_keyword_and_untyped_arguments_decide(
    runtime: Runtime, tmp_path: Path, arguments: dict[str, Any], expected: tuple[str, str]
) -> None:
    run = start(runtime, tmp_path)
    result = call(run, "route", arguments)
    assert (result.outcome, result.decision.rule_id) == expected, result.decision
