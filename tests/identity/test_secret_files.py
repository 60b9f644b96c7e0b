"""A credential file is read the careful way the loader reads files (issue 11, sibling of
defect 3): opened without blocking, judged by ``fstat`` of what was opened, a regular file
only, read with a bound. ``read_text`` on ``$CHARTER_HOME/secrets/<name>`` hung forever on a
FIFO and read a huge file whole into memory, in the middle of a tool call.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from charter.core.errors import UserError
from charter.identity.secrets import MAX_SECRET_BYTES, FileSecretProvider

SECRET = "sk_live_0123456789abcdef"


def _secret(directory: Path, name: str, data: bytes, mode: int = 0o600) -> Path:
    path = directory / name
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def _get(directory: Path, name: str) -> str | BaseException | None:
    """``FileSecretProvider(directory).get(name)`` in a thread: its result or error, or a
    failure if it has not finished in 20 s (a FIFO blocks its reader until a writer comes)."""
    outcome: list[str | BaseException | None] = []

    def target() -> None:
        try:
            outcome.append(FileSecretProvider(directory).get(name))
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=20)
    if thread.is_alive():
        path = directory / name
        if path.is_fifo():  # let the reader go: a writer that opens and closes gives EOF
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout=5)
        pytest.fail(f"reading the secret {name!r} did not finish")
    return outcome[0]


def _refusal(directory: Path, name: str) -> str:
    outcome = _get(directory, name)
    assert isinstance(outcome, UserError), outcome
    return str(outcome)


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "payments", 0o600)
    message = _refusal(tmp_path, "payments")
    assert repr(str(tmp_path / "payments")) in message
    assert "a named pipe, not a regular file" in message


def test_a_symlink_to_a_named_pipe_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe", 0o600)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "payments").symlink_to(tmp_path / "pipe")
    assert "a named pipe, not a regular file" in _refusal(tmp_path / "secrets", "payments")


def test_a_symlink_to_dev_zero_is_refused_as_a_device(tmp_path: Path) -> None:
    (tmp_path / "payments").symlink_to("/dev/zero")
    message = _refusal(tmp_path, "payments")
    assert "a device, not a regular file" in message


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "payments").mkdir(mode=0o700)
    assert "a directory, not a regular file" in _refusal(tmp_path, "payments")


def test_a_file_larger_than_any_credential_is_refused_unread(tmp_path: Path) -> None:
    _secret(tmp_path, "payments", b"k" * (MAX_SECRET_BYTES + 1))
    message = _refusal(tmp_path, "payments")
    assert f"more than the {MAX_SECRET_BYTES} allowed" in message
    assert "k" * 100 not in message


def test_a_huge_sparse_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "payments"
    with path.open("wb") as handle:
        handle.truncate(64 * 2**30)  # 64 GiB of holes: reading it whole would exhaust memory
    os.chmod(path, 0o600)
    assert f"more than the {MAX_SECRET_BYTES} allowed" in _refusal(tmp_path, "payments")


def test_a_credential_up_to_the_limit_is_read(tmp_path: Path) -> None:
    value = "k" * (MAX_SECRET_BYTES - 1)
    _secret(tmp_path, "big", (value + "\n").encode())
    assert _get(tmp_path, "big") == value


def test_a_symlinked_credential_is_read_as_kubernetes_mounts_them(tmp_path: Path) -> None:
    # A Kubernetes secret volume: <name> -> ..data/<name>, ..data -> ..<timestamp>/
    data = tmp_path / "..2026_01_01"
    data.mkdir()
    _secret(data, "payments", (SECRET + "\n").encode())
    (tmp_path / "..data").symlink_to(data.name)
    (tmp_path / "payments").symlink_to(Path("..data") / "payments")
    assert _get(tmp_path, "payments") == SECRET


def test_a_file_others_can_read_is_still_refused_and_its_value_not_shown(tmp_path: Path) -> None:
    _secret(tmp_path, "payments", SECRET.encode(), 0o644)
    message = _refusal(tmp_path, "payments")
    assert "chmod 600" in message
    assert SECRET not in message


def test_a_missing_credential_is_none(tmp_path: Path) -> None:
    assert _get(tmp_path, "payments") is None
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert _get(tmp_path, "dangling") is None
