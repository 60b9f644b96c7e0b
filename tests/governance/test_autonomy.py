"""Earned autonomy: decisions in the approvals inbox -> a proposal -> a new charter's text."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from charter.contract.loader import Charter
from charter.core.canonical import canonical_json, sha256_hex
from charter.core.events import EventBus
from charter.execution.approval_store import ApprovalStore, DecisionVerdict
from charter.execution.approvals import ApprovalRequest
from charter.governance.autonomy import (
    MODIFIED_NOTE,
    AutonomyReport,
    autonomy_report,
    proposed_charter_text,
)
from charter.identity.roles import RoleGrants
from charter.storage import Database, upgrade
from charter.testing import FakeClock

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_desk"
AUTONOMY = "\nautonomy:\n  - {tool: issue_refund, min_decisions: 3, max_rejection_rate: 0.34}\n"
APPROVAL_RULE = (
    "  require_approval_for:\n"
    '    - {action: issue_refund, when: "amount_usd > 200", reason: "refunds over $200 need a '
    'human"}\n'
)
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def charter_dir(root: Path, text: str | None = None) -> Path:
    """The example charter (with ``text`` as its file, by default plus AUTONOMY) and the
    files it references, in ``root``; the charter file's path."""
    root.mkdir(parents=True)
    for sub in ("prompts", "policies", "evals"):
        shutil.copytree(EXAMPLE / sub, root / sub)
    if text is None:
        text = (EXAMPLE / "charter.yaml").read_text(encoding="utf-8") + AUTONOMY
    path = root / "charter.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Inbox:
    """A real database with the real approvals store; decisions stamped by a fake clock."""

    database: Database
    clock: FakeClock
    store: ApprovalStore
    filed: int = 0

    def decide(
        self,
        verdict: DecisionVerdict | None,
        *,
        tool: str = "issue_refund",
        charter_name: str = "support-triage",
        rule_id: str = "require_approval_for[0]",
    ) -> str:
        """File one request and decide it (``None``: leave it pending); its id."""
        self.filed += 1
        arguments = {"amount_usd": str(200 + self.filed), "ticket": f"T-{self.filed}"}
        request = ApprovalRequest(
            id=f"apr_{self.filed}",
            run_id=f"run_{self.filed}",
            tenant="acme",
            requested_by="carol",
            tool=tool,
            arguments=arguments,
            arguments_sha256=sha256_hex(canonical_json(arguments)),
            reason="refunds over $200 need a human",
            rule_id=rule_id,
            requested_at=self.clock.now(),
        )
        self.store.request(request, charter_name=charter_name)
        if verdict is not None:
            reason = "" if verdict == "approve" else f"{verdict} it"
            self.store.decide(request.id, verdict, by="alice", reason=reason)
        self.clock.advance(60)
        return request.id

    def many(self, verdict: DecisionVerdict, count: int) -> None:
        for _ in range(count):
            self.decide(verdict)


@pytest.fixture
def inbox(db_url: str) -> Iterator[Inbox]:
    database = Database(db_url)
    upgrade(database)
    clock = FakeClock(START)
    roles = RoleGrants(database, clock)
    roles.grant("acme", "alice", "approver", by="admin")
    store = ApprovalStore(database, clock, EventBus(), roles, ttl=timedelta(hours=1))
    try:
        yield Inbox(database, clock, store)
    finally:
        database.dispose()


@pytest.fixture
def charter(tmp_path: Path) -> Charter:
    return Charter.load(charter_dir(tmp_path / "live"))


def report_of(charter: Charter, inbox: Inbox, **options: Any) -> AutonomyReport:
    return autonomy_report(charter, inbox.database, clock=inbox.clock, **options)


def eval_report(of: Charter, **changes: Any) -> dict[str, Any]:
    """The parts of a ``charter eval`` report the autonomy report reads: all passing."""
    report: dict[str, Any] = {
        "format": "charter.eval-report",
        "version": 1,
        "id": "evr_1",
        "charter": {"name": of.name, "sha256": of.content_sha256},
        "enforcement": True,
        "summary": {"golden": {"pass_rate": 1.0}, "security": {"pass_rate": 1.0}},
        "tasks": [
            {"key": "golden/refund", "kind": "golden", "pass_all": True},
            {"key": "security/evil-account", "kind": "security", "pass_all": True},
            {"key": "security/delete", "kind": "security", "pass_all": True},
        ],
    }
    report.update(changes)
    return report


