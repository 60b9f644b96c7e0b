"""``charter approvals list|show`` mark a request repeating an approved effect (issue 11, #8)."""

from __future__ import annotations

import json
from datetime import timedelta

from charter.core.clock import SystemClock
from charter.execution.approval_store import StoreGrants
from charter.execution.approvals import ApprovalRequest
from tests.cli.test_approvals_cli import ARGUMENTS, SHA, Inbox, inbox

__all__ = ["inbox"]


def _repeat_of_apr_1(inbox: Inbox, *, run_id: str) -> ApprovalRequest:
    """apr_1 (carol's $350 refund, run_1) approved and used; the same refund asked again."""
    inbox.store.decide("apr_1", "approve", by="alice", reason="")
    assert StoreGrants(inbox.store).granted("run_1", "issue_refund", SHA, use_key="run_1:1")
    request = ApprovalRequest(
        id="apr_again",
        run_id=run_id,
        tenant="acme",
        requested_by="carol",
        tool="issue_refund",
        arguments=ARGUMENTS,
        arguments_sha256=SHA,
        reason="amount_usd > 200",
        rule_id="require_approval_for[0]",
        requested_at=SystemClock().now() + timedelta(seconds=1),
    )
    inbox.store.request(request, charter_name="support-triage")
    return request


def test_list_marks_the_repeat_at_the_end_of_its_line(inbox: Inbox) -> None:
    _repeat_of_apr_1(inbox, run_id="run_9")
    decided_at = inbox.store.get("apr_1").decided_at
    assert decided_at is not None
    code, out, err = inbox.invoke("list", "--tenant", "acme")
    assert code == 0, err
    again, first = out.splitlines()
    assert again.startswith("apr_again ")
    assert again.endswith(
        f"amount_usd > 200  [repeat of apr_1 approved by alice at "
        f"{decided_at.isoformat(timespec='seconds')} in run run_1 (used: it ran)]"
    )
    assert first.startswith("apr_1 ")
    assert "repeat of" not in first


def test_list_json_says_what_each_request_repeats(inbox: Inbox) -> None:
    _repeat_of_apr_1(inbox, run_id="run_1")
    code, out, _ = inbox.invoke("list", "--json")
    assert code == 0
    by_id = {r["id"]: r["repeat_of"] for r in json.loads(out)["requests"]}
    assert by_id["apr_1"] is None
    assert by_id["apr_2"] is None  # another tenant's
    repeat = by_id["apr_again"]
    assert (repeat["id"], repeat["status"], repeat["decided_by"], repeat["same_run"]) == (
        "apr_1", "executed", "alice", True,
    )  # fmt: skip
    assert repeat["summary"].endswith("in this run (used: it ran)")


def test_show_names_the_earlier_approval(inbox: Inbox) -> None:
    _repeat_of_apr_1(inbox, run_id="run_1")
    code, out, err = inbox.invoke("show", "apr_again")
    assert code == 0, err
    fields = {line.split()[0]: line.split(maxsplit=1)[1] for line in out.splitlines()}
    assert fields["repeat_of"].startswith("repeat of apr_1 approved by alice at ")
    code, out, _ = inbox.invoke("show", "apr_again", "--json")
    assert json.loads(out)["repeat_of"]["id"] == "apr_1"
    code, out, _ = inbox.invoke("show", "apr_1", "--json")
    assert json.loads(out)["repeat_of"] is None
