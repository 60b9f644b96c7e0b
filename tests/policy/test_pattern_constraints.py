"""A constraint's pattern decides in linear time however hostile the value (issue 11, defect 4).

``constraints: {account: {pattern: "^(a|a)+$"}}`` with 24 ``a``s and a ``!`` blocked the event
loop for 3 s, doubling per character. Through the real pipeline (Cedar, audit, the lot): the
hostile value is denied at once, and ordinary patterns keep their meaning.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from charter.contract.tool import tool
from charter.core import patterns
from charter.identity.principal import Principal
from charter.runtime import Runtime
from tests.core.test_patterns import HOSTILE, finishes
from tests.execution.harness import call, make_runtime, write_charter


@tool
def pay(account: str, memo: str = "") -> str:
    """Pay an account.

    Args:
        account: where to.
        memo: a note.
    """
    return "paid"


CHARTER = """\
tools:
  pay:
    effect: irreversible
    constraints:
      account: {pattern: "^(a|a)+$"}
      memo: {pattern: '^\\w*\\Z'}
"""


def decide(runtime: Runtime, tmp_path: Path, **arguments: str) -> tuple[str, str]:
    charter = write_charter(tmp_path, CHARTER, tools=[pay])
    run = runtime.start_run(charter, Principal("alice", "acme"))
    result = call(run, "pay", arguments)
    return result.outcome, result.decision.rule_id


def decide_in_fresh_runtime(account: str) -> str:
    """For the subprocess: one call through the whole pipeline, as ``outcome rule``."""
    with tempfile.TemporaryDirectory() as folder, make_runtime(Path(folder)) as runtime:
        return " ".join(decide(runtime, Path(folder), account=account))


def test_a_hostile_value_for_a_catastrophic_pattern_is_denied_without_hanging() -> None:
    out = finishes(f"""
        from tests.policy.test_pattern_constraints import decide_in_fresh_runtime
        print(decide_in_fresh_runtime({HOSTILE!r}))
    """)
    assert out == "denied constraints.pay.account.pattern"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"account": "aaaa"}, ("executed", "tools.pay")),
        ({"account": "aaab"}, ("denied", "constraints.pay.account.pattern")),
        ({"account": "aaaa\n"}, ("denied", "constraints.pay.account.pattern")),  # fullmatch
        ({"account": "a", "memo": "café_\u0661\u0662"}, ("executed", "tools.pay")),  # \w is Unicode
        ({"account": "a", "memo": "café au lait"}, ("denied", "constraints.pay.memo.pattern")),
        ({"account": "a", "memo": "x\n"}, ("denied", "constraints.pay.memo.pattern")),  # \Z
    ],
    ids=["match", "no-match", "trailing-newline", "unicode-word", "space", "end-of-text"],
)
def test_patterns_decide_as_a_full_match_with_pythons_meaning(
    runtime: Runtime, tmp_path: Path, arguments: dict[str, str], expected: tuple[str, str]
) -> None:
    assert decide(runtime, tmp_path, **arguments) == expected


def test_a_call_compiles_no_pattern(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    charter = write_charter(tmp_path, CHARTER, tools=[pay])
    run = runtime.start_run(charter, Principal("alice", "acme"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pattern was compiled while deciding a call")

    monkeypatch.setattr(patterns.re2, "compile", refuse)
    assert call(run, "pay", {"account": "aa"}).executed
    assert call(run, "pay", {"account": "ab"}).outcome == "denied"
