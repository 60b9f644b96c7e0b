"""JUnit XML: parsed back with ElementTree, counts and messages as CI shows them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from charter.evaluation.junit import junit_xml, xml_text
from tests.evaluation.report_samples import (
    CHARTER_SHA,
    check,
    epoch,
    mixed_report,
    report,
    task,
)


def parse(report_data: dict[str, Any]) -> ET.Element:
    document = junit_xml(report_data)
    assert document.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    return ET.fromstring(document.encode("utf-8"))


def case(root: ET.Element, suite: str, name: str) -> ET.Element:
    found = root.findall(f"./testsuite[@name='{suite}']/testcase[@name='{name}']")
    assert len(found) == 1, f"{suite}/{name}: {len(found)} test cases"
    return found[0]


def test_totals_on_testsuites() -> None:
    root = parse(mixed_report())
    assert root.tag == "testsuites"
    assert root.attrib == {
        "name": "charter eval",
        "tests": "6",
        "failures": "3",  # broken, wobbly, inject-1
        "errors": "1",  # crashed
        "time": "3.200",
    }


def test_one_testsuite_per_suite_with_its_counts_and_properties() -> None:
    root = parse(mixed_report())
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["desk-golden", "desk-security"]
    golden, security = suites
    assert (golden.get("tests"), golden.get("failures"), golden.get("errors")) == ("4", "2", "1")
    assert (security.get("tests"), security.get("failures"), security.get("errors")) == (
        "2",
        "1",
        "0",
    )
    # ok: 3 epochs x 12.5 ms; broken: 2 x 12.5; wobbly: 3 x 12.5; crashed: 0
    assert golden.get("time") == "0.100"
    properties = {p.get("name"): p.get("value") for p in golden.findall("properties/property")}
    assert properties == {
        "charter.name": "support-triage",
        "charter.sha256": CHARTER_SHA,
        "enforcement": "true",
        "epochs": "3",
        "seed": "0",
    }


def test_testcase_names_classname_and_time() -> None:
    root = parse(mixed_report())
    ok = case(root, "desk-golden", "ok")
    assert ok.attrib == {"classname": "desk-golden", "name": "ok", "time": "0.037"}
    assert list(ok) == []  # passed: neither failure nor error


def test_failed_task_lists_every_failing_check_of_every_failing_epoch() -> None:
    broken = case(parse(mixed_report()), "desk-golden", "broken")
    failures = broken.findall("failure")
    assert len(failures) == 1
    failure = failures[0]
    assert failure.get("type") == "failed"
    assert failure.get("message") == ("passed 0 of 2 epochs; failing checks: no_refund, reply_sent")
    text = failure.text or ""
    assert "epoch 0 (seed 100)" in text
    assert "no_refund: refund 500" in text
    assert "epoch 1 (seed 101)" in text
    assert "reply_sent: no reply" in text
    # A check that passed is not a reason for the failure.
    assert "outcome:" not in text


def test_flaky_task_is_a_failure_of_type_flaky() -> None:
    wobbly = case(parse(mixed_report()), "desk-golden", "wobbly")
    (failure,) = wobbly.findall("failure")
    assert failure.get("type") == "flaky"
    assert failure.get("message") == "passed 2 of 3 epochs"
    assert "epoch 1" in (failure.text or "")
    assert "epoch 0" not in (failure.text or "")


def test_task_that_could_not_run_is_an_error() -> None:
    crashed = case(parse(mixed_report()), "desk-golden", "crashed")
    assert crashed.findall("failure") == []
    (error,) = crashed.findall("error")
    assert error.get("message") == "cassette missing for request 3"
    assert error.text == "epoch 0: cassette missing for request 3"


def test_enforcement_off_is_visible_in_properties() -> None:
    root = parse(report(enforcement=False))
    values = [p.get("value") for p in root.iter("property") if p.get("name") == "enforcement"]
    assert values == ["false"]


def test_task_of_a_suite_missing_from_suites_still_appears() -> None:
    data = report([task("a"), task("b", suite="other")])
    data["suites"] = data["suites"][:1]
    root = parse(data)
    assert case(root, "other", "b").get("classname") == "other"
    assert root.get("tests") == "2"


def test_no_tasks_gives_an_empty_but_valid_document() -> None:
    root = parse(report([]))
    assert root.get("tests") == "0"
    assert root.findall("testsuite") == []


HOSTILE = ']]><script>alert(1)</script>\x00\x01\x08\x0b\x0c\x1b\x7f\ufffe\ud800 & "end"'


def test_hostile_payload_text_survives_as_text() -> None:
    data = report(
        [
            task(
                HOSTILE,
                [epoch(0, False, checks=[check(HOSTILE, False, HOSTILE)])],
            ),
            task("err", [epoch(0, False, error=HOSTILE)]),
        ]
    )
    data["charter"]["name"] = HOSTILE
    document = junit_xml(data)
    for bad in ("\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\ufffe", "\ud800"):
        assert bad not in document
    assert "<script>" not in document
    assert "]]>" not in document
    root = ET.fromstring(document.encode("utf-8"))
    cleaned = ']]><script>alert(1)</script>\x7f & "end"'
    (testcase,) = root.findall("./testsuite/testcase[failure]")
    assert testcase.get("name") == cleaned
    failure = testcase.find("failure")
    assert failure is not None
    assert failure.get("message") == f"passed 0 of 1 epochs; failing checks: {cleaned}"
    assert f"{cleaned}: {cleaned}" in (failure.text or "")
    error = root.find(".//error")
    assert error is not None
    assert error.get("message") == cleaned
    assert {p.get("value") for p in root.iter("property") if p.get("name") == "charter.name"} == {
        cleaned
    }


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("tab\tnew\nline\rret", "tab\tnew\nline\rret"),
        ("a\x00b\x1fc", "abc"),
        ("\ud83d lone", " lone"),
        ("emoji \U0001f600", "emoji \U0001f600"),
        ("\uffff\ufffe\ufffd", "\ufffd"),
        (42, "42"),
    ],
)
def test_xml_text_keeps_only_xml_characters(raw: object, clean: str) -> None:
    assert xml_text(raw) == clean


def test_missing_key_is_a_key_error() -> None:
    data = report()
    del data["tasks"][0]["status"]
    with pytest.raises(KeyError, match="status"):
        junit_xml(data)
