"""Files a charter names are regular files, read with a bound, from inside its directory.

A name in a charter can point anywhere: at a FIFO (reading waits forever), at ``/dev/zero``
(reading never ends), at ``/etc/passwd`` (the host's secrets would go to a model provider and
into release bundles). Each is refused at the line that names it. The tests that would hang
on a regression are built so that the hang is the failure (no timing is measured).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from charter.contract.files import (
    ALLOW_OUTSIDE_ENV,
    MAX_FILE_BYTES,
    FileRefused,
    allowed_roots,
    read_file,
    read_reference,
)
from charter.contract.loader import check_charter, load_charter
from tests.contract.helpers import HEADER, CharterFiles

TOOLS = "tools:\n  get_order: {effect: read}\n"


def with_prompt(name: str) -> str:
    return HEADER.replace("prompt: prompt.md", f"prompt: {name!r}")


@pytest.fixture(autouse=True)
def _no_extra_roots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_OUTSIDE_ENV, raising=False)


# --- what cannot be read without hanging or exhausting memory -------------------------------


def test_a_prompt_naming_a_fifo_is_refused_without_waiting_for_a_writer(
    files: CharterFiles,
) -> None:
    os.mkfifo(files.root / "prompt.fifo")
    problem = files.problem(TOOLS, header=with_prompt("prompt.fifo"))
    assert problem.line == 3
    assert problem.message == (
        "cannot read prompt file 'prompt.fifo': it is a named pipe, not a regular file"
    )
    assert problem.hint == "name a regular file"


@pytest.mark.parametrize("key", ["cedar", "golden"])
def test_a_cedar_file_or_eval_suite_naming_a_fifo_is_refused(files: CharterFiles, key: str) -> None:
    os.mkfifo(files.root / "named.fifo")
    section = "policies" if key == "cedar" else "evals"
    problem = files.problem(TOOLS + f"{section}:\n  {key}: named.fifo\n")
    assert problem.line == 8
    assert problem.message.endswith("'named.fifo': it is a named pipe, not a regular file")


def test_a_charter_that_is_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "charter.yaml"
    os.mkfifo(fifo)
    [problem] = check_charter(fifo)
    assert (problem.line, problem.message) == (
        1,
        "cannot read file: it is a named pipe, not a regular file",
    )


def test_dev_zero_is_refused_even_where_files_outside_are_allowed(
    files: CharterFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_OUTSIDE_ENV, "/dev")
    problem = files.problem(TOOLS, header=with_prompt("/dev/zero"))
    assert (
        problem.message == "cannot read prompt file '/dev/zero': it is a device, not a regular file"
    )


def test_a_charter_path_naming_dev_zero_is_refused() -> None:
    [problem] = check_charter(Path("/dev/zero"))
    assert problem.message == "cannot read file: it is a device, not a regular file"


def test_a_prompt_over_the_size_limit_is_refused_unread(files: CharterFiles) -> None:
    big = files.root / "big.md"
    with big.open("wb") as handle:  # sparse: the size is there, the bytes are not
        handle.truncate(MAX_FILE_BYTES + 1)
    problem = files.problem(TOOLS, header=with_prompt("big.md"))
    assert problem.message == (
        f"prompt file 'big.md' is {MAX_FILE_BYTES + 1} bytes, more than the "
        f"{MAX_FILE_BYTES} allowed"
    )
    assert "move data elsewhere" in problem.hint


def test_a_prompt_at_the_size_limit_loads(files: CharterFiles) -> None:
    files.add("edge.md", "x" * MAX_FILE_BYTES)
    charter = load_charter(files.write(TOOLS, header=with_prompt("edge.md")))
    assert len(charter.prompt_text) == MAX_FILE_BYTES


def test_a_file_growing_past_its_stat_size_is_read_with_a_bound() -> None:
    # /proc files report size 0 and then produce text: the bound holds on what is read.
    found = read_file(Path("/proc/self/status"), max_bytes=10)
    assert found == FileRefused(
        "file has grown, more than the 10 allowed",
        "a charter and its files are configuration; move data elsewhere",
        "too_big",
    )


# --- names that are not paths ---------------------------------------------------------------


def test_an_eval_suite_name_longer_than_a_file_name_can_be_is_a_problem(
    files: CharterFiles,
) -> None:
    name = "x" * 300
    problem = files.problem(TOOLS + f"evals: {{golden: {name}}}\n")
    assert problem.line == 7
    assert problem.message.startswith(f"cannot read eval suite '{name[:100]}")
    assert problem.message.endswith("': the name is too long")


def test_a_path_longer_than_any_path_is_refused_before_the_file_system_sees_it(
    files: CharterFiles,
) -> None:
    name = "d/" * 3_000 + "p.md"
    problem = files.problem(TOOLS, header=with_prompt(name))
    assert problem.line == 3
    assert problem.message.endswith("the name is too long (6004 characters)")


def test_a_nul_character_in_a_name_is_a_problem(files: CharterFiles) -> None:
    header = HEADER.replace("prompt: prompt.md", 'prompt: "prompt\\0.md"')
    problem = files.problem(TOOLS, header=header)
    assert problem.line == 3
    assert problem.message == (
        "cannot read prompt file 'prompt\\x00.md': its name contains a NUL character"
    )


# --- the charter's directory is the boundary ------------------------------------------------


@pytest.mark.parametrize("name", ["/etc/passwd", "../../../../../../etc/passwd", "/etc/shadow"])
def test_a_prompt_outside_the_charters_directory_is_refused(files: CharterFiles, name: str) -> None:
    problem = files.problem(TOOLS, header=with_prompt(name))
    assert problem.line == 3
    real_root = os.path.realpath(files.root)
    assert problem.message == (
        f"prompt file {name!r} is outside the charter's directory {real_root!r}"
    )
    assert problem.hint == (
        "keep referenced files next to the charter file, or list their directory in "
        "CHARTER_ALLOW_FILES_OUTSIDE"
    )


def test_a_symlink_pointing_outside_is_refused(
    files: CharterFiles, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.md"
    outside.write_text("the host's secret\n", encoding="utf-8")
    (files.root / "prompt.md").unlink()
    (files.root / "prompt.md").symlink_to(outside)
    problem = files.problem(TOOLS)
    assert problem.message.startswith("prompt file 'prompt.md' is outside the charter's directory")


def test_a_symlinked_directory_pointing_outside_is_refused(
    files: CharterFiles, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("shared")
    (outside / "p.md").write_text("shared prompt\n", encoding="utf-8")
    (files.root / "shared").symlink_to(outside, target_is_directory=True)
    problem = files.problem(TOOLS, header=with_prompt("shared/p.md"))
    assert "is outside the charter's directory" in problem.message


def test_a_symlink_inside_the_directory_is_followed(files: CharterFiles) -> None:
    files.add("prompts/real.md", "You handle orders, really.\n")
    (files.root / "alias.md").symlink_to(files.root / "prompts" / "real.md")
    charter = load_charter(files.write(TOOLS, header=with_prompt("alias.md")))
    assert charter.prompt_text == "You handle orders, really.\n"


def test_a_directory_listed_in_the_setting_may_hold_referenced_files(
    files: CharterFiles, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path_factory.mktemp("shared")
    (shared / "p.md").write_text("A shared prompt.\n", encoding="utf-8")
    path = files.write(TOOLS, header=with_prompt(str(shared / "p.md")))
    assert "is outside" in check_charter(path)[0].message
    monkeypatch.setenv(ALLOW_OUTSIDE_ENV, os.pathsep.join(["relative/ignored", str(shared)]))
    assert load_charter(path).prompt_text == "A shared prompt.\n"


def test_the_setting_lists_absolute_directories_only() -> None:
    env = {ALLOW_OUTSIDE_ENV: os.pathsep.join(["", "rel", "/srv/prompts", " /opt/x "])}
    assert allowed_roots(env) == (Path("/srv/prompts"), Path("/opt/x"))
    assert allowed_roots({}) == ()


def test_a_sibling_directory_sharing_a_prefix_is_outside(tmp_path: Path) -> None:
    (tmp_path / "charter").mkdir()
    (tmp_path / "charter-evil").mkdir()
    (tmp_path / "charter-evil" / "p.md").write_text("x", encoding="utf-8")
    found = read_reference(
        tmp_path / "charter", "../charter-evil/p.md", what="prompt file", roots=()
    )
    assert isinstance(found, FileRefused)
    assert "is outside the charter's directory" in found.message


def test_a_missing_file_says_where_it_was_looked_for(tmp_path: Path) -> None:
    found = read_reference(tmp_path, "nope.md", what="prompt file 'nope.md'", roots=())
    where = Path(os.path.realpath(tmp_path)) / "nope.md"
    assert found == FileRefused(
        f"prompt file 'nope.md' not found (looked at {where})",
        "paths are relative to the charter file",
        "missing",
    )
