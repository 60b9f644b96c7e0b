"""Reading the files a charter names: regular files only, bounded, inside the charter's folder.

Every file Charter reads because a charter or an operator named it comes through
``read_file``: the charter itself, its prompt, its Cedar file, the eval suites it lists and
suite files given on the command line. A name can point anywhere, so a read must not

- block: a FIFO opened for reading waits for a writer forever, and ``/dev/zero`` never ends.
  The file is opened with ``O_NONBLOCK`` and judged by ``fstat`` of the opened descriptor
  (not by a ``stat`` before the open, which a rename could race), and at most ``max_bytes``
  plus one are read;
- escape: ``prompt: /etc/shadow`` or ``../../etc/passwd`` would send a host's secrets to a
  model provider or into a release bundle. Files a charter references must resolve (symlinks
  included) inside the charter's directory, unless the operator lists more directories in
  ``CHARTER_ALLOW_FILES_OUTSIDE`` (``os.pathsep``-separated absolute paths).

A refusal is a ``FileRefused`` value (what is wrong and how to fix it), which callers turn
into a ``file:line`` problem.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "ALLOW_OUTSIDE_ENV",
    "MAX_FILE_BYTES",
    "FileRefused",
    "RefusalKind",
    "allowed_roots",
    "read_file",
    "read_reference",
    "resolve_reference",
]

MAX_FILE_BYTES = 1_000_000
ALLOW_OUTSIDE_ENV = "CHARTER_ALLOW_FILES_OUTSIDE"
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


RefusalKind = Literal["missing", "not_regular", "unreadable", "too_big", "outside", "bad_name"]


@dataclass(frozen=True, slots=True)
class FileRefused:
    """Why a named file was not read (``kind``), and what to do about it."""

    message: str
    hint: str
    kind: RefusalKind = "unreadable"


def allowed_roots(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The directories besides a charter's own that its referenced files may live in.

    Read from ``CHARTER_ALLOW_FILES_OUTSIDE``; relative entries are ignored (they would
    depend on the working directory), and each entry is resolved (symlinks followed).
    """
    env = os.environ if environ is None else environ
    roots: list[Path] = []
    for entry in env.get(ALLOW_OUTSIDE_ENV, "").split(os.pathsep):
        entry = entry.strip()
        if entry and os.path.isabs(entry) and "\0" not in entry:
            roots.append(Path(os.path.realpath(entry)))
    return tuple(roots)


def resolve_reference(
    base: Path, name: str, *, what: str, roots: tuple[Path, ...] | None = None
) -> Path | FileRefused:
    """The real path of ``name`` (relative to ``base``, the charter's directory), or why not.

    The path must stay inside ``base`` or one of ``roots`` (default ``allowed_roots()``)
    after every symlink is followed. ``what`` names the file in messages (e.g.
    ``"prompt file 'p.md'"``).
    """
    refused = _bad_name(name, what)
    if refused is not None:
        return refused
    home = Path(os.path.realpath(base))
    target = Path(os.path.realpath(home / name))
    allowed = (home, *(allowed_roots() if roots is None else roots))
    if not any(target.is_relative_to(root) for root in allowed):
        return FileRefused(
            f"{what} is outside the charter's directory {str(home)!r}",
            "keep referenced files next to the charter file, or list their directory in "
            f"{ALLOW_OUTSIDE_ENV}",
            "outside",
        )
    return target


def read_file(
    path: Path, *, what: str = "file", max_bytes: int = MAX_FILE_BYTES
) -> bytes | FileRefused:
    """The bytes of the regular file at ``path``, read without blocking and with a bound.

    ``what`` names the file in messages (``"file"``, ``"prompt file 'p.md'"``).
    """
    data = _read(path, what, max_bytes)
    return FileRefused(f"{what} not found", "check the path", "missing") if data is None else data


def read_reference(
    base: Path,
    name: str,
    *,
    what: str,
    max_bytes: int = MAX_FILE_BYTES,
    roots: tuple[Path, ...] | None = None,
) -> bytes | FileRefused:
    """Read ``name``, a file a charter in ``base`` references (see ``resolve_reference``)."""
    target = resolve_reference(base, name, what=what, roots=roots)
    if isinstance(target, FileRefused):
        return target
    data = _read(target, what, max_bytes)
    if data is None:
        return FileRefused(
            f"{what} not found (looked at {target})",
            "paths are relative to the charter file",
            "missing",
        )
    return data


def _read(path: Path, what: str, max_bytes: int) -> bytes | FileRefused | None:
    """``read_file``, with None for a file that does not exist."""
    fd = _open_regular(path, what)
    if fd is None or isinstance(fd, FileRefused):
        return fd
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            return _too_big(f"is {size} bytes", max_bytes, what)
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:  # st_size can lie (a growing file, /proc): read with a bound
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            return _too_big("has grown", max_bytes, what)
        return b"".join(chunks)
    except OSError as exc:
        return FileRefused(f"cannot read {what}: {_reason(exc)}", "check the path and permissions")
    finally:
        os.close(fd)


def _open_regular(path: Path, what: str) -> int | FileRefused | None:
    """A descriptor open on the regular file at ``path``; None if there is no such file."""
    refused = _bad_name(str(path), what)
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


def _bad_name(name: str, what: str) -> FileRefused | None:
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


def _too_big(size: str, limit: int, what: str) -> FileRefused:
    return FileRefused(
        f"{what} {size}, more than the {limit} allowed",
        "a charter and its files are configuration; move data elsewhere",
        "too_big",
    )


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long"
    return exc.strerror or str(exc)
