"""``charter eval compare``: long lists say what they leave out; ``--all`` shows everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charter.cli.app import app
from tests.evaluation.report_samples import epoch, report, task

REGRESSIONS = 75
FIXES = 3


def _reports(tmp_path: Path) -> tuple[str, str]:
    """An old report where every task passes but three, and a new one where 75 regress."""
    old = [task(f"r{n:03d}") for n in range(REGRESSIONS)]
    old += [task(f"f{n}", [epoch(0, False)]) for n in range(FIXES)]
    new = [task(f"r{n:03d}", [epoch(0, False)]) for n in range(REGRESSIONS)]
    new += [task(f"f{n}") for n in range(FIXES)]
    paths = []
    for name, tasks in (("old", old), ("new", new)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(report(tasks, report_id=f"evr_{name}")), encoding="utf-8")
        paths.append(str(path))
    return paths[0], paths[1]


def _listed(out: str, prefix: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(f"  desk-golden/{prefix}")]


def test_a_long_list_says_how_many_it_left_out(tmp_path: Path) -> None:
    old, new = _reports(tmp_path)
    result = CliRunner().invoke(app, ["eval", "compare", old, new])
    assert result.exit_code == 1
    out = result.stdout
    assert f"regressions: {REGRESSIONS}" in out
    shown = _listed(out, "r")
    assert 0 < len(shown) < REGRESSIONS
    left = REGRESSIONS - len(shown)
    assert f"... and {left} more (use --all or --json to list them)" in out
    # A short list is whole and says nothing more.
    assert len(_listed(out, "f")) == FIXES
    assert out.count("more (use --all") == 1


def test_all_lists_every_change(tmp_path: Path) -> None:
    old, new = _reports(tmp_path)
    result = CliRunner().invoke(app, ["eval", "compare", "--all", old, new])
    assert result.exit_code == 1
    shown = _listed(result.stdout, "r")
    assert len(shown) == REGRESSIONS
    assert {line.split(":")[0].strip() for line in shown} == {
        f"desk-golden/r{n:03d}" for n in range(REGRESSIONS)
    }
    assert "more (use --all" not in result.stdout


@pytest.mark.parametrize("extra", [[], ["--all"]])
def test_json_always_holds_every_change(tmp_path: Path, extra: list[str]) -> None:
    old, new = _reports(tmp_path)
    result = CliRunner().invoke(app, ["eval", "compare", "--json", *extra, old, new])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert len(data["regressions"]) == REGRESSIONS
    assert len(data["fixes"]) == FIXES