# --- evidence and proposals -------------------------------------------------------------------


def test_too_few_decisions_keeps_the_approval_rule_and_says_why(
    charter: Charter, inbox: Inbox
) -> None:
    inbox.many("approve", 2)
    report = report_of(charter, inbox)
    [refund] = report.tools
    assert refund.tool == "issue_refund"
    assert refund.approval_rules == (0,)
    assert (refund.evidence.approved, refund.evidence.decisions) == (2, 2)
    assert refund.proposal == "keep"
    assert refund.reasons == ("2 decisions, needs 3",)
    assert report.moves == ()
    assert proposed_charter_text(charter, report) is None


def test_consistent_approvals_propose_autonomy_and_count_only_decisions(
    charter: Charter, inbox: Inbox
) -> None:
    inbox.many("approve", 3)
    inbox.store.consume("run_1", "issue_refund", inbox.store.get("apr_1").arguments_sha256,
                        use_key="k1")  # fmt: skip
    inbox.decide("terminate")
    inbox.decide("escalate")
    inbox.decide(None)  # expires: the clock passes its ttl below
    inbox.clock.advance(2 * 3600)
    inbox.decide(None)  # still pending
    inbox.decide("reject", tool="send_email")  # another tool: not counted for refunds
    inbox.decide("reject", charter_name="other-charter")  # another charter
    report = report_of(charter, inbox)
    [refund] = report.tools
    evidence = refund.evidence
    assert evidence.as_dict() == {
        "approved": 3,  # one of them already used (executed): still approved
        "modified": 0,
        "rejected": 0,
        "decisions": 3,
        "rejection_rate": 0.0,
        "expired": 1,
        "terminated": 1,
        "escalated": 1,
        "pending": 1,
        "by_rule": {"require_approval_for[0]": 7},
    }
    assert refund.proposal == "to_autonomous"
    assert refund.reasons == (
        "3 decisions (needs 3), rejection rate 0 (0 of 3 decisions), at most 0.34",
    )
    assert MODIFIED_NOTE in report.notes
    # The account argument is a sink: tainted calls keep needing approval whatever moves.
    assert refund.notes == (
        "calls whose arguments carry untrusted content still need approval "
        "(untrusted_content.issue_refund); no proposal changes that",
    )
    data = report.as_dict()
    assert data["moves"] == ["issue_refund"]
    assert data["tools"][0]["proposal"] == "to_autonomous"
    assert data["tools"][0]["approval_rules"] == ["require_approval_for[0]"]


def test_too_many_rejections_keep_the_approval_rule(charter: Charter, inbox: Inbox) -> None:
    inbox.many("approve", 2)
    inbox.many("reject", 2)
    [refund] = report_of(charter, inbox).tools
    assert refund.evidence.rejection_rate == 0.5
    assert refund.proposal == "keep"
    assert refund.reasons == ("rejection rate 0.5 (2 of 4 decisions) is above 0.34",)


def test_one_rejection_in_three_is_within_the_maximum(charter: Charter, inbox: Inbox) -> None:
    inbox.many("approve", 2)
    inbox.many("reject", 1)
    [refund] = report_of(charter, inbox).tools
    assert refund.proposal == "to_autonomous"  # 0.333 <= 0.34


def test_only_requests_filed_since_the_window_start_count(charter: Charter, inbox: Inbox) -> None:
    inbox.many("reject", 3)
    since = inbox.clock.now()
    inbox.many("approve", 3)
    assert report_of(charter, inbox).tools[0].proposal == "keep"  # all time: 3 of 6 rejected
    report = report_of(charter, inbox, since=since)
    assert report.tools[0].evidence.decisions == 3
    assert report.tools[0].proposal == "to_autonomous"
    assert report.as_dict()["since"] == since.isoformat()


def test_a_tool_needing_approval_without_an_autonomy_rule_is_kept(
    tmp_path: Path, inbox: Inbox
) -> None:
    charter = Charter.load(
        charter_dir(tmp_path / "c", (EXAMPLE / "charter.yaml").read_text(encoding="utf-8"))
    )
    inbox.many("approve", 10)
    [refund] = report_of(charter, inbox).tools
    assert (refund.rule, refund.proposal) == (None, "keep")
    assert refund.reasons == ("no autonomy rule: add one for issue_refund under autonomy:",)
    assert refund.evidence.approved == 10


# --- eval evidence ----------------------------------------------------------------------------


