"""Writing files so that a reader never sees half of one.

Data goes to a new temporary file beside the target, is flushed to disk, and is then moved
over the target with ``os.replace`` (atomic on one file system). Reports, cassettes, release
files and generated suites are all written this way.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["write_atomic", "write_temporary"]


def write_temporary(target: Path, data: bytes) -> Path:
    """Write ``data`` to a new file beside ``target``, flushed to disk; return its path."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never write through a file (or symlink) someone put there; 0o666 lets the
    # umask decide permissions, as for any file the user creates.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            # Without fsync a crash just after os.replace can leave an empty file in place.
            os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def write_atomic(target: Path, data: bytes | str) -> None:
    """Replace ``target`` with ``data`` (text is written as UTF-8), all or nothing.

    Creates the target's directory if it is missing.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temporary = write_temporary(target, payload)
    try:
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
