"""``diff_releases``: what changed between two releases, and which changes loosen the charter.

Every release here is built from a real charter (a copy of the support-desk example, edited
the way its author would), so the diff is tested against content the loader really writes.
"""

from __future__ import annotations

import copy
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from charter.contract.loader import Charter
from charter.governance.diff import Change, ReleaseDiff, diff_releases
from charter.governance.releases import Release

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_desk"


class Desk:
    """A copy of the example charter in a tmp dir, edited by exact text replacement."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._count = 0

    def release(self, *edits: tuple[str, str], file: str = "charter.yaml") -> Release:
        """A release of the example with ``edits`` (old text, new text) applied to ``file``."""
        self._count += 1
        folder = self.root / f"v{self._count}"
        shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
        target = folder / file
        text = target.read_text(encoding="utf-8")
        for old, new in edits:
            assert old in text, f"{old!r} is not in {file}: the example changed"
            text = text.replace(old, new, 1)
        target.write_text(text, encoding="utf-8")
        charter = Charter.load(folder / "charter.yaml")
        return make_release(charter.content_sha256, json.loads(charter.content), self._count)


def make_release(release_id: str, content: dict[str, Any], version: int) -> Release:
    return Release(
        id=release_id,
        charter_name="support-triage",
        version=version,
        author="a",
        message="m",
        created_at=datetime.now(UTC),
        bundle={"content": content, "files": {}, "charter_file": "charter.yaml"},
    )


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk(tmp_path)


def only(diff: ReleaseDiff, section: str) -> Change:
    """The one change of the diff, which must be in ``section``."""
    changes = diff.changes
    assert len(changes) == 1, [c.line() for c in changes]
    assert changes[0].section == section
    return changes[0]


def by_path(diff: ReleaseDiff, path: str) -> Change:
    found = [c for c in diff.changes if c.path == path]
    assert len(found) == 1, [c.line() for c in diff.changes]
    return found[0]


def test_identical_content_is_the_same(desk: Desk) -> None:
    a, b = desk.release(), desk.release(("# The support", "# Comments do not count. The support"))
    assert a.id == b.id
    diff = diff_releases(a, b)
    assert diff.same
    assert diff.changes == ()
    assert diff.prompt_diff == diff.cedar_diff == ()
    assert diff.lines()[1:] == ["no changes"]


def test_different_ids_with_equal_content_are_the_same(desk: Desk) -> None:
    a = desk.release()
    b = make_release("f" * 64, copy.deepcopy(a.content), 2)
    assert diff_releases(a, b).same


def test_a_changed_prompt_shows_the_line(desk: Desk) -> None:
    old = desk.release()
    heading = "## How to work a ticket\n"
    new = desk.release((heading, heading + "0. Never promise a refund before it is issued.\n"),
                       file="prompts/support.md")  # fmt: skip
    diff = diff_releases(old, new)
    change = only(diff, "prompt")
    assert (change.path, change.kind, change.risk) == ("prompt", "changed", "")
    assert change.old != change.new  # the two texts' hashes
    assert "+0. Never promise a refund before it is issued." in diff.prompt_diff
    assert diff.prompt_diff[0] == "--- support-triage@v1/prompt"
    assert " ## How to work a ticket" in diff.prompt_diff  # context around the change
    assert not diff.same
    assert "+0. Never promise a refund before it is issued." in diff.lines()
    assert diff.cedar_diff == ()


@pytest.mark.parametrize(
    ("threshold", "risk"),
    [("500", "loosened"), ("100", "tightened"), ("200.00", "")],
)
def test_an_approval_threshold_is_one_changed_rule(desk: Desk, threshold: str, risk: str) -> None:
    old = desk.release()
    new = desk.release(('when: "amount_usd > 200"', f'when: "amount_usd > {threshold}"'))
    change = only(diff_releases(old, new), "policies")
    assert change.path == "policies.require_approval_for[0]"
    assert change.kind == "changed"
    assert change.old["when"] == "amount_usd > 200"
    assert change.new["when"] == f"amount_usd > {threshold}"
    assert change.risk == risk
    assert f"amount_usd > 200 -> when amount_usd > {threshold}" in change.summary


@pytest.mark.parametrize(
    ("condition", "risk"),
    [
        ("amount_usd >= 200", "tightened"),  # 200 itself now needs approval
        ("args.amount_usd > 300", "loosened"),
        ("amount_usd < 200", ""),  # the other direction: not comparable
        ('amount_usd > 200 and environment == \\"prod\\"', ""),  # not the understood shape
    ],
)
def test_conditions_of_other_shapes(desk: Desk, condition: str, risk: str) -> None:
    old = desk.release()
    new = desk.release(('when: "amount_usd > 200"', f'when: "{condition}"'))
    assert only(diff_releases(old, new), "policies").risk == risk


def test_an_approval_rule_becoming_unconditional_tightens(desk: Desk) -> None:
    old = desk.release()
    new = desk.release(('when: "amount_usd > 200"', "any: true"))
    change = only(diff_releases(old, new), "policies")
    assert change.risk == "tightened"
    assert "when amount_usd > 200 -> always" in change.summary
    assert only(diff_releases(new, old), "policies").risk == "loosened"


def test_a_removed_deny_rule_loosens(desk: Desk) -> None:
    rule = "    - {action: delete_record, any: true, reason: "
    rule += '"the support agent never deletes records"}\n'
    old = desk.release()
    new = desk.release(("  deny:\n" + rule, ""))
    diff = diff_releases(old, new)
    change = by_path(diff, "policies.deny[0]")
    assert (change.kind, change.risk, change.new) == ("removed", "loosened", None)
    assert change.old["action"] == "delete_record"
    assert change in diff.loosened()
    assert "- policies.deny[0] delete_record (loosened)" in diff.lines()
    # And back: the rule added again tightens.
    assert by_path(diff_releases(new, old), "policies.deny[0]").risk == "tightened"


def test_reordered_rules_are_no_change_but_reasons_are(desk: Desk) -> None:
    first = "    - {action: issue_refund, when: "
    first += '"amount_usd > 200", reason: "refunds over $200 need a human"}'
    second = '    - {action: send_email, any: true, reason: "every email"}'
    old = desk.release((first, f"{first}\n{second}"))
    new = desk.release((first, f"{second}\n{first}"))
    assert [c.path for c in diff_releases(old, new).policies] == []
    edited = desk.release((first, f"{first}\n{second.replace('every email', 'all mail')}"))
    change = only(diff_releases(old, edited), "policies")
    assert (change.path, change.risk) == ("policies.require_approval_for[1]", "")
    assert "reason 'every email' -> 'all mail'" in change.summary


@pytest.mark.parametrize(
    ("before", "after", "path", "risk"),
    [
        ("max_tool_calls: 8", "max_tool_calls: 12", "budgets.max_tool_calls", "loosened"),
        ("max_tool_calls: 8", "max_tool_calls: 4", "budgets.max_tool_calls", "tightened"),
        ("max_usd_per_run: 0.60", "max_usd_per_run: 0.75", "budgets.max_usd_per_run", "loosened"),
        (
            "overall_seconds: 25",
            "overall_seconds: 10",
            "budgets.timeouts.overall_seconds",
            "tightened",
        ),
        ("on_exceed: escalate", "on_exceed: fail", "budgets.on_exceed", ""),
    ],
)
def test_budgets(desk: Desk, before: str, after: str, path: str, risk: str) -> None:
    old, new = desk.release(), desk.release((before, after))
    change = only(diff_releases(old, new), "budgets")
    assert (change.path, change.kind, change.risk) == (path, "changed", risk)


def test_a_removed_budget_limit_loosens(desk: Desk) -> None:
    old, new = desk.release(), desk.release(("  max_tool_calls: 8\n", ""))
    diff = diff_releases(old, new)
    change = only(diff, "budgets")
    assert (change.kind, change.old, change.risk) == ("removed", 8, "loosened")
    assert "- budgets.max_tool_calls 8 (loosened)" in diff.lines()
    assert (
        "~ budgets.max_tool_calls: 8 -> 12 (loosened)"
        in diff_releases(old, desk.release(("max_tool_calls: 8", "max_tool_calls: 12"))).lines()
    )


def test_a_tool_added_and_removed(desk: Desk) -> None:
    without = desk.release(("  list_customers: {effect: read}\n", ""))
    full = desk.release()
    added = only(diff_releases(without, full), "tools")
    assert (added.path, added.kind, added.risk) == ("tools.list_customers", "added", "loosened")
    assert added.new["effect"] == "read"
    removed = only(diff_releases(full, without), "tools")
    assert (removed.kind, removed.risk) == ("removed", "tightened")
    assert "+ tools.list_customers read (loosened)" in diff_releases(without, full).lines()
    assert "- tools.list_customers read (tightened)" in diff_releases(full, without).lines()


@pytest.mark.parametrize(
    ("before", "after", "path", "risk"),
    [
        ("max: 5000", "max: 10000", "tools.issue_refund.constraints.amount_usd.max", "loosened"),
        ("max: 5000", "max: 1000", "tools.issue_refund.constraints.amount_usd.max", "tightened"),
        ("min: 0.01", "min: 0.001", "tools.issue_refund.constraints.amount_usd.min", "loosened"),
        (
            "template: {in: [refund_confirmation, ticket_update]}",
            "template: {in: [refund_confirmation, ticket_update, customer_list]}",
            "tools.send_email.constraints.template.in",
            "loosened",
        ),
        (
            "template: {in: [refund_confirmation, ticket_update]}",
            "template: {in: [refund_confirmation]}",
            "tools.send_email.constraints.template.in",
            "tightened",
        ),
        (
            'account: {pattern: "^[A-Za-z0-9-]{3,40}$"}',
            'account: {pattern: "^[A-Za-z0-9-]{3,60}$"}',
            "tools.issue_refund.constraints.account.pattern",
            "",
        ),
    ],
)
def test_constraints(desk: Desk, before: str, after: str, path: str, risk: str) -> None:
    old, new = desk.release(), desk.release((before, after))
    change = only(diff_releases(old, new), "tools")
    assert (change.path, change.kind, change.risk) == (path, "changed", risk)


def test_a_widened_constraint_reads_old_to_new(desk: Desk) -> None:
    old, new = desk.release(), desk.release(("max: 5000", "max: 10000"))
    diff = diff_releases(old, new)
    line = "~ tools.issue_refund.constraints.amount_usd.max: 5000 -> 10000 (loosened)"
    assert line in diff.lines()
    assert [c.path for c in diff.loosened()] == ["tools.issue_refund.constraints.amount_usd.max"]
    # The compiled Cedar rule moves with it; the raw rules do not, so no Cedar rule change.
    assert any("10000" in line for line in diff.cedar_diff)


def test_a_removed_constraint_loosens(desk: Desk) -> None:
    old = desk.release()
    new = desk.release(('      account: {pattern: "^[A-Za-z0-9-]{3,40}$"}\n', ""))
    change = only(diff_releases(old, new), "tools")
    assert (change.path, change.kind, change.risk) == (
        "tools.issue_refund.constraints.account.pattern",
        "removed",
        "loosened",
    )


@pytest.mark.parametrize(
    ("before", "after", "path", "risk"),
    [
        ("effect: irreversible\n    credential", "effect: write\n    credential",
         "tools.issue_refund.effect", "loosened"),
        ("read_inbox: {effect: read, output: untrusted}", "read_inbox: {effect: read}",
         "tools.read_inbox.output", "loosened"),
        ("lookup_customer: {effect: read, output: {untrusted_fields: [notes]}}",
         "lookup_customer: {effect: read, output: {untrusted_fields: [notes, email]}}",
         "tools.lookup_customer.output", "tightened"),
        ("    defer: until_run_succeeds\n", "", "tools.send_email.defer", "loosened"),
        ("timeout_seconds: 6", "timeout_seconds: 60", "tools.issue_refund.timeout_seconds",
         "loosened"),
        ("credential: payments-refund", "credential: payments-other",
         "tools.issue_refund.credential", ""),
    ],
)  # fmt: skip
def test_tool_declarations(desk: Desk, before: str, after: str, path: str, risk: str) -> None:
    old, new = desk.release(), desk.release((before, after))
    change = only(diff_releases(old, new), "tools")
    assert (change.path, change.risk) == (path, risk)


def test_argument_schema_changes(desk: Desk) -> None:
    old = desk.release()
    content = copy.deepcopy(old.content)
    refund = content["tools"]["issue_refund"]
    refund["properties"]["amount_usd"]["type"] = "string"
    refund["properties"]["note"] = {"type": "string", "description": "why"}
    del refund["properties"]["ticket_id"]
    refund["required"] = ["amount_usd"]
    refund["properties"]["account"]["description"] = "where the money goes"
    diff = diff_releases(old, make_release("2" * 64, content, 2))
    assert {(c.path, c.kind) for c in diff.changes} == {
        ("tools.issue_refund.args.amount_usd.type", "changed"),
        ("tools.issue_refund.args.note", "added"),
        ("tools.issue_refund.args.ticket_id", "removed"),
        ("tools.issue_refund.args.account.required", "changed"),
        ("tools.issue_refund.args.account.description", "changed"),
    }
    assert by_path(diff, "tools.issue_refund.args.amount_usd.type").summary == "number -> string"
    assert by_path(diff, "tools.issue_refund.args.note").summary == "string, optional"
    assert by_path(diff, "tools.issue_refund.args.account.required").new is False


def test_taint_sinks(desk: Desk) -> None:
    old = desk.release()
    dropped = desk.release(("      - send_email\n", ""))
    change = only(diff_releases(old, dropped), "policies")
    assert (change.path, change.kind, change.risk) == (
        "policies.untrusted_content.sinks.send_email",
        "removed",
        "loosened",
    )
    widened = desk.release(("args: [account]", "args: [account, amount_usd]"))
    change = only(diff_releases(old, widened), "policies")
    assert (change.path, change.risk) == (
        "policies.untrusted_content.sinks.issue_refund",
        "tightened",
    )
    assert change.summary == "arguments account -> arguments account, amount_usd"
    everything = desk.release(("{tool: issue_refund, args: [account]}", "issue_refund"))
    assert only(diff_releases(everything, old), "policies").risk == "loosened"
    denied = desk.release(("on_tainted_args: require_approval", "on_tainted_args: deny"))
    change = only(diff_releases(old, denied), "policies")
    assert (change.path, change.risk) == ("policies.untrusted_content.on_tainted_args", "tightened")
    assert only(diff_releases(denied, old), "policies").risk == "loosened"


def test_on_deny_continue_loosens(desk: Desk) -> None:
    old = desk.release()
    new = desk.release(
        ("  cedar: policies/extra.cedar", "  cedar: policies/extra.cedar\n  on_deny: continue")
    )
    change = only(diff_releases(old, new), "policies")
    assert (change.path, change.risk) == ("policies.on_deny", "loosened")


def test_a_removed_cedar_rule_is_in_the_cedar_diff_and_loosens(desk: Desk) -> None:
    old = desk.release()
    text = (EXAMPLE / "policies" / "extra.cedar").read_text(encoding="utf-8")
    start = text.index("// Approval is not enough")
    new = desk.release((text[start:], ""), file="policies/extra.cedar")
    diff = diff_releases(old, new)
    assert '-@id("no-large-refunds-from-untrusted-content")' in diff.cedar_diff
    assert not any(line.startswith("+") and not line.startswith("+++") for line in diff.cedar_diff)
    change = only(diff, "policies")
    assert change.path == "policies.cedar[no-large-refunds-from-untrusted-content]"
    assert (change.kind, change.risk, change.summary) == ("removed", "loosened", "forbid")
    lines = diff.lines()
    assert "- policies.cedar[no-large-refunds-from-untrusted-content] forbid (loosened)" in lines
    assert "Cedar diff:" in lines
    assert '-@id("no-large-refunds-from-untrusted-content")' in lines


def test_a_cedar_rule_whose_default_id_moved_is_a_rename(desk: Desk) -> None:
    rule = (
        '\nforbid (principal, action == Charter::Action::"send_email", resource)\n'
        'when { context.environment == "dev" };\n'
    )
    cedar = "policies/extra.cedar"
    text = (EXAMPLE / cedar).read_text(encoding="utf-8")
    old = desk.release((text, text + rule), file=cedar)
    new = desk.release((text, "// one more line above\n" + text + rule), file=cedar)
    diff = diff_releases(old, new)
    [change] = [c for c in diff.policies if c.path.startswith("policies.cedar[")]
    assert change.kind == "changed"
    assert change.risk == ""
    assert change.summary.startswith("renamed from policies/extra.cedar:")
    assert diff.loosened() == ()


def test_other_top_level_keys(desk: Desk) -> None:
    old = desk.release()
    new = desk.release(
        ('objective: ">= 0.95", window: 7d', 'objective: ">= 0.99", window: 7d'),
        ("slos:", "concurrency: {max_runs: 4}\n\nslos:"),
    )
    diff = diff_releases(old, new)
    assert [(c.section, c.path, c.kind) for c in diff.changes] == [
        ("other", "concurrency", "changed"),
        ("other", "slos", "changed"),
    ]
    assert '"objective": ">= 0.99"' in by_path(diff, "slos").summary


def test_model_keys(desk: Desk) -> None:
    old = desk.release()
    new = desk.release(("max_output_tokens: 512", "max_output_tokens: 1024"))
    change = only(diff_releases(old, new), "model")
    assert (change.path, change.old, change.new) == ("model.max_output_tokens", 512, 1024)


def test_lines_and_as_dict_cover_every_section(desk: Desk) -> None:
    old = desk.release(("  list_customers: {effect: read}\n", ""))
    new = desk.release(
        ('when: "amount_usd > 200"', 'when: "amount_usd > 500"'),
        ("max_tool_calls: 8", "max_tool_calls: 12"),
        ("max: 5000", "max: 10000"),
        ("name: gullible-support-agent", "name: gullible-support-agent-2"),
        ("description: >-", "description: >-\n  Reviewed."),
    )
    new = make_release(new.id, {**new.content, "prompt": new.content["prompt"] + "Be brief.\n"}, 9)
    diff = diff_releases(old, new)
    assert {c.section for c in diff.changes} == {
        "prompt", "model", "tools", "policies", "budgets", "other"
    }  # fmt: skip
    lines = diff.lines()
    assert lines[0] == f"support-triage@v1 ({old.id[:12]}) -> support-triage@v9 ({new.id[:12]})"
    for expected in (
        "~ prompt: +1 -0 lines (see the prompt diff)",
        "~ model.name: gullible-support-agent -> gullible-support-agent-2",
        "+ tools.list_customers read (loosened)",
        "~ tools.issue_refund.constraints.amount_usd.max: 5000 -> 10000 (loosened)",
        "~ budgets.max_tool_calls: 8 -> 12 (loosened)",
        "+Be brief.",
        "prompt diff:",
        "Cedar diff:",
    ):
        assert expected in lines, expected
    assert any(
        line.startswith("~ policies.require_approval_for[0]: issue_refund when amount_usd > 200")
        and line.endswith("(loosened)")
        for line in lines
    )
    assert any(line.startswith("~ description: ") for line in lines)
    assert lines.index("prompt diff:") < lines.index("Cedar diff:")
    assert len(diff.loosened()) == 4

    data = json.loads(json.dumps(diff.as_dict()))
    assert data["same"] is False
    assert data["old"]["id"] == old.id
    assert set(data["changes"]) == {"prompt", "model", "tools", "policies", "budgets", "other"}
    assert "budgets.max_tool_calls" in data["loosened"]
    assert data["changes"]["budgets"][0] == {
        "section": "budgets",
        "path": "budgets.max_tool_calls",
        "kind": "changed",
        "old": 8,
        "new": 12,
        "summary": "8 -> 12",
        "risk": "loosened",
    }
    assert data["prompt_diff"] == list(diff.prompt_diff)
