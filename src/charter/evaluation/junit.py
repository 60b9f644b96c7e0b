"""An eval report as JUnit XML, so CI systems show eval tasks as test cases.

One ``<testsuite>`` per eval suite, one ``<testcase>`` per task (``classname`` the suite,
``name`` the task id). A ``failed`` task is a ``<failure type="failed">`` listing every
failing check of every failing epoch; a ``flaky`` one (passed some epochs, not all) a
``<failure type="flaky">``; a task that could not run an ``<error>``; a passed one has
neither. A flaky task is a failure rather than a pass because the gate treats it as one:
pass^k, not pass@k, is what the charter promises.

The tree is built with ElementTree, which escapes markup; text a task carries (payloads are
hostile on purpose) is also stripped of characters XML 1.0 cannot hold at all (NUL and other
control characters, lone surrogates), which escaping cannot fix and which would make CI's
parser reject the whole file.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # builds only; nothing here parses XML
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

__all__ = ["junit_xml", "xml_text"]

# Everything outside XML 1.0's Char production (https://www.w3.org/TR/xml/#charsets).
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    """``value`` as text XML 1.0 can carry: characters it cannot hold are dropped."""
    return _NOT_XML_CHAR.sub("", str(value))


def junit_xml(report: Mapping[str, Any]) -> str:
    """Render an eval report (the JSON report's shape) as a JUnit XML document.

    Args:
        report: The eval report.

    Returns:
        The document, with an XML declaration, to be written as UTF-8.

    Raises:
        KeyError: If the report lacks a key the rendering needs.
    """
    tasks: Sequence[Mapping[str, Any]] = report["tasks"]
    root = ET.Element("testsuites", {"name": "charter eval"})
    _set_counts(root, tasks)
    root.set("time", _seconds(float(report.get("duration_seconds") or 0.0)))
    for suite_name, suite_tasks in _by_suite(report).items():
        suite = ET.SubElement(root, "testsuite", {"name": xml_text(suite_name)})
        _set_counts(suite, suite_tasks)
        suite.set("skipped", "0")
        suite.set("time", _seconds(sum(_task_seconds(t) for t in suite_tasks)))
        _add_properties(suite, report)
        for task in suite_tasks:
            _add_testcase(suite, suite_name, task)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _by_suite(report: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """Tasks grouped by suite, suites in the report's order; a task never goes missing."""
    groups: dict[str, list[Mapping[str, Any]]] = {s["name"]: [] for s in report["suites"]}
    for task in report["tasks"]:
        groups.setdefault(task["suite"], []).append(task)
    return groups


def _set_counts(element: ET.Element, tasks: Sequence[Mapping[str, Any]]) -> None:
    statuses = [t["status"] for t in tasks]
    element.set("tests", str(len(statuses)))
    element.set("failures", str(sum(s in ("failed", "flaky") for s in statuses)))
    element.set("errors", str(statuses.count("error")))


def _add_properties(suite: ET.Element, report: Mapping[str, Any]) -> None:
    charter = report["charter"]
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("charter.name", charter["name"]),
        ("charter.sha256", charter["sha256"]),
        ("enforcement", "true" if report["enforcement"] is True else "false"),
        ("epochs", report["epochs"]),
        ("seed", report["seed"]),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": xml_text(value)})


def _add_testcase(suite: ET.Element, suite_name: str, task: Mapping[str, Any]) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        {
            "classname": xml_text(suite_name),
            "name": xml_text(task["id"]),
            "time": _seconds(_task_seconds(task)),
        },
    )
    status = task["status"]
    epochs: Sequence[Mapping[str, Any]] = task["epochs"]
    if status == "failed":
        names = _failing_check_names(epochs)
        message = f"passed {task['passes']} of {task['runs']} epochs"
        if names:
            message += "; failing checks: " + ", ".join(names)
        _add_problem(case, "failure", "failed", message, _failure_text(epochs))
    elif status == "flaky":
        message = f"passed {task['passes']} of {task['runs']} epochs"
        _add_problem(case, "failure", "flaky", message, _failure_text(epochs))
    elif status == "error":
        errors = [str(e["error"]) for e in epochs if e.get("error")]
        message = errors[0] if errors else "the task could not run"
        text = "\n".join(f"epoch {e['epoch']}: {e['error']}" for e in epochs if e.get("error"))
        _add_problem(case, "error", "error", message, text)


def _add_problem(case: ET.Element, tag: str, kind: str, message: str, text: str) -> None:
    element = ET.SubElement(case, tag, {"message": xml_text(message), "type": kind})
    element.text = xml_text(text)


def _failing_check_names(epochs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of the checks that failed in any epoch, each once, in order of appearance."""
    names: dict[str, None] = {}
    for epoch in epochs:
        for check in epoch.get("checks") or ():
            if not check["passed"]:
                names.setdefault(str(check["check"]), None)
    return list(names)


def _failure_text(epochs: Iterable[Mapping[str, Any]]) -> str:
    lines: list[str] = []
    for epoch in epochs:
        if epoch["passed"]:
            continue
        lines.append(
            f"epoch {epoch['epoch']} (seed {epoch.get('seed')}): outcome {epoch.get('outcome')}"
        )
        if epoch.get("error"):
            lines.append(f"  error: {epoch['error']}")
        for check in epoch.get("checks") or ():
            if not check["passed"]:
                lines.append(f"  {check['check']}: {check.get('detail', '')}")
    return "\n".join(lines)


def _task_seconds(task: Mapping[str, Any]) -> float:
    # An epoch that could not run may have no duration; it took no measurable time.
    return sum(float(e.get("duration_ms") or 0.0) for e in task["epochs"]) / 1000.0


def _seconds(value: float) -> str:
    return f"{value:.3f}"
