"""A rule naming a person in canonical form fires for every spelling of that person.

The loader refuses a rule naming ``"Mallory"`` (``tests/contract/test_person_names.py``);
written as the loader asks, ``"mallory"``, the rule must then fire for ``Mallory``,
``MALLORY`` and `` mallory `` alike, in ``when:`` conditions and in raw Cedar, and for nobody
else (issue 11, sibling of defect 5).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.contract.tool import tool
from charter.identity.principal import Principal
from charter.runtime import Runtime
from tests.execution.harness import call, write_charter


@tool
def refund(amount: int) -> str:
    """Refund.

    Args:
        amount: whole dollars.
    """
    return "refunded"


CHARTER = """\
tools:
  refund: {effect: irreversible}
policies:
  deny:
    - {action: refund, when: "principal.user == 'mallory'", reason: "not mallory"}
    - {action: refund, when: "principal.user like '*@evil.example'", reason: "not evil"}
  cedar: extra.cedar
"""
CEDAR = """\
@id("no-eve")
@reason("not eve")
forbid(principal == Charter::User::"eve", action, resource);
"""


@pytest.mark.parametrize(
    ("user", "rule"),
    [
        ("Mallory", "deny[0]"),
        ("MALLORY", "deny[0]"),
        (" mallory ", "deny[0]"),
        ("Boss@Evil.Example", "deny[1]"),
        ("Eve", "no-eve"),
        ("alice", "tools.refund"),
    ],
)
def test_a_canonical_name_in_a_rule_matches_every_spelling_of_the_person(
    runtime: Runtime, tmp_path: Path, user: str, rule: str
) -> None:
    charter = write_charter(tmp_path, CHARTER, tools=[refund], cedar=CEDAR)
    run = runtime.start_run(charter, Principal(user, "acme"))
    result = call(run, "refund", {"amount": 5})
    assert result.decision.rule_id == rule, result.decision
    assert result.outcome == ("executed" if rule == "tools.refund" else "denied")
