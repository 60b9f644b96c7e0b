"""Releases: immutable, content-addressed snapshots of a charter and the files it uses.

A release's id is the charter's ``content_sha256``: the hash of the canonical form of the
charter file, its prompt, its Cedar policies and its tools' schemas. Creating a release of
the same content twice gives the same release (comments and key order do not count).
The release keeps the files themselves (``bundle``), so any process can serve, diff or
evaluate it without the directory it came from: ``ReleaseStore.charter_of`` writes them to
``CHARTER_HOME/releases/<id>/`` and loads them, and refuses to serve a release whose
content no longer hashes to its id (e.g. the installed toolkit's schemas changed).

Versions (``v1``, ``v2``...) number a charter's releases in creation order, for people.
"""

from __future__ import annotations

import builtins
import json
import re
import shutil
import tempfile
import threading
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from charter.contract.files import FileRefused, read_reference
from charter.contract.loader import Charter
from charter.core.clock import Clock
from charter.core.errors import CharterInvalid, DatabaseUnavailable, UserError
from charter.core.files import write_atomic
from charter.governance.changelog import GovernanceLog
from charter.identity.names import canonical_person
from charter.storage.database import Database, from_db_time
from charter.storage.migrate import ensure_schema
from charter.storage.tables import releases

__all__ = ["Release", "ReleaseStore", "charter_file_of"]

BUNDLE_FORMAT = "charter.release-bundle"
_VERSION_REF = re.compile(r"^(?:(?P<name>[a-z0-9][a-z0-9-]*)@)?v(?P<version>\d{1,9})$")
_HASH_REF = re.compile(r"^[0-9a-f]{8,64}$")
_MAX_MESSAGE = 2000


@dataclass(frozen=True, slots=True)
class Release:
    id: str
    charter_name: str
    version: int
    author: str
    message: str
    created_at: datetime
    bundle: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.charter_name}@v{self.version}"

    @property
    def content(self) -> dict[str, Any]:
        """The canonical content the id hashes: charter spec, prompt, Cedar, tool schemas."""
        content: dict[str, Any] = self.bundle["content"]
        return content

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "charter": self.charter_name,
            "version": self.version,
            "label": self.label,
            "author": self.author,
            "message": self.message,
            "created_at": self.created_at.isoformat(),
            "files": sorted(self.bundle["files"]),
        }


def charter_file_of(path: Path) -> Path:
    """A charter directory's ``charter.yaml``, or the file itself."""
    if path.is_dir():
        candidate = path / "charter.yaml"
        if not candidate.is_file():
            raise UserError(f"{path} has no charter.yaml; give the charter file itself")
        return candidate
    return path


