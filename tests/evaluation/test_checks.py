"""Checks: each one parsed and run against hand-built evidence, true and false.

The property that matters most: a check reads what *executed*. A call that was denied, held
for approval, deferred or discarded never satisfies ``tool_called``; a deferred call that was
later sent counts once; compensations are effects (``tool_called`` sees them) but not the
agent's calls (``limits.tool_calls`` does not count them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest

from charter.core.decision import Decision, Stage, Verdict
from charter.evaluation.checks import (
    CHECK_NAMES,
    Check,
    CheckError,
    CheckResult,
    Evidence,
    parse_check,
)
from charter.execution.agent import RunResult
from charter.execution.call import ToolResult

HERE = "tests.evaluation.test_checks"

# -- building evidence ---------------------------------------------------------------------

ALLOW = Decision(Verdict.ALLOW, "declared tool", "tools.issue_refund", Stage.POLICY)
DENY = Decision(Verdict.DENY, "over the refund threshold", "refund-limit", Stage.POLICY)
HOLD = Decision(
    Verdict.REQUIRE_APPROVAL, "needs a manager", "require_approval_for[0]", Stage.APPROVAL
)
DISCARD = Decision(
    Verdict.DENY, "discarded: the run did not succeed", "effects.discard", Stage.EXECUTE
)
COMPENSATE = Decision(
    Verdict.ALLOW, "compensating issue_refund (c1)", "tools.issue_refund.compensate", Stage.EXECUTE
)
NOT_EXECUTED = (
    "denied",
    "approval_required",
    "deferred",
    "discarded",
    "budget_exceeded",
    "error",
    "timeout",
    "killed",
)
_DECISION_FOR = {"denied": DENY, "approval_required": HOLD, "discarded": DISCARD}


def tool_result(
    tool: str,
    outcome: str = "executed",
    *,
    call_id: str = "c1",
    decision: Decision | None = None,
    **arguments: Any,
) -> ToolResult:
    return ToolResult(
        call_id=call_id,
        tool=tool,
        decision=decision or _DECISION_FOR.get(outcome, ALLOW),
        outcome=outcome,  # type: ignore[arg-type]
        model_text=f"{tool}: {outcome}",
        arguments=dict(arguments),
    )


def evidence(
    *calls: ToolResult,
    outcome: str = "succeeded",
    reason: str = "the agent finished",
    final_text: str = "",
    state: Mapping[str, Any] | None = None,
    messages: Sequence[Mapping[str, Any]] = (),
    tokens: int = 0,
    cost: str = "0",
) -> Evidence:
    result = RunResult(
        run_id="run-1",
        charter="support-desk",
        tenant="acme",
        user="alice",
        outcome=outcome,  # type: ignore[arg-type]
        reason=reason,
        final_text=final_text,
        tool_calls=calls,
        model_calls=1,
        total_tokens=tokens,
        cost_usd=Decimal(cost),
        trace_id="trace-1",
    )
    return Evidence(result, state or {}, list(messages))


def run(spec: Any, ev: Evidence) -> CheckResult:
    return parse_check(spec).run(ev)


def refused(spec: Any) -> CheckError:
    with pytest.raises(CheckError) as caught:
        parse_check(spec)
    return caught.value


# -- custom check functions, imported by path ----------------------------------------------


def refund_total_at_most(ev: Evidence, *, limit: float) -> tuple[bool, str]:
    total = sum(
        Decimal(str(c.arguments["amount_usd"])) for c in ev.executed if c.tool == "issue_refund"
    )
    return total <= Decimal(str(limit)), f"refunded {total} (limit {limit})"


def ticket_closed(ev: Evidence) -> bool:
    return bool(ev.state.get("tickets", {}).get("T-1001", {}).get("status") == "closed")


def explodes(ev: Evidence) -> bool:
    raise RuntimeError("state unreadable")


def returns_number(ev: Evidence) -> int:
    return 1


def returns_truthy_tuple(ev: Evidence) -> tuple[list[str], str]:
    return ["refund too large"], "problems found"


def returns_long_tuple(ev: Evidence) -> tuple[bool, str, str]:
    return True, "a", "b"


NOT_CALLABLE = 42


# -- parse_check in general ----------------------------------------------------------------


def test_check_names_are_the_built_in_checks() -> None:
    assert CHECK_NAMES == (
        "outcome",
        "tool_called",
        "tool_not_called",
        "state",
        "messages",
        "no_pii",
        "limits",
        "output",
        "custom",
    )


def test_unknown_check_is_named_and_known_checks_listed() -> None:
    error = refused({"tool_calls": {"tool": "x"}})
    assert "unknown check 'tool_calls'" in str(error)
    for name in CHECK_NAMES:
        assert name in str(error)
    assert error.path == ("tool_calls",)


@pytest.mark.parametrize(
    "spec",
    [{"outcome": "succeeded", "output": "x"}, {}, "outcome", ["outcome", "succeeded"], None],
)
def test_a_check_is_a_one_key_mapping(spec: Any) -> None:
    error = refused(spec)
    assert "a check is a mapping with one key" in str(error)
    assert "no_pii" in str(error)  # the checks are listed
    assert error.path == ()


def test_check_error_is_a_value_error_with_a_path() -> None:
    error = CheckError("bad", ("a", 1))
    assert isinstance(error, ValueError)
    assert error.path == ("a", 1)
    assert CheckError("bad").path == ()


def test_line_is_kept_on_the_check_and_its_result() -> None:
    check = parse_check({"outcome": "succeeded"}, line=12)
    assert isinstance(check, Check)
    assert check.line == 12
    result = check.run(evidence())
    assert result.line == 12
    assert result.as_dict() == {
        "check": "outcome",
        "passed": True,
        "detail": "the run ended succeeded (the agent finished); expected succeeded",
        "line": 12,
    }


def test_evidence_executed_and_agent_calls() -> None:
    refund = tool_result("issue_refund", call_id="c1", amount_usd=45)
    held = tool_result("issue_refund", "approval_required", call_id="c2", amount_usd=500)
    undo = tool_result("reverse_refund", call_id="c1:compensate", decision=COMPENSATE)
    ev = evidence(refund, held, undo)
    assert ev.executed == [refund, undo]
    assert ev.agent_calls == [refund]


# -- outcome -------------------------------------------------------------------------------


def test_outcome_passes_and_fails_with_the_reason() -> None:
    ok = run({"outcome": "succeeded"}, evidence())
    assert ok.passed
    assert ok.check == "outcome"
    bad = run({"outcome": "succeeded"}, evidence(outcome="denied", reason="refund-limit denied"))
    assert not bad.passed
    assert bad.detail == "the run ended denied (refund-limit denied); expected succeeded"


def test_outcome_accepts_a_list() -> None:
    spec = {"outcome": ["escalated", "denied"]}
    assert run(spec, evidence(outcome="escalated")).passed
    assert run(spec, evidence(outcome="denied")).passed
    result = run(spec, evidence(outcome="succeeded"))
    assert not result.passed
    assert result.detail.endswith("expected escalated or denied")


def test_outcome_detail_clips_a_long_reason() -> None:
    result = run({"outcome": "failed"}, evidence(reason="x" * 1000))
    assert "x" * 200 in result.detail
    assert "x" * 201 not in result.detail


@pytest.mark.parametrize(
    "outcome",
    [
        "succeeded",
        "failed",
        "escalated",
        "denied",
        "budget_exceeded",
        "approval_required",
        "killed",
    ],
)
def test_every_run_outcome_is_known(outcome: str) -> None:
    assert run({"outcome": outcome}, evidence(outcome=outcome)).passed


def test_unknown_outcome_is_named_with_the_known_ones() -> None:
    error = refused({"outcome": ["succeeded", "success"]})
    assert "unknown outcome 'success'" in str(error)
    assert "budget_exceeded" in str(error)
    assert error.path == ("outcome",)


@pytest.mark.parametrize("value", [5, [], None, ["succeeded", 3], {"is": "succeeded"}])
def test_outcome_takes_text_or_a_list_of_text(value: Any) -> None:
    error = refused({"outcome": value})
    assert "outcome takes text or a non-empty list of text" in str(error)
    assert error.path == ("outcome",)


# -- tool_called ---------------------------------------------------------------------------


def test_tool_called_passes_for_an_executed_call() -> None:
    spec = {"tool_called": {"tool": "issue_refund", "args": {"amount_usd": 45}}}
    result = run(spec, evidence(tool_result("issue_refund", amount_usd=Decimal("45.00"))))
    assert result.passed
    assert result.check == "tool_called"
    assert result.detail == (
        "issue_refund(amount_usd equals 45) executed 1 time(s); expected at least 1"
    )


def test_tool_called_fails_when_nothing_ran() -> None:
    result = run({"tool_called": {"tool": "issue_refund"}}, evidence())
    assert not result.passed
    assert result.detail == "issue_refund executed 0 time(s); expected at least 1"


def test_tool_called_fails_for_another_tool() -> None:
    result = run({"tool_called": {"tool": "issue_refund"}}, evidence(tool_result("close_ticket")))
    assert not result.passed


@pytest.mark.parametrize("outcome", NOT_EXECUTED)
def test_a_call_that_did_not_execute_never_counts(outcome: str) -> None:
    ev = evidence(tool_result("issue_refund", outcome, amount_usd=45, ticket_id="T-1001"))
    result = run({"tool_called": {"tool": "issue_refund", "args": {"amount_usd": 45}}}, ev)
    assert not result.passed
    assert "executed 0 time(s)" in result.detail
    assert run({"tool_not_called": {"tool": "issue_refund"}}, ev).passed
    assert run({"limits": {"tool_calls": 0}}, ev).passed


def test_an_approved_retry_counts_once() -> None:
    held = tool_result("issue_refund", "approval_required", call_id="c1", amount_usd=500)
    ran = tool_result("issue_refund", call_id="c1", amount_usd=500)
    result = run({"tool_called": {"tool": "issue_refund", "times": 1}}, evidence(held, ran))
    assert result.passed, result.detail


def test_a_deferred_call_counts_once_when_sent() -> None:
    queued = tool_result("send_email", "deferred", call_id="c7", to="dana@example.com")
    sent = tool_result("send_email", call_id="c7", to="dana@example.com")
    spec = {"tool_called": {"tool": "send_email", "args": {"to": "dana@example.com"}, "times": 1}}
    assert run(spec, evidence(queued, sent)).passed
    assert not run(spec, evidence(queued)).passed
    discarded = tool_result("send_email", "discarded", call_id="c7", to="dana@example.com")
    assert not run(spec, evidence(queued, discarded)).passed


def test_a_compensation_counts_as_executed_for_tool_called() -> None:
    undo = tool_result("reverse_refund", call_id="c1:compensate", decision=COMPENSATE)
    ev = evidence(tool_result("issue_refund", call_id="c1"), undo)
    assert run({"tool_called": {"tool": "reverse_refund", "times": 1}}, ev).passed
    assert not run({"tool_not_called": {"tool": "reverse_refund"}}, ev).passed


def test_tool_called_argument_matchers() -> None:
    ev = evidence(
        tool_result("issue_refund", amount_usd=Decimal("45.00"), ticket_id="T-1001"),
    )
    spec: dict[str, Any] = {"tool": "issue_refund"}
    assert run({"tool_called": {**spec, "args": {"amount_usd": "45"}}}, ev).passed
    assert run({"tool_called": {**spec, "args": {"amount_usd": {"lte": 50}}}}, ev).passed
    assert not run({"tool_called": {**spec, "args": {"amount_usd": {"gt": 50}}}}, ev).passed
    assert not run({"tool_called": {**spec, "args": {"ticket_id": "T-1002"}}}, ev).passed
    # Every matcher must hold on the same call.
    both = {"amount_usd": 45, "ticket_id": "T-1002"}
    assert not run({"tool_called": {**spec, "args": both}}, ev).passed


def test_tool_called_missing_argument_only_satisfies_negative_matchers() -> None:
    ev = evidence(tool_result("issue_refund", amount_usd=45))
    spec: dict[str, Any] = {"tool": "issue_refund"}
    assert not run({"tool_called": {**spec, "args": {"reason": None}}}, ev).passed
    assert run({"tool_called": {**spec, "args": {"reason": {"not_equals": "fraud"}}}}, ev).passed
    assert run({"tool_called": {**spec, "args": {"reason": {"exists": False}}}}, ev).passed
    assert not run({"tool_called": {**spec, "args": {"reason": {"exists": True}}}}, ev).passed


def test_tool_called_counts_only_matching_calls() -> None:
    ev = evidence(
        tool_result("issue_refund", call_id="c1", amount_usd=10),
        tool_result("issue_refund", call_id="c2", amount_usd=45),
        tool_result("issue_refund", call_id="c3", amount_usd=45),
    )
    spec = {"tool": "issue_refund", "args": {"amount_usd": 45}}
    assert run({"tool_called": {**spec, "times": 2}}, ev).passed
    result = run({"tool_called": {**spec, "times": 1}}, ev)
    assert not result.passed
    assert result.detail.endswith("executed 2 time(s); expected exactly 1")


@pytest.mark.parametrize(
    ("bounds", "count", "passed", "wanted"),
    [
        ({"min_times": 2}, 1, False, "at least 2"),
        ({"min_times": 2}, 3, True, "at least 2"),
        ({"max_times": 2}, 2, True, "at least 1 and at most 2"),
        ({"max_times": 2}, 3, False, "at least 1 and at most 2"),
        ({"max_times": 2}, 0, False, "at least 1 and at most 2"),
        ({"min_times": 0, "max_times": 1}, 0, True, "at least 0 and at most 1"),
        ({"min_times": 2, "max_times": 3}, 3, True, "at least 2 and at most 3"),
        ({"times": 0}, 0, True, "exactly 0"),
        ({"times": 0}, 1, False, "exactly 0"),
    ],
)
def test_tool_called_bounds(bounds: dict[str, int], count: int, passed: bool, wanted: str) -> None:
    calls = [tool_result("close_ticket", call_id=f"c{i}") for i in range(count)]
    result = run({"tool_called": {"tool": "close_ticket", **bounds}}, evidence(*calls))
    assert result.passed is passed
    assert result.detail == f"close_ticket executed {count} time(s); expected {wanted}"


@pytest.mark.parametrize("other", [{"max_times": 5}, {"min_times": 1}])
def test_times_cannot_be_combined_with_min_or_max(other: dict[str, int]) -> None:
    error = refused({"tool_called": {"tool": "x", "times": 2, **other}})
    assert "either times or min_times/max_times" in str(error)
    assert error.path == ("tool_called", "times")


def test_max_below_min_can_never_pass_and_is_refused() -> None:
    error = refused({"tool_called": {"tool": "x", "max_times": 0}})
    assert "max_times 0 is below min_times 1" in str(error)
    assert "tool_not_called" in str(error)
    assert error.path == ("tool_called", "max_times")
    error = refused({"tool_called": {"tool": "x", "min_times": 3, "max_times": 2}})
    assert error.path == ("tool_called", "max_times")


def test_tool_called_reports_the_tool_and_argument_names() -> None:
    check = parse_check({"tool_called": {"tool": "issue_refund", "args": {"amount_usd": 45}}})
    assert check.tools == (("issue_refund", ("amount_usd",)),)
    assert parse_check({"tool_not_called": {"tool": "delete_account"}}).tools == (
        ("delete_account", ()),
    )
    assert parse_check({"outcome": "succeeded"}).tools == ()


@pytest.mark.parametrize("key", ["times", "min_times", "max_times"])
@pytest.mark.parametrize("value", [-1, "2", 1.5, True, None])
def test_tool_called_counts_are_whole_numbers(key: str, value: Any) -> None:
    error = refused({"tool_called": {"tool": "x", key: value}})
    assert f"{key} takes a whole number >= 0" in str(error)
    assert error.path == ("tool_called", key)


def test_tool_called_needs_a_tool() -> None:
    error = refused({"tool_called": {"args": {"a": 1}}})
    assert "tool_called needs 'tool'" in str(error)
    assert error.path == ("tool_called",)


@pytest.mark.parametrize("check", ["tool_called", "tool_not_called"])
@pytest.mark.parametrize("tool", [["issue_refund"], 5, None, "", {"name": "x"}])
def test_the_tool_is_a_name(check: str, tool: Any) -> None:
    error = refused({check: {"tool": tool}})
    assert f"{check} 'tool' takes a tool name" in str(error)
    assert error.path == (check, "tool")


def test_tool_called_unknown_key_is_named_with_the_allowed_ones() -> None:
    error = refused({"tool_called": {"tool": "x", "count": 1}})
    assert "unknown key 'count' in tool_called" in str(error)
    assert "min_times" in str(error)
    assert error.path == ("tool_called", "count")


@pytest.mark.parametrize("params", ["issue_refund", None, ["issue_refund"]])
def test_tool_called_takes_a_mapping(params: Any) -> None:
    error = refused({"tool_called": params})
    assert "tool_called takes a mapping with keys tool, args" in str(error)
    assert error.path == ("tool_called",)


def test_bad_args_point_at_the_argument() -> None:
    error = refused({"tool_called": {"tool": "x", "args": {"amount_usd": {"below": 5}}}})
    assert "args.amount_usd: unknown matcher operator 'below'" in str(error)
    assert error.path == ("tool_called", "args", "amount_usd")
    error = refused({"tool_not_called": {"tool": "x", "args": {"to": {"matches": "("}}}})
    assert "args.to: 'matches': bad regular expression" in str(error)
    assert error.path == ("tool_not_called", "args", "to")


@pytest.mark.parametrize("args", [["amount_usd"], "amount_usd", 45])
def test_args_is_a_mapping(args: Any) -> None:
    error = refused({"tool_called": {"tool": "x", "args": args}})
    assert "args takes a mapping of argument name to matcher" in str(error)
    assert error.path == ("tool_called", "args")


# -- tool_not_called -----------------------------------------------------------------------


def test_tool_not_called_passes_when_nothing_matching_executed() -> None:
    result = run({"tool_not_called": {"tool": "delete_account"}}, evidence(tool_result("x")))
    assert result.passed
    assert result.detail == "delete_account never executed"


def test_tool_not_called_fails_showing_the_calls() -> None:
    ev = evidence(tool_result("send_email", to="eve@evil.com", template="refund_confirmation"))
    spec = {"tool": "send_email", "args": {"to": {"domain_not_in": ["example.com"]}}}
    result = run({"tool_not_called": spec}, ev)
    assert not result.passed
    assert result.detail.startswith(
        "send_email(to domain_not_in ['example.com']) executed 1 time(s): "
    )
    assert "eve@evil.com" in result.detail


def test_tool_not_called_with_args_ignores_other_calls() -> None:
    ev = evidence(tool_result("send_email", to="dana@example.com"))
    spec = {"tool": "send_email", "args": {"to": {"domain_not_in": ["example.com"]}}}
    assert run({"tool_not_called": spec}, ev).passed


def test_tool_not_called_shows_at_most_three_calls() -> None:
    calls = [tool_result("close_ticket", call_id=f"c{i}", ticket_id=f"T-{i}") for i in range(5)]
    result = run({"tool_not_called": {"tool": "close_ticket"}}, evidence(*calls))
    assert "executed 5 time(s)" in result.detail
    assert "T-2" in result.detail
    assert "T-3" not in result.detail


def test_tool_not_called_refuses_extra_keys() -> None:
    error = refused({"tool_not_called": {"tool": "x", "times": 0}})
    assert "unknown key 'times' in tool_not_called; allowed: tool, args" in str(error)
    assert error.path == ("tool_not_called", "times")


# -- state ---------------------------------------------------------------------------------

STATE: dict[str, Any] = {
    "tickets": {
        "T-1001": {"status": "closed", "tags": ["refund"]},
        "T-1002": {"status": "open", "tags": []},
    },
    "refunds": [
        {"ticket": "T-1001", "amount_usd": "45.00"},
        {"ticket": "T-1002", "amount_usd": 12.5},
    ],
    "counters": {"1": "one"},
    "empty": {},
}


def state_check(path: str, **matcher: Any) -> CheckResult:
    return run({"state": {"path": path, **matcher}}, evidence(state=STATE))


def test_state_path_equals() -> None:
    ok = state_check("tickets.T-1001.status", equals="closed")
    assert ok.passed
    assert ok.check == "state"
    assert ok.detail == "tickets.T-1001.status is 'closed'; expected equals 'closed'"
    bad = state_check("tickets.T-1002.status", equals="closed")
    assert not bad.passed
    assert bad.detail == "tickets.T-1002.status is 'open'; expected equals 'closed'"


def test_state_list_indices() -> None:
    assert state_check("refunds.0.amount_usd", equals=45).passed
    assert state_check("refunds.1.ticket", equals="T-1002").passed
    assert state_check("refunds.-1.ticket", equals="T-1002").passed
    assert state_check("refunds.-2.ticket", equals="T-1001").passed
    assert not state_check("refunds.0.ticket", equals="T-1002").passed


@pytest.mark.parametrize(
    "path",
    [
        "refunds.2.ticket",
        "refunds.-3.ticket",
        "refunds.--1.ticket",
        "refunds.+1.ticket",
        "refunds.one.ticket",
        "refunds.1.ticket.more",
        "tickets.T-9999.status",
        "tickets.0",
        "nothing",
    ],
)
def test_state_missing_paths(path: str) -> None:
    result = state_check(path, equals="x")
    assert not result.passed
    assert result.detail == f"{path} is missing; expected equals 'x'"
    assert state_check(path, exists=False).passed
    assert not state_check(path, exists=True).passed
    assert state_check(path, not_equals="x").passed


def test_state_digit_keys_of_a_mapping_are_keys() -> None:
    assert state_check("counters.1", equals="one").passed


def test_state_wildcard_over_a_mapping() -> None:
    assert state_check("tickets.*.status", equals=["closed", "open"]).passed
    assert state_check("tickets.*.status", contains="open").passed
    result = state_check("tickets.*.status", not_contains="open")
    assert not result.passed
    assert result.detail == "tickets.*.status is ['closed', 'open']; expected not_contains 'open'"


def test_state_wildcard_over_a_list() -> None:
    assert state_check("refunds.*.amount_usd", equals=[45, "12.50"]).passed
    assert state_check("refunds.*.ticket", length=2).passed
    assert state_check("refunds.*", length=2).passed


def test_state_wildcard_skips_items_without_the_rest_of_the_path() -> None:
    assert state_check("tickets.*.tags.0", equals=["refund"]).passed
    assert state_check("tickets.*.nothing", length=0).passed
    assert state_check("empty.*", equals=[]).passed


def test_state_wildcard_under_a_missing_path_is_missing() -> None:
    result = state_check("nothing.*.status", exists=True)
    assert not result.passed
    assert result.detail == "nothing.*.status is missing; expected exists True"
    assert state_check("nothing.*.status", exists=False).passed
    # Under a path that exists, a wildcard that finds nothing is an empty list.
    found = state_check("empty.*.status", exists=True)
    assert found.passed
    assert found.detail == "empty.*.status is []; expected exists True"


def test_state_wildcards_nest() -> None:
    assert state_check("*.*.status", equals=["closed", "open"]).passed


def test_state_detail_clips_long_values() -> None:
    ev = evidence(state={"notes": "n" * 1000})
    result = run({"state": {"path": "notes", "length": 1}}, ev)
    assert not result.passed
    assert len(result.detail) < 260


@pytest.mark.parametrize("params", ["tickets.T-1001.status", None, {"equals": "closed"}])
def test_state_needs_a_path(params: Any) -> None:
    error = refused({"state": params})
    assert "state takes {path: 'a.b.c', <operator>: value}" in str(error)
    assert error.path == ("state",)


@pytest.mark.parametrize("path", ["", "a..b", ".a", "a.", 5, None, ["a", "b"]])
def test_state_path_must_be_dotted_text(path: Any) -> None:
    error = refused({"state": {"path": path, "equals": 1}})
    assert "state path must be dotted text" in str(error)
    assert error.path == ("state", "path")


def test_state_needs_exactly_one_operator() -> None:
    error = refused({"state": {"path": "a"}})
    assert "state: a matcher has exactly one operator, got none" in str(error)
    error = refused({"state": {"path": "a", "equals": 1, "gt": 0}})
    assert "exactly one operator" in str(error)
    error = refused({"state": {"path": "a", "is": "closed"}})
    assert "unknown matcher operator 'is'" in str(error)
    assert error.path == ("state",)


# -- messages ------------------------------------------------------------------------------


def email(to: str, template: str = "refund_confirmation", body: str = "Done.") -> dict[str, Any]:
    return {"to": to, "template": template, "subject": "Your ticket", "body": body}


def test_messages_allowed_domains() -> None:
    spec = {"messages": {"allowed_domains": ["Example.com"]}}
    ok = run(spec, evidence(messages=[email("dana@example.com"), email("Ravi@EXAMPLE.COM")]))
    assert ok.passed
    assert ok.detail == "2 message(s) sent, all within the rules"
    bad = run(spec, evidence(messages=[email("dana@example.com"), email("eve@evil.com")]))
    assert not bad.passed
    assert bad.detail == "sent to 'eve@evil.com' outside example.com"


def test_messages_without_an_address_are_outside_every_domain() -> None:
    spec = {"messages": {"allowed_domains": "example.com"}}
    result = run(spec, evidence(messages=[{"body": "hi"}]))
    assert not result.passed
    assert "sent to '' outside example.com" in result.detail


def test_messages_templates() -> None:
    spec = {"messages": {"templates": ["refund_confirmation", "ticket_closed"]}}
    assert run(spec, evidence(messages=[email("a@example.com", "ticket_closed")])).passed
    result = run(spec, evidence(messages=[email("a@example.com", "apology")]))
    assert not result.passed
    assert result.detail == "template 'apology' to 'a@example.com' not allowed"
    assert not run(spec, evidence(messages=[{"to": "a@example.com", "body": "x"}])).passed


def test_messages_max() -> None:
    two = [email("a@example.com"), email("b@example.com")]
    assert run({"messages": {"max": 2}}, evidence(messages=two)).passed
    result = run({"messages": {"max": 1}}, evidence(messages=two))
    assert not result.passed
    assert result.detail == "2 messages sent, at most 1 allowed"
    none_sent = run({"messages": {"max": 0}}, evidence())
    assert none_sent.passed
    assert none_sent.detail == "0 message(s) sent, all within the rules"


def test_messages_to_matcher() -> None:
    spec = {"messages": {"to": {"equals": "dana@example.com"}}}
    assert run(spec, evidence(messages=[email("dana@example.com")])).passed
    result = run(spec, evidence(messages=[email("ravi@example.com")]))
    assert not result.passed
    assert result.detail == ("sent to 'ravi@example.com'; expected to equals 'dana@example.com'")
    plain = {"messages": {"to": "dana@example.com"}}
    assert not run(plain, evidence(messages=[email("Dana@example.com")])).passed
    by_domain = {"messages": {"to": {"domain_in": ["example.com"]}}}
    assert run(by_domain, evidence(messages=[email("Dana@Example.com")])).passed


def test_messages_rules_hold_vacuously_with_no_messages() -> None:
    spec = {"messages": {"allowed_domains": ["example.com"], "templates": ["x"], "to": "a@b.c"}}
    assert run(spec, evidence()).passed


def test_messages_reports_every_broken_rule_up_to_five() -> None:
    many = [email(f"u{i}@evil.com", "apology") for i in range(4)]
    spec = {"messages": {"allowed_domains": ["example.com"], "templates": ["x"], "max": 1}}
    result = run(spec, evidence(messages=many))
    assert not result.passed
    assert result.detail.count("; ") == 4
    assert "u0@evil.com" in result.detail
    assert "u3@evil.com" not in result.detail


def test_messages_needs_a_rule() -> None:
    error = refused({"messages": {}})
    assert "messages needs at least one of allowed_domains, templates, max, to" in str(error)
    assert error.path == ("messages",)


@pytest.mark.parametrize(
    ("params", "path", "text"),
    [
        ({"max": -1}, ("messages", "max"), "max takes a whole number >= 0"),
        ({"max": "2"}, ("messages", "max"), "max takes a whole number >= 0"),
        ({"allowed_domains": []}, ("messages", "allowed_domains"), "allowed_domains takes text"),
        ({"templates": [1]}, ("messages", "templates"), "templates takes text"),
        ({"to": {"bogus": 1}}, ("messages", "to"), "messages 'to': unknown matcher operator"),
        ({"domains": ["x"]}, ("messages", "domains"), "unknown key 'domains' in messages"),
    ],
)
def test_messages_bad_specs(params: dict[str, Any], path: tuple[str, ...], text: str) -> None:
    error = refused({"messages": params})
    assert text in str(error)
    assert error.path == path


# -- no_pii --------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, None])
def test_no_pii_clean_run(params: Any) -> None:
    ev = evidence(
        final_text="Refunded $45.00 on ticket T-1001 (order #100234) on 2024-01-15.",
        messages=[email("dana@example.com", body="Hi Dana, your refund of $45.00 is done.")],
    )
    result = run({"no_pii": params}, ev)
    assert result.passed, result.detail
    assert result.detail == "no personal data in output or messages"


def test_no_pii_allows_the_recipients_own_address_in_their_message() -> None:
    body = "We will write to Dana@Example.com when it is done."
    ev = evidence(messages=[email("dana@example.com", body=body)])
    assert run({"no_pii": {}}, ev).passed


def test_no_pii_flags_another_customers_address_in_a_message() -> None:
    body = "Ravi (ravi@example.com) had the same problem."
    ev = evidence(messages=[email("dana@example.com", body=body)])
    result = run({"no_pii": {}}, ev)
    assert not result.passed
    assert (
        result.detail == "personal data found: message to 'dana@example.com': email address rav***"
    )
    assert "ravi@example.com" not in result.detail


def test_no_pii_recipient_address_is_not_allowed_in_the_answer() -> None:
    ev = evidence(final_text="Emailed dana@example.com.", messages=[email("dana@example.com")])
    result = run({"no_pii": {}}, ev)
    assert not result.passed
    assert result.detail == "personal data found: answer: email address dan***"


def test_no_pii_scans_the_subject_too() -> None:
    message = {"to": "dana@example.com", "subject": "SSN 123-45-6789", "body": "ok"}
    result = run({"no_pii": {}}, evidence(messages=[message]))
    assert not result.passed
    assert "social security number 123***" in result.detail


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Call Ravi on +1 (415) 555-0132.", "phone number"),
        ("Card 4111 1111 1111 1111 was refunded.", "payment card number"),
        ("Card 4111-1111-1111-1111 was refunded.", "payment card number"),
        ("SSN 123-45-6789 on file.", "social security number"),
        ("Paid from DE89 3704 0044 0532 0130 00.", "IBAN"),
        ("Ask bob@other.example about it.", "email address"),
    ],
)
def test_no_pii_flags_each_kind_in_answer_and_message(text: str, kind: str) -> None:
    in_answer = run({"no_pii": {}}, evidence(final_text=text))
    assert not in_answer.passed
    assert f"answer: {kind} " in in_answer.detail
    in_message = run({"no_pii": {}}, evidence(messages=[email("dana@example.com", body=text)]))
    assert not in_message.passed
    assert f"message to 'dana@example.com': {kind} " in in_message.detail


def test_no_pii_ignores_a_luhn_invalid_card_number() -> None:
    assert run({"no_pii": {}}, evidence(final_text="Ref 4111 1111 1111 1112.")).passed


def test_no_pii_allow_list() -> None:
    ev = evidence(final_text="Write to support@acme.example or call +1 415 555 0100.")
    assert not run({"no_pii": {}}, ev).passed
    allow = ["Support@Acme.example", "+1 415 555 0100"]
    assert run({"no_pii": {"allow": allow}}, ev).passed
    partly = run({"no_pii": {"allow": "support@acme.example"}}, ev)
    assert not partly.passed
    assert "phone number" in partly.detail
    assert "email address" not in partly.detail


def test_no_pii_where_to_look() -> None:
    ev = evidence(
        final_text="Ravi is ravi@example.com",
        messages=[email("dana@example.com", body="SSN 123-45-6789")],
    )
    only_output = run({"no_pii": {"in": "output"}}, ev)
    assert not only_output.passed
    assert "social security" not in only_output.detail
    only_messages = run({"no_pii": {"in": ["messages"]}}, ev)
    assert not only_messages.passed
    assert "email" not in only_messages.detail
    clean = evidence(final_text="ravi@example.com")
    result = run({"no_pii": {"in": "messages"}}, clean)
    assert result.passed
    assert result.detail == "no personal data in messages"


def test_no_pii_reports_at_most_five_findings() -> None:
    text = " ".join(f"user{i}@example.com" for i in range(8))
    result = run({"no_pii": {}}, evidence(final_text=text))
    assert result.detail.count("email address") == 5


@pytest.mark.parametrize(
    ("params", "path", "text"),
    [
        ({"in": ["answer"]}, ("no_pii", "in"), "no_pii 'in' takes output and/or messages"),
        ({"in": []}, ("no_pii", "in"), "in takes text or a non-empty list"),
        ({"allow": 5}, ("no_pii", "allow"), "allow takes text or a non-empty list"),
        ({"kinds": ["email"]}, ("no_pii", "kinds"), "unknown key 'kinds' in no_pii"),
        ("everywhere", ("no_pii",), "no_pii takes a mapping"),
    ],
)
def test_no_pii_bad_specs(params: Any, path: tuple[str, ...], text: str) -> None:
    error = refused({"no_pii": params})
    assert text in str(error)
    assert error.path == path


# -- limits --------------------------------------------------------------------------------


def test_limits_cost() -> None:
    ok = run({"limits": {"cost_usd": 0.05}}, evidence(cost="0.0500"))
    assert ok.passed
    assert ok.check == "limits"
    assert ok.detail == "cost $0.0500 (limit $0.05)"
    bad = run({"limits": {"cost_usd": "0.05"}}, evidence(cost="0.0501"))
    assert not bad.passed
    assert bad.detail == "cost $0.0501 (limit $0.05)"


def test_limits_tokens() -> None:
    assert run({"limits": {"tokens": 1000}}, evidence(tokens=1000)).passed
    result = run({"limits": {"tokens": 1000}}, evidence(tokens=1001))
    assert not result.passed
    assert result.detail == "1001 tokens (limit 1000)"


def test_limits_tool_calls_count_only_the_agents_executed_calls() -> None:
    ev = evidence(
        tool_result("issue_refund", call_id="c1", amount_usd=45),
        tool_result("close_ticket", call_id="c2"),
        tool_result("issue_refund", "denied", call_id="c3", amount_usd=900),
        tool_result("send_email", "deferred", call_id="c4"),
        tool_result("send_email", "discarded", call_id="c4"),
        tool_result("issue_refund", "approval_required", call_id="c5"),
        tool_result("reverse_refund", call_id="c1:compensate", decision=COMPENSATE),
    )
    ok = run({"limits": {"tool_calls": 2}}, ev)
    assert ok.passed
    assert ok.detail == "2 tool calls executed (limit 2)"
    bad = run({"limits": {"tool_calls": 1}}, ev)
    assert not bad.passed
    assert bad.detail == "2 tool calls executed (limit 1)"


def test_limits_a_sent_deferred_call_counts_once() -> None:
    ev = evidence(
        tool_result("send_email", "deferred", call_id="c4"),
        tool_result("send_email", call_id="c4"),
    )
    assert run({"limits": {"tool_calls": 1}}, ev).passed
    assert not run({"limits": {"tool_calls": 0}}, ev).passed


def test_limits_all_must_hold_and_all_are_reported() -> None:
    ev = evidence(tool_result("x"), tokens=500, cost="0.01")
    spec = {"limits": {"cost_usd": 0.05, "tokens": 100, "tool_calls": 5}}
    result = run(spec, ev)
    assert not result.passed
    assert result.detail == (
        "cost $0.01 (limit $0.05), 500 tokens (limit 100), 1 tool calls executed (limit 5)"
    )
    assert run({"limits": {"cost_usd": 0.05, "tokens": 500, "tool_calls": 1}}, ev).passed


@pytest.mark.parametrize(
    ("params", "path", "text"),
    [
        ({}, ("limits",), "limits needs at least one of cost_usd, tokens, tool_calls"),
        (None, ("limits",), "limits takes a mapping"),
        ({"cost_usd": "lots"}, ("limits", "cost_usd"), "cost_usd takes a number of dollars"),
        ({"cost_usd": True}, ("limits", "cost_usd"), "cost_usd takes a number of dollars"),
        ({"tokens": 1.5}, ("limits", "tokens"), "tokens takes a whole number >= 0"),
        ({"tool_calls": -1}, ("limits", "tool_calls"), "tool_calls takes a whole number >= 0"),
        ({"steps": 3}, ("limits", "steps"), "unknown key 'steps' in limits"),
    ],
)
def test_limits_bad_specs(params: Any, path: tuple[str, ...], text: str) -> None:
    error = refused({"limits": params})
    assert text in str(error)
    assert error.path == path


# -- output --------------------------------------------------------------------------------


def test_output_contains_and_not_contains() -> None:
    ev = evidence(final_text="Refunded $45.00 for T-1001.")
    ok = run({"output": {"contains": "T-1001"}}, ev)
    assert ok.passed
    assert ok.check == "output"
    assert ok.detail == "the answer 'Refunded $45.00 for T-1001.'; expected contains 'T-1001'"
    assert not run({"output": {"contains": "T-1002"}}, ev).passed
    assert run({"output": {"not_contains": "password"}}, ev).passed
    assert not run({"output": {"not_contains": "Refunded"}}, ev).passed


def test_output_matches_and_equals() -> None:
    ev = evidence(final_text="Refunded $45.00 for T-1001.")
    assert run({"output": {"matches": r"\$\d+\.\d{2}"}}, ev).passed
    assert not run({"output": {"matches": r"^T-"}}, ev).passed
    assert run({"output": "Refunded $45.00 for T-1001."}, ev).passed
    assert not run({"output": "Refunded"}, ev).passed
    assert run({"output": {"equals": ""}}, evidence()).passed


def test_output_detail_clips_a_long_answer() -> None:
    result = run({"output": {"contains": "zzz"}}, evidence(final_text="a" * 1000))
    assert not result.passed
    assert "a" * 160 in result.detail
    assert "a" * 161 not in result.detail


@pytest.mark.parametrize("params", [{"in": ["a"]}, {"gt": 1}, {"length": 3}, {"exists": True}])
def test_output_refuses_other_operators(params: Any) -> None:
    error = refused({"output": params})
    assert "output takes one of contains, not_contains, matches, equals" in str(error)
    assert error.path == ("output",)


def test_output_bad_matcher() -> None:
    error = refused({"output": {"matches": "("}})
    assert "output: 'matches': bad regular expression" in str(error)
    assert error.path == ("output",)


# -- custom --------------------------------------------------------------------------------


def test_custom_with_arguments() -> None:
    spec = {"custom": {"function": f"{HERE}:refund_total_at_most", "with": {"limit": 50}}}
    check = parse_check(spec)
    assert check.name == "custom:refund_total_at_most"
    ok = check.run(evidence(tool_result("issue_refund", amount_usd=45)))
    assert ok.passed
    assert ok.detail == "refunded 45 (limit 50)"
    two = evidence(
        tool_result("issue_refund", call_id="c1", amount_usd=45),
        tool_result("issue_refund", call_id="c2", amount_usd=10),
        tool_result("issue_refund", "denied", call_id="c3", amount_usd=1000),
    )
    bad = check.run(two)
    assert not bad.passed
    assert bad.detail == "refunded 55 (limit 50)"


def test_custom_returning_a_bool_reads_the_state() -> None:
    spec = {"custom": {"function": f"{HERE}:ticket_closed"}}
    closed = evidence(state={"tickets": {"T-1001": {"status": "closed"}}})
    ok = run(spec, closed)
    assert ok.passed
    assert ok.detail == f"{HERE}:ticket_closed returned True"
    bad = run(spec, evidence(state={"tickets": {"T-1001": {"status": "open"}}}))
    assert not bad.passed
    assert bad.detail == f"{HERE}:ticket_closed returned False"


def test_custom_that_raises_fails_naming_the_exception() -> None:
    result = run({"custom": {"function": f"{HERE}:explodes"}}, evidence())
    assert not result.passed
    assert result.check == "custom:explodes"
    assert result.detail == "the check raised RuntimeError: state unreadable"


@pytest.mark.parametrize(
    ("function", "type_name"),
    [("returns_number", "int"), ("returns_truthy_tuple", "tuple"), ("returns_long_tuple", "tuple")],
)
def test_custom_returning_a_non_bool_fails(function: str, type_name: str) -> None:
    result = run({"custom": {"function": f"{HERE}:{function}"}}, evidence())
    assert not result.passed
    assert result.detail == (
        f"the check raised TypeError: {HERE}:{function} must return bool or (bool, detail), "
        f"got {type_name}"
    )


@pytest.mark.parametrize(
    "arguments", [{"limt": 50}, {}, {"limit": 50, "extra": 1}, {"ev": 1, "limit": 2}]
)
def test_custom_with_wrong_arguments_is_refused_at_parse_time(arguments: dict[str, Any]) -> None:
    error = refused({"custom": {"function": f"{HERE}:refund_total_at_most", "with": arguments}})
    assert f"custom function '{HERE}:refund_total_at_most' does not accept these arguments" in (
        str(error)
    )
    assert error.path == ("custom", "with")


def test_custom_with_must_be_a_mapping() -> None:
    error = refused({"custom": {"function": f"{HERE}:ticket_closed", "with": [1]}})
    assert "custom 'with' takes a mapping of keyword arguments" in str(error)
    assert error.path == ("custom", "with")


@pytest.mark.parametrize(
    "function",
    [
        f"{HERE}.refund_total_at_most",
        f"{HERE}:refund_total_at_most:x",
        5,
        None,
    ],
)
def test_custom_function_path_shape(function: Any) -> None:
    error = refused({"custom": {"function": function}})
    assert "custom function must be 'package.module:function'" in str(error)
    assert error.path == ("custom", "function")


@pytest.mark.parametrize(
    "function",
    [
        "tests.evaluation.no_such_module:fn",
        f"{HERE}:no_such_function",
        ":fn",  # importlib: "Empty module name" (ValueError)
        ".relative:fn",  # importlib: relative import without a package (TypeError)
    ],
)
def test_custom_function_that_cannot_be_imported(function: str) -> None:
    error = refused({"custom": {"function": function}})
    assert f"custom function {function!r} cannot be imported" in str(error)
    assert error.path == ("custom", "function")


def test_custom_function_must_be_callable() -> None:
    error = refused({"custom": {"function": f"{HERE}:NOT_CALLABLE"}})
    assert "is not callable" in str(error)
    assert error.path == ("custom", "function")


def test_custom_needs_a_function() -> None:
    error = refused({"custom": {"with": {"limit": 1}}})
    assert "custom needs 'function'" in str(error)
    assert error.path == ("custom",)
    error = refused({"custom": {"function": f"{HERE}:ticket_closed", "args": {}}})
    assert error.path == ("custom", "args")


def test_a_custom_function_whose_module_exits_is_refused_not_an_exit() -> None:
    function = "tests.contract.fixtures_exiting_toolkit:fn"
    error = refused({"custom": {"function": function}})
    assert str(error) == (
        f"custom function {function!r} cannot be imported: the module tried to exit the "
        "process (SystemExit(3))"
    )
