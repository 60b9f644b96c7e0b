"""Files Charter reads because someone named them, and files it writes whole.

Reading (``read_regular``): a name can point anywhere, so a read must not block or run
away. A FIFO opened for reading waits for a writer forever, and ``/dev/zero`` never ends. The
file is opened with ``O_NONBLOCK`` and judged by ``fstat`` of the opened descriptor (a
``stat`` before the open only keeps device files from being opened at all; a rename in
between cannot win), only a regular file is read, and at most ``max_bytes`` plus one bytes
are read whatever its size claims. A refusal is a ``FileRefused`` value (what is wrong, how
to fix it), which callers turn into a problem at a line (the charter loader) or an error (the
secret files). Which files may be named at all is the caller's business
(``contract.files``: inside the charter's directory).

Writing (``write_atomic``): data goes to a new temporary file beside the target, is flushed
to disk, and is then moved over the target with ``os.replace`` (atomic on one file system),
so a reader never sees half of one. Reports, cassettes, release files and generated suites
are all written this way.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "FileRefused",
    "RefusalKind",
    "name_refused",
    "read_regular",
    "write_atomic",
    "write_temporary",
]

# Longer names are refused before the file system sees them (Linux allows 4096 bytes a
# path and 255 a component; the error it gives is less clear than ours).
_MAX_NAME = 4096

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
)

RefusalKind = Literal[
    "missing", "not_regular", "unreadable", "too_big", "outside", "bad_name", "exposed"
]


@dataclass(frozen=True, slots=True)
class FileRefused:
    """Why a named file was not read (``kind``), and what to do about it."""

    message: str
    hint: str
    kind: RefusalKind = "unreadable"


def read_regular(
    path: Path,
    *,
    what: str,
    max_bytes: int,
    too_big_hint: str = "name a smaller file",
    vet: Callable[[os.stat_result], FileRefused | None] | None = None,
) -> bytes | FileRefused | None:
    """The bytes of the regular file at ``path`` (symlinks followed), read without blocking
    and with a bound; None when there is no such file.

    Args:
        path: the file.
        what: names the file in messages (``"prompt file 'p.md'"``, ``"secret file '...'"``).
        max_bytes: the most it may hold; a larger file is refused unread.
        too_big_hint: what to do about a file over ``max_bytes``.
        vet: judges the opened file's ``fstat`` (e.g. its permissions) before it is read;
            returns a refusal, or None to read it.
    """
    fd = _open_regular(path, what)
    if fd is None or isinstance(fd, FileRefused):
        return fd
    try:
        status = os.fstat(fd)
        refused = vet(status) if vet is not None else None
        if refused is not None:
            return refused
        if status.st_size > max_bytes:
            return _too_big(what, f"is {status.st_size} bytes", max_bytes, too_big_hint)
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:  # st_size can lie (a growing file, /proc): read with a bound
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            return _too_big(what, "has grown", max_bytes, too_big_hint)
        return b"".join(chunks)
    except OSError as exc:
        return FileRefused(f"cannot read {what}: {_reason(exc)}", "check the path and permissions")
    finally:
        os.close(fd)


def name_refused(name: str, what: str) -> FileRefused | None:
    """Why ``name`` cannot name a file at all (a NUL, too long), or None."""
    if "\0" in name:
        return FileRefused(
            f"cannot read {what}: its name contains a NUL character", "remove it", "bad_name"
        )
    if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME:
        return FileRefused(
            f"cannot read {what}: the name is too long ({len(name)} characters)",
            "check the path",
            "bad_name",
        )
    return None


def _open_regular(path: Path, what: str) -> int | FileRefused | None:
    """A descriptor open on the regular file at ``path``; None if there is no such file."""
    refused = name_refused(str(path), what)
    if refused is not None:
        return refused
    try:
        # A stat before opening keeps device files from being opened at all (opening some
        # has effects); the fstat after opening decides, so a rename in between cannot win.
        if not stat.S_ISREG(mode := os.stat(path).st_mode):
            return _not_regular(mode, what)
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return FileRefused(f"cannot read {what}: {_reason(exc)}", "check the path and permissions")
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        os.close(fd)
        return FileRefused(f"cannot read {what}: {_reason(exc)}", "check the path and permissions")
    if not stat.S_ISREG(mode):
        os.close(fd)
        return _not_regular(mode, what)
    return fd


def _not_regular(mode: int, what: str) -> FileRefused:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISSOCK, "a socket"),
    )
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    return FileRefused(
        f"cannot read {what}: it is {kind}, not a regular file",
        "name a regular file",
        "not_regular",
    )


def _too_big(what: str, size: str, limit: int, hint: str) -> FileRefused:
    return FileRefused(f"{what} {size}, more than the {limit} allowed", hint, "too_big")


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long"
    return exc.strerror or str(exc)


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
