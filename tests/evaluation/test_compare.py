"""Comparing reports: regressions, fixes, still failing, added, removed; suites and charter."""

from __future__ import annotations

import dataclasses
import json

import pytest

from charter.core.errors import ReportInvalid
from charter.evaluation.compare import Comparison, TaskChange, check_same_suites, compare_reports
from tests.evaluation.report_samples import SUITE_SHA, check, epoch, report, security_task, task


def failing(*names: str) -> list[dict[str, object]]:
    """One epoch failing the named checks (with a passing check beside them)."""
    return [epoch(0, False, checks=[check("outcome"), *(check(n, False) for n in names)])]


OLD = report(
    [
        task("stays-green"),
        task("regresses"),
        task("gets-fixed", failing("reply_sent")),
        task("still-red", failing("no_refund")),
        task("flaky-then-error", [epoch(0), epoch(1, False)]),
        task("dropped"),
    ],
    report_id="evr_old",
)
NEW = report(
    [
        task("stays-green"),
        task(
            "regresses",
            [
                epoch(0),
                epoch(1, False, checks=[check("a", False), check("b", False)]),
                epoch(2, False, checks=[check("c", False)]),
            ],
        ),
        task("gets-fixed"),
        task("still-red", failing("no_refund", "tone")),
        task("flaky-then-error", [epoch(0, False, error="boom")]),
        task("brand-new", failing("x")),
    ],
    report_id="evr_new",
)


def test_classifies_every_task() -> None:
    result = compare_reports(OLD, NEW)
    assert result.regressions == (
        # first failing epoch is epoch 1: its failing checks, not epoch 2's
        TaskChange("desk-golden/regresses", "passed", "flaky", ("a", "b")),
    )
    assert result.fixes == (TaskChange("desk-golden/gets-fixed", "failed", "passed", ()),)
    assert result.still_failing == (
        TaskChange("desk-golden/still-red", "failed", "failed", ("no_refund", "tone")),
        TaskChange("desk-golden/flaky-then-error", "flaky", "error", ()),
    )
    assert result.added == (TaskChange("desk-golden/brand-new", None, "failed", ("x",)),)
    assert result.removed == (TaskChange("desk-golden/dropped", "passed", None, ()),)
    assert result.old_id == "evr_old"
    assert result.new_id == "evr_new"


def test_a_task_passing_on_both_sides_is_in_no_list() -> None:
    result = compare_reports(OLD, NEW)
    listed = {
        c.key
        for group in (result.regressions, result.fixes, result.still_failing, result.added)
        for c in group
    }
    assert "desk-golden/stays-green" not in listed


@pytest.mark.parametrize("new_status", ["failed", "flaky", "error"])
def test_every_kind_of_not_passing_after_passing_is_a_regression(new_status: str) -> None:
    old = report([task("t")])
    new = report([task("t", [epoch(0, False)], status=new_status)])
    (change,) = compare_reports(old, new).regressions
    assert (change.old_status, change.new_status) == ("passed", new_status)


def test_identical_reports_have_no_change() -> None:
    result = compare_reports(OLD, OLD)
    assert result.regressions == result.fixes == result.added == result.removed == ()
    assert [c.key for c in result.still_failing] == [
        "desk-golden/gets-fixed",
        "desk-golden/still-red",
        "desk-golden/flaky-then-error",
    ]
    assert result.charter_changed is False
    assert result.suites_changed == ()
    assert result.suites_match is True


def test_added_tasks_include_passing_ones() -> None:
    result = compare_reports(report([task("a")]), report([task("a"), task("b")]))
    assert result.added == (TaskChange("desk-golden/b", None, "passed", ()),)


def test_charter_change_is_noted() -> None:
    result = compare_reports(report(charter_sha="aa" * 32), report(charter_sha="bb" * 32))
    assert result.charter_changed is True


def test_changed_suite_file_is_noted() -> None:
    new = report()
    new["suites"][0]["sha256"] = "ee" * 32
    assert compare_reports(report(), new).suites_changed == ("desk-golden",)
    assert report()["suites"][0]["sha256"] == SUITE_SHA


def test_different_suites_are_compared_but_do_not_match() -> None:
    old = report([task("a")])
    new = report([task("a"), security_task("inject")])
    result = compare_reports(old, new)
    assert result.suites_match is False
    assert result.old_suites == ("desk-golden",)
    assert result.new_suites == ("desk-golden", "desk-security")
    assert [c.key for c in result.added] == ["desk-security/inject"]


def test_suites_in_another_order_match() -> None:
    old = report([task("a"), security_task("b")])
    new = report([security_task("b"), task("a")])
    assert compare_reports(old, new).suites_match is True
    check_same_suites(old, new)


def test_check_same_suites_refuses_a_baseline_of_other_suites() -> None:
    old = report([task("a")], report_id="evr_base")
    new = report([task("a"), security_task("inject")])
    with pytest.raises(ReportInvalid) as caught:
        check_same_suites(old, new)
    assert str(caught.value) == (
        "baseline evr_base was made from suites desk-golden; this run is suites "
        "desk-golden, desk-security; run the baseline's suites, or make a new baseline "
        "from this run"
    )


def test_check_same_suites_with_no_suites_on_one_side() -> None:
    with pytest.raises(ReportInvalid, match=r"made from suites \(none\); this run is suites"):
        check_same_suites(report([]), report())


def test_as_dict_is_json_ready() -> None:
    result = compare_reports(OLD, NEW)
    data = json.loads(json.dumps(result.as_dict()))
    assert data["regressions"] == [
        {
            "key": "desk-golden/regresses",
            "old_status": "passed",
            "new_status": "flaky",
            "failing_checks": ["a", "b"],
        }
    ]
    assert data["removed"][0]["new_status"] is None
    assert [c["key"] for c in data["still_failing"]] == [
        "desk-golden/still-red",
        "desk-golden/flaky-then-error",
    ]
    assert data["suites_match"] is True
    assert data["charter_changed"] is False
    assert (data["old_id"], data["new_id"]) == ("evr_old", "evr_new")
    assert set(data) == {
        "old_id",
        "new_id",
        "old_suites",
        "new_suites",
        "suites_match",
        "charter_changed",
        "suites_changed",
        "regressions",
        "fixes",
        "still_failing",
        "added",
        "removed",
    }


def test_results_are_frozen() -> None:
    result = compare_reports(OLD, NEW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.regressions = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.fixes[0].new_status = "failed"  # type: ignore[misc]
    assert isinstance(result, Comparison)


def test_missing_key_is_a_key_error() -> None:
    broken = report()
    del broken["tasks"][0]["status"]
    with pytest.raises(KeyError, match="status"):
        compare_reports(report(), broken)
