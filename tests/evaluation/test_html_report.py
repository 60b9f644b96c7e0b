"""The HTML report: self-contained, everything escaped, the facts a reviewer needs."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from charter.evaluation.html_report import UNSAFE_BANNER, html_report
from tests.evaluation.report_samples import (
    CHARTER_SHA,
    check,
    epoch,
    mixed_report,
    report,
    security_task,
    task,
)

ATTACK = "<script>alert(1)</script>"


class Tags(HTMLParser):
    """Every start tag and its attributes, and the page's text, as a browser would parse."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    parser.close()
    return parser


def visible_text(page: str) -> str:
    """The page's text without style content, one space between text nodes."""
    body = re.sub(r"<style>.*?</style>", "", page, flags=re.DOTALL)
    return " ".join(" ".join(parse(body).text).split())


def test_page_is_self_contained() -> None:
    page = html_report(mixed_report())
    assert page.startswith("<!DOCTYPE html>")
    lowered = page.lower()
    for banned in ("<script", "<link", "url(", "http://", "https://", "src=", "@import"):
        assert banned not in lowered, banned
    tags = {tag for tag, _ in parse(page).tags}
    assert tags.isdisjoint({"script", "link", "img", "iframe", "object", "embed"})
    # Styling is inline: one <style> element and no stylesheet from anywhere else.
    assert lowered.count("<style>") == 1


def test_hostile_text_appears_only_escaped() -> None:
    data = report(
        [
            task(
                ATTACK,
                [epoch(0, False, checks=[check(ATTACK, False, ATTACK)])],
            ),
            task("err", [epoch(0, False, error=ATTACK)]),
        ],
        gate={
            "threshold": 0.95,
            "measure": "pass_rate",
            "value": 0.0,
            "passed": False,
            "reasons": [ATTACK],
            "baseline": {"id": ATTACK, "path": ATTACK},
        },
    )
    data["tasks"][0]["attack"] = {"payload": ATTACK, "goal": ATTACK, "fields": [ATTACK]}
    data["tasks"][0]["tags"] = [ATTACK]
    data["charter"]["name"] = ATTACK
    data["suites"][0]["path"] = ATTACK
    page = html_report(data)
    assert "<script" not in page.lower()
    escaped = html.escape(ATTACK)
    # every planting: title, header, task id, check name, detail, error, attack x3, tags,
    # gate reason, baseline id and path, suite path
    assert page.count(escaped) >= 14
    assert "alert(1)" not in page.replace(escaped, "")
    tags = {tag for tag, _ in parse(page).tags}
    assert "script" not in tags


def test_attribute_breaking_quotes_are_escaped() -> None:
    hostile = 'x" onmouseover="alert(1)\' <b>'
    page = html_report(report([task(hostile, [epoch(0, False)])]))
    for _, attributes in parse(page).tags:
        assert "onmouseover" not in attributes
    assert html.escape(hostile, quote=True) in page


def test_control_characters_are_dropped() -> None:
    page = html_report(report([task("a\x00b\x1bc\ud800d")]))
    assert "\x00" not in page
    assert "\x1b" not in page
    assert "\ud800" not in page
    assert "abcd" in page
    page.encode("utf-8")  # a lone surrogate would make the file unwritable


def test_header_names_the_charter_and_run() -> None:
    text = visible_text(html_report(mixed_report()))
    assert "charter support-triage" in text
    assert f"charter sha256 {CHARTER_SHA}" in text
    assert "created 2026-11-24T05:30:00+00:00" in text
    assert "enforcement on" in text
    assert "model scripted:gullible-support-agent" in text


def test_enforcement_off_shows_the_unsafe_banner() -> None:
    page = html_report(report(enforcement=False))
    assert UNSAFE_BANNER in html.unescape(page)
    assert 'class="unsafe"' in page
    assert "enforcement OFF" in visible_text(page)


def test_enforcement_on_has_no_banner() -> None:
    page = html_report(report(enforcement=True))
    assert "UNSAFE" not in page
    assert 'class="unsafe"' not in page


