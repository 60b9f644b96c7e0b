"""Good charters load: bound tools, compiled rules, and a hash that names exactly what governs."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from charter.contract.loader import Charter, check_charter, load_charter
from tests.contract.helpers import EXAMPLE_CHARTER, GOOD_CHARTER


def test_the_example_charter_is_valid() -> None:
    assert check_charter(EXAMPLE_CHARTER) == []


def test_the_example_charter_compiles_every_kind_of_rule() -> None:
    charter = Charter.load(EXAMPLE_CHARTER)
    assert charter.name == "support-triage"
    for rule_id in (
        "tools.issue_refund",
        "require_approval_for[0]",
        "deny[0]",
        "untrusted_content.send_email",
        "untrusted_content.issue_refund",
        "constraints.send_email.to.domain_in",
        "prod-refunds-need-support-role",
        "no-large-refunds-from-untrusted-content",
    ):
        assert rule_id in charter.rules, rule_id
    assert charter.rules["require_approval_for[0]"].effect == "require_approval"
    assert charter.rules["deny[0]"].effect == "deny"
    cedar_lines = (EXAMPLE_CHARTER.parent / "policies" / "extra.cedar").read_text().splitlines()
    starts_on = cedar_lines.index('@id("prod-refunds-need-support-role")') + 1
    assert charter.rules["prod-refunds-need-support-role"].source == (
        f"policies/extra.cedar:{starts_on}"
    )
    declared_on = EXAMPLE_CHARTER.read_text().splitlines().index("  issue_refund:") + 1
    assert charter.rules["tools.issue_refund"].source == f"{EXAMPLE_CHARTER}:{declared_on}"


def test_the_content_hash_is_stable_across_loads() -> None:
    first, second = load_charter(EXAMPLE_CHARTER), load_charter(EXAMPLE_CHARTER)
    assert first.content_sha256 == second.content_sha256
    assert len(first.content_sha256) == 64


def test_the_content_hash_ignores_comments_and_layout(tmp_path: Path) -> None:
    copy = _copy_fixture(tmp_path)
    original = load_charter(copy).content_sha256
    text = copy.read_text(encoding="utf-8")
    copy.write_text("# a new comment\n\n" + text.replace("{effect: read}", "{ effect: read }"))
    assert load_charter(copy).content_sha256 == original


def test_the_content_hash_changes_with_the_prompt_and_the_cedar(tmp_path: Path) -> None:
    copy = _copy_fixture(tmp_path)
    original = load_charter(copy).content_sha256
    prompt = copy.parent / "prompts" / "orders.md"
    prompt.write_text(prompt.read_text() + "Be brief.\n")
    after_prompt = load_charter(copy).content_sha256
    cedar = copy.parent / "policies" / "extra.cedar"
    cedar.write_text(cedar.read_text().replace("cancelled", "canceled"))
    after_cedar = load_charter(copy).content_sha256
    assert len({original, after_prompt, after_cedar}) == 3


def test_the_fixture_charter_binds_its_tools_and_reads_its_files() -> None:
    charter = load_charter(GOOD_CHARTER)
    assert sorted(charter.tools) == [
        "delete_order",
        "get_order",
        "refund",
        "revert_order",
        "send_email",
        "update_order",
    ]
    assert charter.prompt_text.startswith("You handle order changes")
    assert charter.tools["send_email"].is_async
    assert charter.spec.tool_timeout("refund") == 4  # the budget's per-tool limit is lower
    assert charter.tool_args["refund"]["count"] == ("Long", False)
    assert charter.rules["policies/extra.cedar:9"].effect == "require_approval"
    assert charter.rules["tools.send_email.roles"].effect == "deny"
    assert charter.rules["untrusted_content.refund"].effect == "deny"


def test_amounts_reach_the_spec_as_exact_decimals() -> None:
    charter = load_charter(GOOD_CHARTER)
    # Decimal(0.6) from a binary float would be 0.59999999999999997779...
    assert charter.spec.budgets.max_usd_per_run == Decimal("0.6")
    assert charter.spec.tools["refund"].constraints["amount_usd"].min == Decimal("0.01")


def test_a_charter_loads_from_another_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Referenced files are relative to the charter, never to the current directory.
    monkeypatch.chdir(tmp_path)
    assert load_charter(GOOD_CHARTER).name == "orders"


def _copy_fixture(tmp_path: Path) -> Path:
    target = tmp_path / "orders"
    shutil.copytree(GOOD_CHARTER.parent, target)
    return target / "charter.yaml"
