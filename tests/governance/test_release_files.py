"""A release bundles the files its charter names, read the way the loader reads them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from charter.contract.loader import load_charter
from charter.core.errors import UserError
from charter.governance.releases import _bundle
from tests.contract.helpers import HEADER


def test_a_file_swapped_for_a_fifo_after_loading_is_refused_not_waited_on(
    tmp_path: Path,
) -> None:
    (tmp_path / "prompt.md").write_text("You handle orders.\n", encoding="utf-8")
    path = tmp_path / "charter.yaml"
    path.write_text(HEADER + "tools:\n  get_order: {effect: read}\n", encoding="utf-8")
    charter = load_charter(path)
    (tmp_path / "prompt.md").unlink()
    os.mkfifo(tmp_path / "prompt.md")  # reading it would wait for a writer forever
    with pytest.raises(UserError) as caught:
        _bundle(charter)
    assert str(caught.value) == (
        "cannot read 'prompt.md': it is a named pipe, not a regular file; name a regular file "
        "(nothing was released)"
    )


def test_the_bundle_holds_each_named_file_as_text(tmp_path: Path) -> None:
    (tmp_path / "prompt.md").write_text("You handle orders.\n", encoding="utf-8")
    path = tmp_path / "charter.yaml"
    path.write_text(HEADER + "tools:\n  get_order: {effect: read}\n", encoding="utf-8")
    bundle = _bundle(load_charter(path))
    assert bundle["files"]["prompt.md"] == "You handle orders.\n"
    assert bundle["files"]["charter.yaml"] == path.read_text(encoding="utf-8")
