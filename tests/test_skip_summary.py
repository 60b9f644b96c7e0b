"""The suite's report: skips fold into one line grouped by reason; failures stay listed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from tests.skip_summary import skip_summary

ROOT = Path(__file__).resolve().parents[1]
NEED_PG = "Postgres tests need CHARTER_TEST_POSTGRES_URL (CI sets it)"


def _skipped(reason: str, line: int = 1) -> SimpleNamespace:
    return SimpleNamespace(longrepr=("tests/x.py", line, f"Skipped: {reason}"))


def test_skips_are_grouped_by_reason_most_common_first() -> None:
    reports = [_skipped(NEED_PG, n) for n in range(240)]
    reports += [_skipped("needs unshare") for _ in range(8)]
    assert skip_summary(reports) == f"248 skipped: 240 {NEED_PG}; 8 needs unshare"


def test_a_multi_line_reason_is_summarized_by_its_first_line() -> None:
    reports = [_skipped("could not install phoenix from PyPI:\nERROR: no network\n...")]
    assert skip_summary(reports) == "1 skipped: 1 could not install phoenix from PyPI:"


def test_many_reasons_say_how_many_are_left_out() -> None:
    reports = [_skipped(f"reason {n}") for n in range(9)]
    line = skip_summary(reports)
    assert line is not None
    assert line.startswith("9 skipped: 1 reason ")
    assert line.endswith("; 3 for 3 other reasons (-rs lists them)")


def test_nothing_skipped_prints_nothing() -> None:
    assert skip_summary([]) is None


SAMPLE = """
import pytest

@pytest.mark.parametrize("n", range(5))
def test_needs_a_server(n):
    pytest.skip("needs a server")

def test_needs_a_tool():
    pytest.skip("needs a tool")

def test_fails():
    assert 1 == 2

def test_passes():
    pass
"""


def test_a_run_prints_one_skip_line_and_lists_failures(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.skip_summary", "-rfE", "-p",
         "no:cacheprovider", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 1, out
    assert "SKIPPED [" not in out  # no line per skip
    assert "6 skipped: 5 needs a server; 1 needs a tool" in out
    failed = [line for line in out.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == 1  # failures are still listed in full
    assert "test_sample.py::test_fails" in failed[0]
