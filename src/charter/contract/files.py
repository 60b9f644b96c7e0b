"""Reading the files a charter names: regular files only, bounded, inside the charter's folder.

Every file Charter reads because a charter or an operator named it comes through
``read_file``: the charter itself, its prompt, its Cedar file, the eval suites it lists and
suite files given on the command line. A name can point anywhere, so a read must not

- block or run away: it is read by ``core.files.read_regular`` (opened without blocking,
  judged by ``fstat`` of what was opened, a regular file only, at most ``max_bytes``);
- escape: ``prompt: /etc/shadow`` or ``../../etc/passwd`` would send a host's secrets to a
  model provider or into a release bundle. Files a charter references must resolve (symlinks
  included) inside the charter's directory, unless the operator lists more directories in
  ``CHARTER_ALLOW_FILES_OUTSIDE`` (``os.pathsep``-separated absolute paths).

A refusal is a ``FileRefused`` value (what is wrong and how to fix it), which callers turn
into a ``file:line`` problem.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from charter.core.files import FileRefused, RefusalKind, name_refused, read_regular

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
_TOO_BIG = "a charter and its files are configuration; move data elsewhere"


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
    refused = name_refused(name, what)
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
    return read_regular(path, what=what, max_bytes=max_bytes, too_big_hint=_TOO_BIG)
