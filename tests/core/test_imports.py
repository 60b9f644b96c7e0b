"""``core.imports.import_named``: code a configuration names is imported without letting it
end the process, write into Charter's output or wait for input."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from charter.core.errors import UserError
from charter.core.imports import import_named


@pytest.fixture(autouse=True)
def _fresh_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("this", "tests.contract.fixtures_exiting_toolkit"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_a_module_is_returned_with_nothing_printed() -> None:
    imported = import_named("tests.contract.fixtures_toolkit")
    assert imported.module.__name__ == "tests.contract.fixtures_toolkit"
    assert imported.printed == ""


def test_what_a_module_prints_is_captured_not_written(capsys: pytest.CaptureFixture[str]) -> None:
    imported = import_named("this")
    assert imported.printed.startswith("The Zen of Python, by Tim Peters\n")
    assert capsys.readouterr().out == ""


def test_sys_exit_in_a_module_is_a_user_error_not_an_exit() -> None:
    with pytest.raises(UserError) as caught:
        import_named("tests.contract.fixtures_exiting_toolkit")
    assert str(caught.value) == "the module tried to exit the process (SystemExit(3))"


def test_a_module_asking_for_input_reads_end_of_file() -> None:
    with pytest.raises(UserError, match=r"^EOF when reading a line$"):
        import_named("tests.contract.fixtures_input_toolkit")


def test_an_error_without_a_message_is_named_by_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(name: str) -> None:
        raise RuntimeError

    monkeypatch.setattr(importlib, "import_module", fail)
    with pytest.raises(UserError, match=r"^RuntimeError$"):
        import_named("anything")


def test_ctrl_c_during_an_import_still_stops_charter(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(name: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib, "import_module", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_named("anything")


def test_the_standard_streams_are_restored_after_a_failure() -> None:
    streams = sys.stdin, sys.stdout, sys.stderr
    with pytest.raises(UserError):
        import_named("tests.contract.fixtures_exiting_toolkit")
    assert (sys.stdin, sys.stdout, sys.stderr) == streams


def test_stderr_is_replayed_after_a_successful_import(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    package = tmp_path / "noisy_pkg_for_imports"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import sys\nsys.stderr.write('a warning\\n')\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "noisy_pkg_for_imports", raising=False)
    imported = import_named("noisy_pkg_for_imports")
    assert imported.printed == ""
    assert capsys.readouterr().err == "a warning\n"


@pytest.mark.parametrize("name", ["", "../etc/passwd", "a b", "os; rm", "x" * 501, "a..b", ".rel"])
def test_a_name_that_is_not_a_module_name_is_refused_before_importing(name: str) -> None:
    with pytest.raises(UserError, match="is not a module name"):
        import_named(name)