class ReleaseStore:
    """Creates, finds and serves releases kept in Charter's database."""

    def __init__(self, database: Database, clock: Clock, log: GovernanceLog, home: Path) -> None:
        ensure_schema(database)
        self._database = database
        self._clock = clock
        self._log = log
        self._home = home
        self._scratch: Path | None = None  # where a read-only store loads releases from
        self._charters: dict[str, Charter] = {}
        self._known: dict[str, Release] = {}
        self._lock = threading.Lock()

    def create(self, path: Path, *, author: str, message: str) -> tuple[Release, bool]:
        """Release the charter at ``path`` (a file, or a directory with charter.yaml).

        Returns:
            The release and whether it was created now (False: this content was released
            before, and that release is returned unchanged).

        Raises:
            CharterInvalid: the charter does not load.
            UserError: a bad author or message, or a referenced file outside its directory.
        """
        author = canonical_person(author, "--as")  # one spelling per person (issue 11)
        if not message.strip():
            raise UserError("a release needs a message saying what changed and why (--message)")
        charter = Charter.load(charter_file_of(path))
        existing = self.find(charter.content_sha256)
        if existing is not None:
            return existing, False
        bundle = _bundle(charter)
        for _ in range(5):  # a concurrent create may take the next version number first
            try:
                with self._database.engine.begin() as connection:
                    version = (
                        connection.execute(
                            select(func.coalesce(func.max(releases.c.version), 0)).where(
                                releases.c.charter_name == charter.name
                            )
                        ).scalar_one()
                        + 1
                    )
                    release = Release(
                        id=charter.content_sha256,
                        charter_name=charter.name,
                        version=version,
                        author=author,
                        message=message.strip()[:_MAX_MESSAGE],
                        created_at=self._clock.now().astimezone(UTC),
                        bundle=bundle,
                    )
                    connection.execute(
                        insert(releases).values(
                            id=release.id,
                            charter_name=release.charter_name,
                            version=release.version,
                            author=author,
                            message=release.message,
                            created_at=release.created_at,
                            bundle=json.dumps(bundle, sort_keys=True),
                        )
                    )
                    event = self._log.record(
                        connection,
                        charter_name=charter.name,
                        action="release_created",
                        actor=author,
                        reason=release.message,
                        release_id=release.id,
                        details={"version": version},
                        summary=f"created {release.label}",
                    )
            except IntegrityError:
                again = self.find(charter.content_sha256)
                if again is not None:
                    return again, False
                continue
            except SQLAlchemyError as exc:
                raise DatabaseUnavailable(f"cannot write the release: {exc}") from None
            self._log.publish(event)
            return release, True
        raise DatabaseUnavailable("could not number the release: too many concurrent creates")

    def find(self, release_id: str) -> Release | None:
        """The release with exactly this id. Releases never change, so once read one is
        kept in memory: serving a run does not read its bundle again."""
        with self._lock:
            known = self._known.get(release_id)
        if known is not None:
            return known
        rows = self._select(releases.c.id == release_id)
        if not rows:
            return None
        with self._lock:
            self._known[release_id] = rows[0]
        return rows[0]

    def get(self, ref: str, *, charter_name: str | None = None) -> Release:
        """The release ``ref`` names: its id, an id prefix (8+ hex digits), ``vN`` (with a
        charter name) or ``name@vN``.

        Raises:
            UserError: no such release, or a prefix matching several.
        """
        ref = ref.strip()
        if match := _VERSION_REF.fullmatch(ref):
            name = match.group("name") or charter_name
            if name is None:
                raise UserError(f"release {ref!r}: say which charter (name@{ref})")
            rows = self._select(
                (releases.c.charter_name == name)
                & (releases.c.version == int(match.group("version")))
            )
            if not rows:
                raise UserError(
                    f"charter {name!r} has no release {ref!r}; see 'charter release list'"
                )
            return rows[0]
        if _HASH_REF.fullmatch(ref):
            rows = self._select(releases.c.id.startswith(ref, autoescape=True))
            if charter_name is not None:
                rows = [r for r in rows if r.charter_name == charter_name]
            if len(rows) == 1:
                return rows[0]
            if len(rows) > 1:
                raise UserError(f"release prefix {ref!r} matches {len(rows)} releases; give more")
        raise UserError(
            f"no release {ref!r}; name one by id, id prefix, name@vN or vN "
            "(see 'charter release list')"
        )

    def list(self, charter_name: str | None = None) -> builtins.list[Release]:
        condition = releases.c.charter_name == charter_name if charter_name else None
        return self._select(condition)

    def charter_of(self, release: Release) -> Charter:
        """The release as a loaded charter, from its own files (cached per process).

        Raises:
            UserError: the files no longer load, or their content does not hash to the
                release's id here (e.g. the installed toolkit's tool schemas changed).
        """
        with self._lock:
            cached = self._charters.get(release.id)
        if cached is not None:
            return cached
        directory = self._files_root() / release.id
        for name, text in release.bundle["files"].items():
            target = directory / _safe_relative(name)
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                write_atomic(target, text)
        try:
            charter = Charter.load(directory / release.bundle["charter_file"])
        except CharterInvalid as exc:
            raise UserError(f"release {release.label} no longer loads here:\n{exc}") from None
        if charter.content_sha256 != release.id:
            raise UserError(
                f"release {release.label} cannot be served here: its content hashes to "
                f"{charter.content_sha256[:12]}, not {release.id[:12]} (the installed toolkit's "
                "tool schemas differ from the released ones); install the toolkit it was "
                "released with, or release again"
            )
        with self._lock:
            self._charters[release.id] = charter
        return charter

    def _files_root(self) -> Path:
        """Where releases' files are written to be loaded: ``CHARTER_HOME/releases``, or for
        a store on read-only storage (reading commands) a private directory of this process,
        removed with it, so reading writes nothing beside the database (which may be on a
        read-only mount, or an archive that must stay as it is)."""
        if not self._database.read_only:
            return self._home / "releases"
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="charter-releases-"))
            weakref.finalize(self, shutil.rmtree, self._scratch, ignore_errors=True)
        return self._scratch

    def _select(self, condition: Any) -> builtins.list[Release]:
        query = select(releases).order_by(releases.c.charter_name, releases.c.version)
        if condition is not None:
            query = query.where(condition)
        try:
            with self._database.engine.connect() as connection:
                rows = connection.execute(query).mappings().all()
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"cannot read releases: {exc}") from None
        return [
            Release(
                id=row["id"],
                charter_name=row["charter_name"],
                version=row["version"],
                author=row["author"],
                message=row["message"],
                created_at=from_db_time(row["created_at"]),
                bundle=json.loads(row["bundle"]),
            )
            for row in rows
        ]


def _bundle(charter: Charter) -> dict[str, Any]:
    """The files a release needs, relative to the charter's directory, and its content."""
    assert charter.path is not None
    base = charter.path.parent
    spec = charter.spec
    named = [charter.path.name, spec.prompt]
    if spec.policies.cedar:
        named.append(spec.policies.cedar)
    if spec.evals is not None:
        named += [p for p in (spec.evals.golden, spec.evals.redteam) if p]
    files: dict[str, str] = {}
    for name in named:
        relative = _safe_relative(name)
        source = (base / relative).resolve()
        if not source.is_relative_to(base.resolve()):
            raise UserError(
                f"{name!r} is outside the charter's directory; a release keeps only files under it"
            )
        # Read as the loader reads (a file swapped for a FIFO since loading must not hang).
        data = read_reference(base, relative.as_posix(), what=repr(name), roots=())
        if isinstance(data, FileRefused):
            raise UserError(f"{data.message}; {data.hint} (nothing was released)")
        try:
            files[relative.as_posix()] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(
                f"{name!r} is not UTF-8; save it as UTF-8 (nothing was released)"
            ) from None
    return {
        "format": BUNDLE_FORMAT,
        "version": 1,
        "charter_file": charter.path.name,
        "files": files,
        "content": json.loads(charter.content),
    }


def _safe_relative(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise UserError(f"release file {name!r} must be a path inside the charter's directory")
    return path
