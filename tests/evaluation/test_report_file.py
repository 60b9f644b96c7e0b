"""Report files: every way a report can be unusable, and writing all files or none."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from charter.core.errors import ReportInvalid, UserError
from charter.evaluation.report_file import (
    REPORT_FORMAT,
    REPORT_VERSION,
    read_report,
    write_reports,
)
from tests.evaluation.report_samples import check, deep_copy, epoch, mixed_report, report, task


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def invalid(path: Path) -> str:
    """The message ``read_report`` refuses ``path`` with."""
    with pytest.raises(ReportInvalid) as caught:
        read_report(path)
    assert isinstance(caught.value, UserError)
    return str(caught.value)


# ---------------------------------------------------------------- reading


def test_constants() -> None:
    assert REPORT_FORMAT == "charter.eval-report"
    assert REPORT_VERSION == 1


def test_round_trip(tmp_path: Path) -> None:
    data = mixed_report()
    written = write_reports(data, tmp_path)
    assert read_report(written["json"]) == data


def test_unknown_keys_are_kept_for_forward_compatibility(tmp_path: Path) -> None:
    data = report()
    data["new_top_level"] = {"anything": [1, 2]}
    data["tasks"][0]["new_task_field"] = "x"
    data["tasks"][0]["epochs"][0]["checks"][0]["severity"] = "high"
    data["summary"]["golden"]["p50_ms"] = 12
    assert read_report(write_json(tmp_path / "r.json", data)) == data


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    assert invalid(path) == f"{path}: no such report file"


def test_a_directory_is_not_a_report(tmp_path: Path) -> None:
    message = invalid(tmp_path)
    assert message.startswith(f"{tmp_path}: cannot read the report: ")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(b'{"format": "\xff"}')
    assert invalid(path).startswith(f"{path}: not a report: not UTF-8 text")


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ('{"format": "charter.eval-report",\n  "version": 1,,\n}', "2:16", "Expecting property"),
        ("", "1:1", "Expecting value"),
        ('{"a": 1} trailing', "1:10", "Extra data"),
    ],
)
def test_not_json_names_line_and_column(tmp_path: Path, text: str, where: str, what: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(text, encoding="utf-8")
    message = invalid(path)
    assert message.startswith(f"{path}:{where}: not a report: not valid JSON ({what}")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_are_refused(tmp_path: Path, constant: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(f'{{"value": {constant}}}', encoding="utf-8")
    assert f"{constant} is not a JSON number" in invalid(path)


def test_deeply_nested_json_is_refused_not_crashed(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("[" * 200_000 + "]" * 200_000, encoding="utf-8")
    assert "nested too deeply" in invalid(path)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ([], "an array"),
        ("report", "a string"),
        (3, "a number"),
        (None, "null"),
        (True, "a boolean"),
    ],
)
def test_not_an_object(tmp_path: Path, value: Any, kind: str) -> None:
    path = write_json(tmp_path / "r.json", value)
    assert invalid(path) == f"{path}: not a report: expected a JSON object, found {kind}"


def test_wrong_format(tmp_path: Path) -> None:
    data = report()
    data["format"] = "junit"
    path = write_json(tmp_path / "r.json", data)
    assert invalid(path) == (
        f"{path}: not a Charter eval report (format is 'junit'; expected 'charter.eval-report')"
    )


def test_missing_format(tmp_path: Path) -> None:
    path = write_json(tmp_path / "r.json", {"tasks": []})
    assert "format is missing" in invalid(path)


def test_newer_version_names_both_versions(tmp_path: Path) -> None:
    data = report()
    data["version"] = 2
    # A newer version may have changed anything; the version is reported, not a shape error.
    del data["tasks"]
    path = write_json(tmp_path / "r.json", data)
    assert invalid(path) == (
        f"{path}: report version 2 was written by a newer Charter; this Charter reads "
        "report version 1; upgrade Charter to read it"
    )


@pytest.mark.parametrize(("version", "shown"), [(None, "missing"), ("1", "'1'"), (True, "True")])
def test_version_that_is_not_an_integer(tmp_path: Path, version: Any, shown: str) -> None:
    data = report()
    if version is None:
        del data["version"]
    else:
        data["version"] = version
    path = write_json(tmp_path / "r.json", data)
    assert invalid(path) == f"{path}: not a valid eval report: version is {shown}; expected 1"


def test_version_zero_does_not_exist(tmp_path: Path) -> None:
    data = report()
    data["version"] = 0
    assert "report version 0 does not exist" in invalid(write_json(tmp_path / "r.json", data))


def _break(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    """Set ``value`` at ``path``, or delete the key when ``value`` is ``DELETE``."""
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("id",), DELETE, "id: required key is missing"),
        (("charter",), DELETE, "charter: required key is missing"),
        (("charter", "sha256"), DELETE, "charter.sha256: required key is missing"),
        (("enforcement",), "yes", "enforcement: Input should be a valid boolean"),
        (("enforcement",), 1, "enforcement: Input should be a valid boolean"),
        (("epochs",), "3", "epochs: Input should be a valid integer"),
        (("epochs",), -1, "epochs: Input should be greater than or equal to 0"),
        (("suites", 0, "name"), DELETE, "suites[0].name: required key is missing"),
        (("tasks",), {"a": 1}, "tasks: Input should be a valid list"),
        (
            ("tasks", 1, "status"),
            "skipped",
            "tasks[1].status (task desk-golden/broken): Input should be 'passed', 'failed', "
            "'flaky' or 'error'",
        ),
        (
            ("tasks", 1, "epochs", 0, "checks", 1, "passed"),
            DELETE,
            "tasks[1].epochs[0].checks[1].passed (task desk-golden/broken): "
            "required key is missing",
        ),
        (
            ("tasks", 0, "pass_rate"),
            1.5,
            "tasks[0].pass_rate (task desk-golden/ok): Input should be less than or equal to 1",
        ),
        (
            ("tasks", 4, "attack", "fields"),
            "inbox",
            "tasks[4].attack.fields (task desk-security/inject-1): Input should be a valid list",
        ),
        (("tasks", 0, "key"), DELETE, "tasks[0].key: required key is missing"),
        (("tasks", 0), "a task", "tasks[0]: Input should be a valid dictionary"),
        (("summary", "golden", "pass_all_rate"), DELETE, "summary.golden.pass_all_rate: required"),
        (("gate", "measure"), "mean", "gate.measure: Input should be 'pass_rate' or 'ci_low'"),
        (("gate",), DELETE, "gate: required key is missing"),
    ],
)
def test_bad_shape_names_the_first_bad_key(
    tmp_path: Path, path: tuple[Any, ...], value: Any, expected: str
) -> None:
    data = deep_copy(mixed_report())
    _break(data, path, value)
    file = write_json(tmp_path / "r.json", data)
    assert invalid(file).startswith(f"{file}: not a valid eval report: {expected}")


def test_duplicate_task_keys_are_refused(tmp_path: Path) -> None:
    data = report([task("same"), task("same")])
    path = write_json(tmp_path / "r.json", data)
    assert invalid(path) == (
        f"{path}: not a valid eval report: tasks[1].key: task 'desk-golden/same' appears twice"
    )


def test_a_pickle_is_not_unpickled(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "r.json"
    path.write_bytes(pickle.dumps(report()))
    with pytest.raises(ReportInvalid, match="not a report"):
        read_report(path)


# ---------------------------------------------------------------- writing


def test_writes_all_three_files(tmp_path: Path) -> None:
    directory = tmp_path / "out" / "nested"
    data = mixed_report()
    written = write_reports(data, directory)
    assert written == {
        "json": directory / "report.json",
        "junit": directory / "junit.xml",
        "html": directory / "report.html",
    }
    assert sorted(p.name for p in directory.iterdir()) == [
        "junit.xml",
        "report.html",
        "report.json",
    ]
    text = (directory / "report.json").read_text(encoding="utf-8")
    assert text == json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    assert list(json.loads(text)) == list(data)  # keys in the report's order, not sorted
    root = ET.fromstring((directory / "junit.xml").read_bytes())
    assert root.get("tests") == "6"
    assert (directory / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_only_the_formats_asked_for(tmp_path: Path) -> None:
    written = write_reports(report(), tmp_path, formats=["junit"])
    assert written == {"junit": tmp_path / "junit.xml"}
    assert [p.name for p in tmp_path.iterdir()] == ["junit.xml"]


def test_no_format_writes_nothing(tmp_path: Path) -> None:
    assert write_reports(report(), tmp_path / "out", formats=()) == {}
    assert not (tmp_path / "out").exists()


def test_unknown_format_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown report format pdf; known: json, junit, html"):
        write_reports(report(), tmp_path, formats=("json", "pdf"))
    assert list(tmp_path.iterdir()) == []


def test_non_ascii_is_written_as_itself(tmp_path: Path) -> None:
    data = report([task("r\u00e9sum\u00e9-\u6f22\u5b57")])
    write_reports(data, tmp_path, formats=["json"])
    assert "r\u00e9sum\u00e9-\u6f22\u5b57" in (tmp_path / "report.json").read_text("utf-8")


def test_lone_surrogate_is_written_as_a_json_escape(tmp_path: Path) -> None:
    data = report([task("ok", [epoch(0, False, checks=[check("c", False, "bad \udcff byte")])])])
    written = write_reports(data, tmp_path)
    assert "\\udcff" in written["json"].read_text(encoding="utf-8")
    assert read_report(written["json"]) == data


def test_existing_reports_are_replaced(tmp_path: Path) -> None:
    write_reports(report(report_id="evr_old"), tmp_path)
    write_reports(report(report_id="evr_new"), tmp_path)
    assert read_report(tmp_path / "report.json")["id"] == "evr_new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml", "report.html", "report.json"]


def test_renderer_failure_writes_nothing(tmp_path: Path) -> None:
    # JSON and JUnit render fine; the HTML page needs the summary's pass rate.
    data = report()
    del data["summary"]["golden"]["pass_rate"]
    directory = tmp_path / "out"
    with pytest.raises(KeyError, match="pass_rate"):
        write_reports(data, directory)
    assert not directory.exists()


def test_value_json_cannot_hold_writes_nothing(tmp_path: Path) -> None:
    data = report()
    data["duration_seconds"] = float("nan")
    with pytest.raises(ValueError, match="JSON"):
        write_reports(data, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failure_while_putting_files_in_place_takes_back_the_ones_placed(
    tmp_path: Path,
) -> None:
    # report.html cannot replace a directory, so the last of the three moves fails after
    # report.json and junit.xml are already in place.
    (tmp_path / "report.html").mkdir()
    with pytest.raises(IsADirectoryError):
        write_reports(mixed_report(), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert list((tmp_path / "report.html").iterdir()) == []


def test_failure_restores_the_previous_reports(tmp_path: Path) -> None:
    write_reports(report(report_id="evr_old"), tmp_path, formats=["json", "junit"])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    (tmp_path / "report.html").mkdir()
    with pytest.raises(IsADirectoryError):
        write_reports(report(report_id="evr_new"), tmp_path)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before
    assert read_report(tmp_path / "report.json")["id"] == "evr_old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml", "report.html", "report.json"]


def test_failure_writing_a_temporary_file_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The disk fills up on the third file: nothing may be left, temporaries included.
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="No space left"):
        write_reports(report(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_written_files_are_not_private_temporaries(tmp_path: Path) -> None:
    # mkstemp would leave 0600 files; reports are artifacts others read.
    old = os.umask(0o022)
    try:
        written = write_reports(report(), tmp_path)
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in written.values()} == {"0o644"}


def test_read_failure_message_is_a_user_error_with_code(tmp_path: Path) -> None:
    with pytest.raises(ReportInvalid) as caught:
        read_report(tmp_path / "missing.json")
    assert caught.value.code == "report_invalid"


def test_mixed_report_sample_is_valid(tmp_path: Path) -> None:
    # The samples the other tests break must themselves be valid, or those tests prove nothing.
    for data in (report(), mixed_report(), report([])):
        assert read_report(write_json(tmp_path / "r.json", data)) == data