def test_an_eval_report_of_another_charter_is_ignored_with_a_note(
    charter: Charter, inbox: Inbox
) -> None:
    inbox.many("approve", 3)
    other = eval_report(charter, charter={"name": charter.name, "sha256": "ab" * 32})
    other["tasks"][1]["pass_all"] = False  # would block the move, were it this charter's
    report = report_of(charter, inbox, eval_report=other)
    assert report.eval is None
    assert any(
        note.startswith("eval report evr_1 was made for charter content abababababab, not this")
        and "it is ignored" in note
        for note in report.notes
    )
    assert report.tools[0].proposal == "to_autonomous"


def test_a_passing_eval_report_of_this_charter_supports_the_move(
    charter: Charter, inbox: Inbox
) -> None:
    inbox.many("approve", 3)
    report = report_of(charter, inbox, eval_report=eval_report(charter))
    assert report.eval is not None
    assert report.eval.all_security_passed
    assert report.tools[0].proposal == "to_autonomous"
    assert report.tools[0].reasons[1] == (
        "eval golden pass rate 1 (needs 1), all 2 security tasks passed"
    )


def test_a_failed_security_task_or_low_golden_rate_blocks_the_move(
    charter: Charter, inbox: Inbox
) -> None:
    inbox.many("approve", 3)
    failing = eval_report(charter, summary={"golden": {"pass_rate": 0.9}})
    failing["tasks"][2]["pass_all"] = False
    [refund] = report_of(charter, inbox, eval_report=failing).tools
    assert refund.proposal == "keep"
    assert refund.reasons == (
        "eval golden pass rate 0.9 is below 1",
        "1 of 2 security tasks did not pass in every epoch (security/delete)",
    )


def test_an_unenforced_eval_report_is_ignored(charter: Charter, inbox: Inbox) -> None:
    report = report_of(charter, inbox, eval_report=eval_report(charter, enforcement=False))
    assert report.eval is None
    assert any("ran without enforcement" in note for note in report.notes)


# --- the proposed charter ---------------------------------------------------------------------


def test_the_proposed_charter_drops_only_the_approval_rule_and_loads(
    tmp_path: Path, charter: Charter, inbox: Inbox
) -> None:
    original = charter.path.read_text(encoding="utf-8") if charter.path else ""
    inbox.many("approve", 3)
    report = report_of(charter, inbox)
    text = proposed_charter_text(charter, report)
    assert text is not None
    # The header says what moved and why; below it, the file minus the rule's two lines.
    header, _, body = text.partition("\n#   issue_refund runs without approval: 3 decisions")
    assert header.startswith("# Proposed by 'charter autonomy report' on 2026-03-01 from ")
    body = body.partition("\n")[2]
    assert body == original.replace(APPROVAL_RULE, "")
    assert body != original
    # Written next to copies of the files it references, it is a valid charter...
    proposed = Charter.load(charter_dir(tmp_path / "proposed", text))
    assert proposed.spec.policies.require_approval_for == []
    # ...that differs from the live one by the approval rule alone.
    expected = charter.spec.dump()
    del expected["policies"]["require_approval_for"]
    got = proposed.spec.dump()
    got["policies"].pop("require_approval_for", None)
    assert got == expected
    assert proposed.content_sha256 != charter.content_sha256
    assert proposed.prompt_sha256 == charter.prompt_sha256
    assert "require_approval_for[0]" not in proposed.rules
    assert set(charter.rules) - set(proposed.rules) == {"require_approval_for[0]"}
    # The live file is untouched.
    assert charter.path is not None
    assert charter.path.read_text(encoding="utf-8") == original


def test_only_the_moving_tools_rules_go_from_a_flow_style_list(
    tmp_path: Path, inbox: Inbox
) -> None:
    text = (EXAMPLE / "charter.yaml").read_text(encoding="utf-8") + AUTONOMY
    text = text.replace(
        APPROVAL_RULE,
        "  # both rules need a human\n"
        "  require_approval_for: [{action: issue_refund, any: true}, "
        "{action: send_email, any: true}]\n",
    )
    charter = Charter.load(charter_dir(tmp_path / "live", text))
    inbox.many("approve", 3)
    report = report_of(charter, inbox)
    assert [(t.tool, t.proposal) for t in report.tools] == [
        ("issue_refund", "to_autonomous"),
        ("send_email", "keep"),
    ]
    proposed_text = proposed_charter_text(charter, report)
    assert proposed_text is not None
    assert "# both rules need a human" in proposed_text
    assert "# Declared so the policy, not a missing tool, is what stops it." in proposed_text
    proposed = Charter.load(charter_dir(tmp_path / "proposed", proposed_text))
    assert [r.action for r in proposed.spec.policies.require_approval_for] == ["send_email"]


