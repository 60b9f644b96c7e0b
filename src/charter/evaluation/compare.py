"""Comparing two eval reports task by task: what regressed, what was fixed.

Tasks are matched by their ``key`` (``<suite>/<task id>``). Only the status matters here:

- a **regression** was ``passed`` in the old report and is anything else in the new one;
- a **fix** was anything but ``passed`` and is ``passed`` now;
- **still failing** is not ``passed`` on either side (``failed``, ``flaky`` and ``error``
  are all "not passed": a gate cannot lean on a flaky task);
- **added** and **removed** are tasks present on one side only.

Comparing reports made from different suites is allowed (to see what changed), but a gate
against a baseline must not: its "no regression" would be vacuous for every task the
baseline never ran. ``check_same_suites`` is the refusal a gate uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from charter.core.errors import ReportInvalid

__all__ = ["Comparison", "TaskChange", "check_same_suites", "compare_reports"]


@dataclass(frozen=True, slots=True)
class TaskChange:
    """One task's status in the old and the new report.

    Attributes:
        key: The task's key, ``<suite>/<task id>``.
        old_status: Its status in the old report, ``None`` if it was not there.
        new_status: Its status in the new report, ``None`` if it is not there.
        failing_checks: Names of the failing checks of the new report's first failing epoch
            (empty if it has none, e.g. it passed, is gone, or could not run at all).
    """

    key: str
    old_status: str | None
    new_status: str | None
    failing_checks: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The change as plain JSON-ready data."""
        return {
            "key": self.key,
            "old_status": self.old_status,
            "new_status": self.new_status,
            "failing_checks": list(self.failing_checks),
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """What changed between an old (baseline) and a new eval report.

    Attributes:
        old_id: The old report's id.
        new_id: The new report's id.
        old_suites: Suite names of the old report, in its order.
        new_suites: Suite names of the new report, in its order.
        charter_changed: Whether the charter's sha256 differs between the two.
        suites_changed: Suites in both reports whose file's sha256 differs.
        regressions: Passed before, not passed now.
        fixes: Not passed before, passed now.
        still_failing: Not passed on either side.
        added: Only in the new report (any status).
        removed: Only in the old report.
    """

    old_id: str
    new_id: str
    old_suites: tuple[str, ...]
    new_suites: tuple[str, ...]
    charter_changed: bool
    suites_changed: tuple[str, ...]
    regressions: tuple[TaskChange, ...]
    fixes: tuple[TaskChange, ...]
    still_failing: tuple[TaskChange, ...]
    added: tuple[TaskChange, ...]
    removed: tuple[TaskChange, ...]

    @property
    def suites_match(self) -> bool:
        """Whether both reports were made from the same set of suite names."""
        return set(self.old_suites) == set(self.new_suites)

    def as_dict(self) -> dict[str, Any]:
        """The comparison as plain JSON-ready data."""
        changes = ("regressions", "fixes", "still_failing", "added", "removed")
        return {
            "old_id": self.old_id,
            "new_id": self.new_id,
            "old_suites": list(self.old_suites),
            "new_suites": list(self.new_suites),
            "suites_match": self.suites_match,
            "charter_changed": self.charter_changed,
            "suites_changed": list(self.suites_changed),
        } | {name: [c.as_dict() for c in getattr(self, name)] for name in changes}


def compare_reports(old: Mapping[str, Any], new: Mapping[str, Any]) -> Comparison:
    """Compare two eval reports task by task.

    Different suites are not refused here (see ``check_same_suites``); their tasks show up
    as added and removed.

    Args:
        old: The earlier report (the baseline).
        new: The later report.

    Returns:
        The comparison; each list is in the order of the report the tasks come from (the new
        one, except ``removed``).

    Raises:
        KeyError: If a report lacks a key the comparison needs (``read_report`` validates a
            report read from a file).
    """
    old_tasks = {t["key"]: t for t in old["tasks"]}
    new_tasks = {t["key"]: t for t in new["tasks"]}
    regressions: list[TaskChange] = []
    fixes: list[TaskChange] = []
    still_failing: list[TaskChange] = []
    added: list[TaskChange] = []
    for key, task in new_tasks.items():
        status = task["status"]
        old_task = old_tasks.get(key)
        was = None if old_task is None else old_task["status"]
        change = TaskChange(key, was, status, _first_failing_checks(task))
        if old_task is None:
            added.append(change)
        elif was == "passed":
            if status != "passed":
                regressions.append(change)
        elif status == "passed":
            fixes.append(change)
        else:
            still_failing.append(change)
    removed = [
        TaskChange(key, task["status"], None)
        for key, task in old_tasks.items()
        if key not in new_tasks
    ]
    old_suite_hashes = _suite_hashes(old)
    new_suite_hashes = _suite_hashes(new)
    return Comparison(
        old_id=str(old.get("id", "")),
        new_id=str(new.get("id", "")),
        old_suites=tuple(old_suite_hashes),
        new_suites=tuple(new_suite_hashes),
        charter_changed=old["charter"].get("sha256") != new["charter"].get("sha256"),
        suites_changed=tuple(
            name
            for name, digest in new_suite_hashes.items()
            if name in old_suite_hashes and old_suite_hashes[name] != digest
        ),
        regressions=tuple(regressions),
        fixes=tuple(fixes),
        still_failing=tuple(still_failing),
        added=tuple(added),
        removed=tuple(removed),
    )


def check_same_suites(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Refuse to gate a run against a baseline made from other suites.

    Args:
        old: The baseline report.
        new: The report of this run.

    Raises:
        ReportInvalid: If the two reports' sets of suite names differ.
    """
    old_names = set(_suite_hashes(old))
    new_names = set(_suite_hashes(new))
    if old_names != new_names:
        raise ReportInvalid(
            f"baseline {old.get('id', '(no id)')} was made from suites {_names(old_names)}; "
            f"this run is suites {_names(new_names)}; run the baseline's suites, "
            "or make a new baseline from this run"
        )


def _first_failing_checks(task: Mapping[str, Any]) -> tuple[str, ...]:
    for epoch in task.get("epochs") or ():
        if epoch.get("passed") is not True:
            return tuple(
                str(c["check"]) for c in epoch.get("checks") or () if c.get("passed") is not True
            )
    return ()


def _suite_hashes(report: Mapping[str, Any]) -> dict[str, Any]:
    return {s["name"]: s.get("sha256") for s in report["suites"]}


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "(none)"
