"""Eval report files: reading one back (a baseline) and writing a run's reports.

A report read from disk is input like a charter: it may be hand-edited, truncated, from a
newer Charter or not a report at all, and a gate that trusted it could pass a regression. So
``read_report`` parses JSON only (never pickle or eval), checks ``format`` and ``version``
first (so a newer report is named as such instead of failing on some key it changed), then
validates the shape with pydantic. Unknown keys are allowed everywhere, so a report from a
newer minor change of this version still reads; the dict returned is the file's own data.

``write_reports`` writes ``report.json``, ``junit.xml`` and ``report.html`` all or nothing:
every file is rendered in memory first, each is written to a temporary file beside its target
and moved into place with ``os.replace`` (atomic on one file system), and if anything fails,
the files already moved are taken back (removed, or their previous content restored), so CI
never picks up a new ``junit.xml`` beside a stale ``report.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from charter.core.errors import ReportInvalid
from charter.core.files import FileRefused, read_regular, write_temporary
from charter.evaluation.html_report import html_report
from charter.evaluation.junit import junit_xml

__all__ = [
    "FILE_NAMES",
    "MAX_REPORT_BYTES",
    "REPORT_FORMAT",
    "REPORT_VERSION",
    "read_report",
    "write_reports",
]

REPORT_FORMAT: Final = "charter.eval-report"
REPORT_VERSION: Final = 1
#: The largest report read: thousands of tasks with their checks, far less as a rule.
MAX_REPORT_BYTES: Final = 64 * 2**20

#: The file each output format is written to, in the order they are written.
FILE_NAMES: Final[Mapping[str, str]] = {
    "json": "report.json",
    "junit": "junit.xml",
    "html": "report.html",
}

Count = Annotated[int, Field(ge=0)]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class _Open(BaseModel):
    # strict: JSON's types as they are (no "3" for 3, no 1 for true); extra keys allowed so a
    # report with fields added later still reads.
    model_config = ConfigDict(extra="allow", strict=True)


class _Check(_Open):
    check: str
    passed: bool
    detail: str


class _Epoch(_Open):
    epoch: Count
    passed: bool
    outcome: str | None
    error: str | None
    checks: list[_Check]


class _Attack(_Open):
    payload: str
    goal: str
    fields: list[str]


class _Task(_Open):
    key: str
    suite: str
    id: str
    kind: str
    attack: _Attack | None
    status: Literal["passed", "failed", "flaky", "error"]
    passes: Count
    runs: Count
    pass_rate: Rate
    ci_low: Rate
    ci_high: Rate
    pass_all: bool
    epochs: list[_Epoch]


class _Charter(_Open):
    name: str
    sha256: str


class _Suite(_Open):
    name: str
    kind: str
    sha256: str


class _Summary(_Open):
    tasks: Count
    passed: Count
    failed: Count
    flaky: Count
    errors: Count
    runs: Count
    passed_runs: Count
    pass_rate: Rate
    ci_low: Rate
    ci_high: Rate
    pass_all_rate: Rate


class _Gate(_Open):
    threshold: Rate
    measure: Literal["pass_rate", "ci_low"]
    passed: bool
    reasons: list[str]


class _Report(_Open):
    format: str
    version: int
    id: str
    created_at: str
    charter: _Charter
    enforcement: bool
    epochs: Count
    seed: int
    suites: list[_Suite]
    tasks: list[_Task]
    summary: dict[str, _Summary]
    gate: _Gate | None


def read_report(path: Path) -> dict[str, Any]:
    """Read and validate an eval report file.

    Args:
        path: The report's JSON file (``report.json``).

    Returns:
        The report as the file holds it (unknown keys kept).

    Raises:
        ReportInvalid: If the file cannot be read, is not JSON, is not a Charter eval
            report, is of a version this Charter does not read, or lacks or mistypes a key.
            The message names the file and, for the shape, the first bad key.
    """
    # Read without blocking and with a bound: a named pipe at the name would hang the
    # command, /dev/zero exhaust its memory.
    data = read_regular(path, what="the report", max_bytes=MAX_REPORT_BYTES)
    if data is None:
        raise ReportInvalid(f"{path}: no such report file")
    if isinstance(data, FileRefused):
        raise ReportInvalid(f"{path}: {data.message}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportInvalid(f"{path}: not a report: not UTF-8 text ({exc.reason})") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ReportInvalid(
            f"{path}:{exc.lineno}:{exc.colno}: not a report: not valid JSON ({exc.msg})"
        ) from None
    except ValueError as exc:  # from _refuse_constant
        raise ReportInvalid(f"{path}: not a report: not valid JSON ({exc})") from None
    except RecursionError:
        raise ReportInvalid(f"{path}: not a report: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise ReportInvalid(
            f"{path}: not a report: expected a JSON object, found {_json_type(data)}"
        )
    _check_format_and_version(path, data)
    try:
        _Report.model_validate(data)
    except ValidationError as exc:
        raise ReportInvalid(f"{path}: not a valid eval report: {_first_error(exc, data)}") from None
    _check_unique_keys(path, data)
    return data


def write_reports(
    report: Mapping[str, Any],
    directory: Path,
    *,
    formats: Collection[str] = ("json", "junit", "html"),
) -> dict[str, Path]:
    """Write a run's reports into ``directory``, all of them or none.

    Args:
        report: The eval report (the JSON report's shape).
        directory: Where to write; created (with its parents) if missing.
        formats: Which of ``json`` (``report.json``), ``junit`` (``junit.xml``) and ``html``
            (``report.html``) to write.

    Returns:
        Each format written and its file's path, in the order above.

    Raises:
        ValueError: If ``formats`` names an unknown format, or the report holds a value JSON
            cannot (NaN, infinity, a non-JSON type); nothing is written.
        KeyError: If the report lacks a key a renderer needs; nothing is written.
        OSError: If a file cannot be written; files this call had already put in place
            are removed or restored to their previous content.
    """
    unknown = sorted(set(formats) - set(FILE_NAMES))
    if unknown:
        raise ValueError(
            f"unknown report format {', '.join(unknown)}; known: {', '.join(FILE_NAMES)}"
        )
    renderers: dict[str, Callable[[Mapping[str, Any]], bytes]] = {
        "json": _json_bytes,
        "junit": lambda r: junit_xml(r).encode("utf-8"),
        "html": lambda r: html_report(r).encode("utf-8"),
    }
    # Render everything before touching the disk: a renderer that fails writes nothing.
    contents = {fmt: renderers[fmt](report) for fmt in FILE_NAMES if fmt in formats}
    if not contents:
        return {}
    directory.mkdir(parents=True, exist_ok=True)
    targets = {fmt: directory / FILE_NAMES[fmt] for fmt in contents}
    _replace_all({targets[fmt]: data for fmt, data in contents.items()})
    return targets


def _json_bytes(report: Mapping[str, Any]) -> bytes:
    text = json.dumps(report, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False)
    # A lone surrogate (hostile text decoded with surrogateescape) has no UTF-8 form; written
    # as backslashreplace it becomes "\udcff", which is exactly JSON's escape for it, and it
    # can only occur inside a JSON string. Every other character encodes as itself.
    return (text + "\n").encode("utf-8", errors="backslashreplace")


def _replace_all(files: Mapping[Path, bytes]) -> None:
    """Put every file in place, or leave the directory as it was."""
    previous = {path: path.read_bytes() for path in files if path.is_file()}
    temporaries: dict[Path, Path] = {}
    placed: list[Path] = []
    try:
        for path, data in files.items():
            temporaries[path] = write_temporary(path, data)
        for path, temporary in temporaries.items():
            os.replace(temporary, path)
            placed.append(path)
    except BaseException:
        for path, temporary in temporaries.items():
            if path not in placed:
                temporary.unlink(missing_ok=True)
        for path in placed:
            _undo(path, previous.get(path))
        raise


def _undo(path: Path, before: bytes | None) -> None:
    """Take back a file this call put in place; the original error is what gets raised."""
    try:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            os.replace(write_temporary(path, before), path)
    except OSError:
        pass  # the caller sees the first failure; a second one would only hide it


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_format_and_version(path: Path, data: Mapping[str, Any]) -> None:
    found = data.get("format")
    if found != REPORT_FORMAT:
        shown = "missing" if found is None else repr(found)
        raise ReportInvalid(
            f"{path}: not a Charter eval report (format is {shown}; expected {REPORT_FORMAT!r})"
        )
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        shown = "missing" if version is None else repr(version)
        raise ReportInvalid(f"{path}: not a valid eval report: version is {shown}; expected 1")
    if version > REPORT_VERSION:
        raise ReportInvalid(
            f"{path}: report version {version} was written by a newer Charter; this Charter "
            f"reads report version {REPORT_VERSION}; upgrade Charter to read it"
        )
    if version < 1:
        raise ReportInvalid(
            f"{path}: report version {version} does not exist; "
            f"this Charter reads report version {REPORT_VERSION}"
        )


def _first_error(exc: ValidationError, data: Mapping[str, Any]) -> str:
    error = exc.errors(include_url=False)[0]
    loc = error["loc"]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    where = where.removeprefix(".") or "(top level)"
    # Name the task too: "tasks[41]" alone sends the reader counting.
    if len(loc) > 1 and loc[0] == "tasks" and isinstance(loc[1], int):
        task = data["tasks"][loc[1]]
        if isinstance(task, dict) and isinstance(task.get("key"), str):
            where += f" (task {task['key']})"
    if error["type"] == "missing":
        return f"{where}: required key is missing"
    return f"{where}: {error['msg']}"


def _check_unique_keys(path: Path, data: Mapping[str, Any]) -> None:
    # Tasks are compared by key; a duplicate would make a baseline's verdict ambiguous.
    seen: set[str] = set()
    for index, task in enumerate(data["tasks"]):
        if task["key"] in seen:
            raise ReportInvalid(
                f"{path}: not a valid eval report: tasks[{index}].key: "
                f"task {task['key']!r} appears twice"
            )
        seen.add(task["key"])


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