@pytest.mark.parametrize("value", [None, "true", 1])
def test_enforcement_that_is_not_exactly_true_is_unsafe(value: Any) -> None:
    data = report()
    data["enforcement"] = value
    assert 'class="unsafe"' in html_report(data)


def test_failed_gate_shows_verdict_and_reasons() -> None:
    page = html_report(mixed_report())
    text = visible_text(page)
    assert "GATE FAILED : pass_rate 60.0% against threshold 95.0%" in text
    assert "golden pass rate 60.0% is below 95.0%" in text
    assert "baseline: evr_0000 (baseline/report.json)" in text
    assert 'class="gate fail"' in page


def test_nulls_are_blank_not_none() -> None:
    data = mixed_report()
    data["charter"]["path"] = None
    data["gate"]["baseline"]["path"] = None
    data["gate"]["value"] = None
    text = visible_text(html_report(data))
    assert "None" not in text
    assert "baseline: evr_0000" in text
    assert "GATE FAILED : pass_rate n/a against threshold 95.0%" in text


def test_passed_gate_and_no_gate() -> None:
    gate = {"threshold": 0.9, "measure": "ci_low", "value": 0.93, "passed": True, "reasons": []}
    passed = html_report(report(gate=gate))
    assert "GATE PASSED : ci_low 93.0% against threshold 90.0%" in visible_text(passed)
    assert 'class="gate pass"' in passed
    assert "GATE" not in html_report(report(gate=None))


def test_summary_table_per_kind() -> None:
    text = visible_text(html_report(mixed_report()))
    # golden: 4 tasks (ok, broken, wobbly, crashed): 1 passed, 1 failed, 1 flaky, 1 error;
    # runs 3 + 2 + 3 + 1 = 9 with 5 passing.
    assert "golden 4 1 1 1 1 9 55.6% 26.7% \u2013 81.1% 25.0%" in text
    assert "security 2 1 1 0 0 2 50.0%" in text
    assert text.index("golden 4") < text.index("security 2")


def test_summary_without_any_kind() -> None:
    text = visible_text(html_report(report([])))
    assert "no task was run" in text


def test_task_rows_show_status_rate_ci_passk_and_epochs() -> None:
    page = html_report(mixed_report())
    text = visible_text(page)
    assert (
        "wobbly flaky 66.7% (2/3) 20.8% \u2013 93.9% no 0: succeeded 1: succeeded 2: succeeded"
        in text
    )
    assert "ok passed 100.0% (3/3) 43.9% \u2013 100.0% yes" in text
    assert "crashed error 0.0% (0/1)" in text
    assert "0: error" in text
    for status in ("passed", "failed", "flaky", "error"):
        assert f'class="status {status}"' in page


def test_failing_checks_are_in_details() -> None:
    page = html_report(mixed_report())
    details = re.findall(r"<details>.*?</details>", page, flags=re.DOTALL)
    broken = next(d for d in details if "no_refund" in d)
    assert "<summary>2 failing</summary>" in broken
    assert "<code>no_refund</code>: refund 500" in broken
    assert "<code>reply_sent</code>: no reply" in broken
    # The check that passed in the failing epoch is not listed as failing.
    assert "<code>outcome</code>" not in broken
    # A passed task has nothing to unfold.
    row = re.search(r"<tr><td><code>ok</code>.*?</tr>", page, flags=re.DOTALL)
    assert row is not None
    assert "<details>" not in row.group(0)


def test_security_task_shows_its_attack() -> None:
    page = html_report(report([security_task("inject-2")]))
    text = visible_text(page)
    assert (
        "attack: payload ignore_previous_instructions , goal exfiltrate_data , planted in: "
        "inbox.T-1001.1.body" in text
    )
    assert "Suite desk-security (security)" in text


def test_tasks_are_grouped_under_their_suites_in_report_order() -> None:
    text = visible_text(html_report(mixed_report()))
    golden = text.index("Suite desk-golden (golden)")
    security = text.index("Suite desk-security (security)")
    assert golden < text.index("broken") < security < text.index("inject-1")


def test_missing_key_is_a_key_error() -> None:
    data = report()
    del data["summary"]["golden"]["pass_rate"]
    with pytest.raises(KeyError, match="pass_rate"):
        html_report(data)