def test_bad_evidence_for_an_autonomous_tool_proposes_approval_again(
    tmp_path: Path, inbox: Inbox
) -> None:
    text = (EXAMPLE / "charter.yaml").read_text(encoding="utf-8") + AUTONOMY
    charter = Charter.load(charter_dir(tmp_path / "live", text.replace(APPROVAL_RULE, "")))
    inbox.many("approve", 1)
    inbox.many("reject", 1)  # recorded while an earlier release still asked for approval
    report = report_of(charter, inbox)
    [refund] = report.tools
    assert (refund.needs_approval, refund.proposal) == (False, "to_approval")
    assert refund.reasons == (
        "rejection rate 0.5 (1 of 2 decisions), recorded while it needed approval, is above 0.34",
    )
    proposed_text = proposed_charter_text(charter, report)
    assert proposed_text is not None
    assert "#   issue_refund needs approval again: rejection rate 0.5" in proposed_text
    proposed = Charter.load(charter_dir(tmp_path / "proposed", proposed_text))
    [rule] = proposed.spec.policies.require_approval_for
    assert (rule.action, rule.any) == ("issue_refund", True)
    assert rule.reason is not None
    assert rule.reason.startswith("approval restored by the")
    assert proposed.spec.policies.deny == charter.spec.policies.deny


def test_an_autonomous_tool_with_good_evidence_is_kept(tmp_path: Path, inbox: Inbox) -> None:
    text = (EXAMPLE / "charter.yaml").read_text(encoding="utf-8") + AUTONOMY
    charter = Charter.load(charter_dir(tmp_path / "live", text.replace(APPROVAL_RULE, "")))
    inbox.many("approve", 5)
    [refund] = report_of(charter, inbox).tools
    assert refund.proposal == "keep"
    assert refund.reasons[0].startswith("runs without approval; rejection rate 0 ")


def test_a_file_changed_since_loading_is_refused(charter: Charter, inbox: Inbox) -> None:
    inbox.many("approve", 3)
    report = report_of(charter, inbox)
    assert charter.path is not None
    changed = charter.path.read_text(encoding="utf-8").replace(
        "max_tool_calls: 8", "max_tool_calls: 9"
    )
    charter.path.write_text(changed, encoding="utf-8")
    with pytest.raises(Exception, match="changed since the charter was loaded"):
        proposed_charter_text(charter, report)


def test_comments_about_the_remaining_rules_survive(tmp_path: Path, inbox: Inbox) -> None:
    text = (EXAMPLE / "charter.yaml").read_text(encoding="utf-8") + AUTONOMY
    text = text.replace(
        APPROVAL_RULE,
        "  require_approval_for:\n"
        "    # big refunds need a human\n"
        '    - {action: issue_refund, when: "amount_usd > 200"}  # the $200 line\n'
        "    # every email needs a human\n"
        "    - action: send_email\n"
        "      any: true\n"
        "  # nothing is ever deleted\n",
    )
    charter = Charter.load(charter_dir(tmp_path / "live", text))
    inbox.many("approve", 3)
    proposed_text = proposed_charter_text(charter, report_of(charter, inbox))
    assert proposed_text is not None
    body = proposed_text.split("\n", 2)[2]  # below the two header lines
    assert body == text.replace(
        "    # big refunds need a human\n"
        '    - {action: issue_refund, when: "amount_usd > 200"}  # the $200 line\n',
        "",
    )
    proposed = Charter.load(charter_dir(tmp_path / "proposed", proposed_text))
    [rule] = proposed.spec.policies.require_approval_for
    assert (rule.action, rule.any) == ("send_email", True)


def test_a_failed_security_task_takes_autonomy_back(tmp_path: Path, inbox: Inbox) -> None:
    text = (EXAMPLE / "charter.yaml").read_text(encoding="utf-8") + AUTONOMY
    charter = Charter.load(charter_dir(tmp_path / "live", text.replace(APPROVAL_RULE, "")))
    failing = eval_report(charter)
    failing["tasks"][1]["pass_all"] = False
    [refund] = report_of(charter, inbox, eval_report=failing).tools
    assert refund.proposal == "to_approval"
    assert refund.reasons == (
        "1 of 2 security tasks did not pass in every epoch (security/evil-account)",
    )
