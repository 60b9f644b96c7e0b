"""Where a SQLite URL points, and how to open that file without ever writing to it.

A URL names the file plainly (``sqlite:////var/lib/charter.sqlite3``) or as a SQLite URI
(``sqlite:///file:/var/lib/charter.sqlite3?mode=ro&uri=true``); ``mode=ro`` or
``immutable=1`` in a URI asks for a read-only open.

Reading a WAL-mode file (Charter's files are) normally needs its ``-shm`` index, which a
reader creates beside the file when it is missing. On read-only storage (a read-only mount,
a directory the user may not write, an archived copy taken without its ``-wal``/``-shm``)
that cannot be done, and SQLite refuses a ``mode=ro`` open. Such a file is opened
``immutable=1`` instead: SQLite then takes no locks and ignores any ``-wal`` file, which is
right for a copy nobody writes; what that leaves unseen is said in ``notes``. On writable
storage a ``mode=ro`` reader may leave an empty ``-wal`` and a ``-shm`` index beside the
file, as any SQLite reader of a WAL file does; the database file itself is never written.
(Opening every file ``immutable=1`` would leave nothing, but could read torn pages while
another process writes, and a verifier must not report a break that is not there.)
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

from sqlalchemy.engine import URL

from charter.core.errors import DatabaseUnavailable

__all__ = ["SqliteFile"]

_TRUE = frozenset({"1", "true", "yes", "on"})
# Parameters this module sets itself on a read-only open; the others are passed through.
_OWN = frozenset({"mode", "immutable", "uri"})


@dataclass(frozen=True, slots=True)
class SqliteFile:
    """The file a SQLite URL names.

    Attributes:
        path: The file (None for an in-memory database).
        params: The URI's query parameters (empty for a plain path).
        asks_read_only: The URL itself asks for a read-only open (``mode=ro``, ``immutable=1``).
    """

    path: Path | None
    params: Mapping[str, str]
    asks_read_only: bool

    @classmethod
    def of(cls, url: URL) -> SqliteFile:
        """Parse the database part of a ``sqlite://`` URL."""
        database = url.database or ""
        query = {key: str(value) for key, value in url.query.items()}
        is_uri = query.get("uri", "").lower() in _TRUE and database.startswith("file:")
        if not is_uri:
            path = None if database in ("", ":memory:") else Path(database).expanduser()
            return cls(path, {}, asks_read_only=False)
        location = database.removeprefix("file:")
        if location.startswith("//"):  # file://host/path: only the local host is a file
            host, _, rest = location[2:].partition("/")
            if host not in ("", "localhost"):
                raise DatabaseUnavailable(
                    f"SQLite URI file://{host}/... names another host; use file:/path/to/file"
                )
            location = f"/{rest}"
        params = {key: value for key, value in query.items() if key != "uri"}
        asks = params.get("mode") == "ro" or params.get("immutable", "").lower() in _TRUE
        in_memory = location in ("", ":memory:") or params.get("mode") == "memory"
        return cls(None if in_memory else Path(location).expanduser(), params, asks)

    def read_only_connector(self, timeout: float) -> tuple[Callable[[], sqlite3.Connection], str]:
        """A connection factory that never writes the file, and how it opens it.

        Tries ``mode=ro`` first (it sees what concurrent writers commit); falls back to
        ``immutable=1`` when the storage cannot take a reader's ``-shm`` file.

        Returns:
            The factory, and ``"ro"`` or ``"immutable"``.

        Raises:
            DatabaseUnavailable: There is no such file, or it cannot be read.
        """
        path = self.path
        if path is None:
            raise DatabaseUnavailable(
                "an in-memory SQLite database cannot be opened read-only: it holds nothing "
                "to read; name a database file"
            )
        if not path.is_file():
            raise DatabaseUnavailable(
                f"no Charter database at {str(path)!r} (a read-only open creates none); run "
                "something first, or set CHARTER_HOME / CHARTER_DATABASE_URL to where Charter "
                "keeps its state"
            )
        asks_immutable = self.params.get("immutable", "").lower() in _TRUE
        modes = ("immutable",) if asks_immutable else ("ro", "immutable")
        failure: sqlite3.Error | None = None
        for mode in modes:
            uri = self._uri(mode)

            def connect(uri: str = uri) -> sqlite3.Connection:
                return sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)

            try:
                probe = connect()
                try:
                    # The first read opens the WAL index: where mode=ro fails on read-only
                    # storage.
                    probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
                finally:
                    probe.close()
            except sqlite3.Error as exc:
                failure = exc
                continue
            return connect, mode
        raise DatabaseUnavailable(
            f"cannot read the SQLite file {str(path)!r}: {failure}; check that it is a "
            "readable SQLite database"
        )

    def _uri(self, mode: str) -> str:
        params = {key: value for key, value in self.params.items() if key not in _OWN}
        params["mode"] = "ro"
        if mode == "immutable":
            params["immutable"] = "1"
        assert self.path is not None
        return f"file:{quote(str(self.path.absolute()))}?{urlencode(params)}"

    def read_only_reason(self, mode: str | None) -> str | None:
        """Why this file cannot be written (None if this process could write it).

        ``mode`` is how a read-only handle opened it (None for a read-write handle).
        """
        path = self.path
        if path is None:
            return None
        if self.asks_read_only:
            return "the URL opens it read-only"
        try:
            on_read_only_mount = bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
        except OSError:
            on_read_only_mount = False
        if on_read_only_mount:
            return "it is on a read-only mount"
        # os.access answers for this process: root may write a file with mode 444.
        if path.exists() and not os.access(path, os.W_OK):
            return "the file is not writable"
        if mode == "immutable" or not os.access(path.parent, os.W_OK):
            return "its directory is not writable"
        return None

    def notes(self, mode: str | None) -> tuple[str, ...]:
        """What a reader of this file in ``mode`` does not see."""
        if mode != "immutable" or self.path is None:
            return ()
        wal = self.path.with_name(f"{self.path.name}-wal")
        try:
            unread = wal.stat().st_size > 0
        except OSError:
            unread = False
        if not unread:
            return ()
        return (
            f"{wal.name} beside it holds commits not yet copied into the file; they cannot be "
            "read without writing beside the file, so they are not seen: copy both files "
            "(and the -shm) to writable storage to read them",
        )
