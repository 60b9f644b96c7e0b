"""Files an operator names to the eval commands are read the careful way (issue 11, siblings
of defect 3): a cassette (``--replay DIR``) and an eval report (``eval compare``, ``autonomy
report --eval-report``) were read with ``read_text``, so a named pipe there hung the command
forever and ``/dev/zero`` read until memory ran out. Now, as for the charter's own files, a
file that is not regular, or larger than the bound, is refused at once, naming it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from charter.core.errors import CassetteMissing, ReportInvalid
from charter.evaluation.cassette import MAX_CASSETTE_BYTES, cassette_path
from charter.evaluation.report_file import MAX_REPORT_BYTES, read_report
from tests.evaluation.test_cassette import TASK, conversation, replayer


def refusal(call: Callable[[], object], pipe: Path | None = None) -> BaseException:
    """The error ``call`` raises, failing the test if it has not returned within 20 s."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=20)
    if thread.is_alive():
        if pipe is not None:  # let the reader go: a writer that opens and closes gives EOF
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout=5)
        pytest.fail("reading the file did not finish")
    error = outcome[0]
    assert error is not None, "the file was read"
    return error


def _cassette(tmp_path: Path) -> Path:
    path = cassette_path(tmp_path, TASK)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_a_named_pipe_as_a_cassette_is_refused_without_waiting(tmp_path: Path) -> None:
    path = _cassette(tmp_path)
    os.mkfifo(path)
    error = refusal(lambda: conversation(replayer(tmp_path)), path)
    assert isinstance(error, CassetteMissing)
    assert "a named pipe, not a regular file" in str(error)
    assert str(path) in str(error)


def test_dev_zero_as_a_cassette_is_refused_as_a_device(tmp_path: Path) -> None:
    path = _cassette(tmp_path)
    path.symlink_to("/dev/zero")
    error = refusal(lambda: conversation(replayer(tmp_path)))
    assert isinstance(error, CassetteMissing)
    assert "a device, not a regular file" in str(error)


def test_a_cassette_over_the_bound_is_refused_unread(tmp_path: Path) -> None:
    path = _cassette(tmp_path)
    with path.open("wb") as handle:
        handle.truncate(MAX_CASSETTE_BYTES + 1)
    error = refusal(lambda: conversation(replayer(tmp_path)))
    assert isinstance(error, CassetteMissing)
    assert f"more than the {MAX_CASSETTE_BYTES} allowed" in str(error)


def test_a_named_pipe_as_a_report_is_refused_without_waiting(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    os.mkfifo(path)
    error = refusal(lambda: read_report(path), path)
    assert isinstance(error, ReportInvalid)
    assert str(error).startswith(f"{path}: cannot read the report: ")
    assert "a named pipe, not a regular file" in str(error)


def test_dev_zero_as_a_report_is_refused_as_a_device(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.symlink_to("/dev/zero")
    error = refusal(lambda: read_report(path))
    assert isinstance(error, ReportInvalid)
    assert "a device, not a regular file" in str(error)


def test_a_report_over_the_bound_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    with path.open("wb") as handle:
        handle.truncate(MAX_REPORT_BYTES + 1)
    error = refusal(lambda: read_report(path))
    assert isinstance(error, ReportInvalid)
    assert f"more than the {MAX_REPORT_BYTES} allowed" in str(error)
