from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.helpers import CharterFiles


@pytest.fixture
def files(tmp_path: Path) -> CharterFiles:
    """An empty charter directory with the prompt every test charter names."""
    (tmp_path / "prompt.md").write_text("You handle orders.\n", encoding="utf-8")
    return CharterFiles(tmp_path)
