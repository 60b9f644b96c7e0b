"""What the durable tests share: settings on either backend, run specs, waiting."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from charter_examples.support_desk.demo import CHARTER_PATH

from charter import Charter
from charter.durable import RunSpec

T = TypeVar("T")
SECRET = {"CHARTER_SECRET_PAYMENTS_REFUND": "sk_test_durable_1234"}


def spec(ticket: str, user: str = "alice", tenant: str = "acme",
         charter_path: Path = CHARTER_PATH) -> RunSpec:  # fmt: skip
    charter = Charter.load(charter_path)
    return RunSpec(
        charter_path=str(charter_path), charter_sha256=charter.content_sha256, user=user,
        tenant=tenant, roles=("support",), environment="prod",
        input=f"Please handle ticket {ticket}.",
    )  # fmt: skip


def written_spec(folder: Path, charter_text: str, *, prompt: str, task: str) -> RunSpec:
    """A run of alice at acme (no roles, in prod) asking ``task`` of the charter
    ``charter_text``, written with its ``prompt`` into the new folder ``folder``."""
    folder.mkdir()
    (folder / "prompt.md").write_text(prompt, encoding="utf-8")
    path = folder / "charter.yaml"
    path.write_text(charter_text, encoding="utf-8")
    charter = Charter.load(path)
    return RunSpec(
        charter_path=str(path), charter_sha256=charter.content_sha256, user="alice",
        tenant="acme", roles=(), environment="prod", input=task,
    )  # fmt: skip


def charter_with(tmp_path: Path, extra_yaml: str) -> Path:
    """A copy of the support desk's charter with ``extra_yaml`` appended."""
    folder = tmp_path / "charter"
    shutil.copytree(CHARTER_PATH.parent, folder, ignore=shutil.ignore_patterns("*.py", "__py*"))
    path = folder / CHARTER_PATH.name
    path.write_text(path.read_text(encoding="utf-8") + "\n" + extra_yaml, encoding="utf-8")
    return path


def wait_for(what: str, probe: Callable[[], T | None], seconds: float = 30) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
