"""The audit log: append-only, hash-chained per tenant, stored in SQLite.

Every run start, tool call and run end becomes one ``AuditEntry``. ``AuditLog.append`` seals it
into its tenant's chain and returns only once the record is committed, so a caller that got an
``AuditRecord`` back knows the record is on disk. If the log cannot be written, ``append``
raises ``AuditUnavailable`` and Charter refuses to act unaudited.

Sealing
    Each record gets a 1-based ``position`` in its tenant's chain. Its *payload* is the
    canonical JSON (``charter.core.canonical``) of every ``AuditEntry`` field plus
    ``position``; ``at`` is written in UTC as ISO 8601 with microseconds and offset, ``roles``
    as a list. The record's hash is ``sha256_hex(prev_hash + "\\n" + payload)``, where
    ``prev_hash`` is the previous record's hash in the same tenant, or ``"0" * 64`` for the
    first. Chains are per tenant so one tenant's records can be exported, verified or purged
    without the others.

Storage
    ``audit_records`` keeps the exact payload text (the thing that was hashed) *and* every
    scalar field in its own column, so the log can be queried with plain ``sqlite3``
    (``roles`` and ``arguments`` live only in the payload; use ``json_extract(payload, ...)``).
    ``audit_heads`` keeps each tenant's last position and hash, updated in the same
    transaction as the inserts, so deleting records from the end of a chain is detectable.
    A log remembers the heads it wrote; when another process has appended since, the insert
    collides with ``UNIQUE (tenant, position)`` and the batch is retried with heads read from
    the file, so sharing one file between processes stays safe without a read per commit.
    Triggers refuse ``UPDATE`` and ``DELETE`` on ``audit_records``; they stop accidents, not
    attackers, which is what ``verify`` is for. ``row_id`` is a plain ``INTEGER PRIMARY KEY``:
    ``AUTOINCREMENT`` would add a page write to every commit (about 15% of an append) only to
    avoid reusing the ids of deleted rows, and deletions are refused and detected anyway.
    ``PRAGMA user_version`` is the schema version.

Verification
    ``verify`` trusts nothing it has not recomputed: per tenant, in position order, positions
    must be contiguous from 1, each hash must recompute from the stored ``prev_hash`` and
    payload, the payload must be canonical JSON with exactly the expected fields, every column
    must equal its payload field (so editing a column *or* the payload is caught), each
    ``prev_hash`` must equal the previous record's hash, ``row_id`` must grow with position,
    and the head row must name the last record's position and hash. Limits: someone with write
    access who rewrites a chain's whole suffix *and* its head is not detectable from inside
    the file; compare head hashes against a copy kept elsewhere to catch that.

Durability and concurrency
    WAL mode with ``synchronous=NORMAL``: a returned ``append`` survives a crash of the
    process; the most recent commits can be lost on power failure or OS crash. Appends use
    leader-based group commit: concurrent callers queue their entries and one of them writes
    the whole queue in a single ``BEGIN IMMEDIATE`` transaction that reads each tenant's head
    from the database, so several processes may share one file safely. A failing transaction
    is rolled back whole and every caller in it gets ``AuditUnavailable``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self, get_args

from charter.core.canonical import canonical_json, canonical_text, sha256_hex, to_jsonable
from charter.core.errors import AuditUnavailable

__all__ = [
    "GENESIS_HASH",
    "SCHEMA_VERSION",
    "AuditEntry",
    "AuditKind",
    "AuditLog",
    "AuditRecord",
    "ChainBreak",
    "VerifyReport",
]

AuditKind = Literal["run_started", "tool_call", "run_finished"]

GENESIS_HASH: Final = "0" * 64
"""The ``prev_hash`` of the first record of every tenant's chain."""

SCHEMA_VERSION: Final = 1
"""Stored as ``PRAGMA user_version``; a file from a newer Charter is refused, not guessed at."""

_KINDS: Final[frozenset[str]] = frozenset(get_args(AuditKind))
_BUSY_TIMEOUT_MS: Final = 5000
_PAGE_SIZE: Final = 256


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What a caller records: one run start, tool call or run end.

    ``arguments`` must already be redacted and JSON-able. It is read back in its JSON form:
    tuples come back as lists and ``Decimal`` values as exact strings.

    Raises:
        ValueError: ``at`` is naive, ``kind`` is unknown or ``tenant`` is empty.
        TypeError: a field has the wrong type (checked here so that one bad entry cannot
            fail a group commit shared with other callers).
    """

    kind: AuditKind
    at: datetime
    tenant: str
    user: str
    service_principal: str
    roles: tuple[str, ...]
    environment: str
    run_id: str
    charter_name: str
    charter_sha256: str
    model: str
    prompt_sha256: str
    tool: str | None
    arguments: dict[str, Any] | None
    arguments_sha256: str | None
    verdict: str | None
    reason: str
    rule_id: str | None
    stage: str | None
    outcome: str
    trace_id: str
    span_id: str
    detail: str = ""
    approval_request_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}, not {self.kind!r}")
        if not isinstance(self.at, datetime):
            raise TypeError(f"at must be a datetime, not {type(self.at).__name__}")
        if self.at.utcoffset() is None:
            raise ValueError("at must be timezone-aware (use Clock.now(), which returns UTC)")
        for name in _REQUIRED_TEXT:
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a str, not {type(getattr(self, name)).__name__}")
        for name in _OPTIONAL_TEXT:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str or None, not {type(value).__name__}")
        if not self.tenant:
            raise ValueError("tenant must not be empty; it names the chain the record joins")
        if not isinstance(self.roles, tuple) or not all(isinstance(r, str) for r in self.roles):
            raise TypeError("roles must be a tuple of str")
        if self.arguments is not None and not isinstance(self.arguments, dict):
            raise TypeError(
                f"arguments must be a dict or None, not {type(self.arguments).__name__}"
            )


_ENTRY_FIELDS: Final[tuple[str, ...]] = tuple(f.name for f in fields(AuditEntry))
_OPTIONAL_TEXT: Final = (
    "tool",
    "arguments_sha256",
    "verdict",
    "rule_id",
    "stage",
    "approval_request_id",
)
_REQUIRED_TEXT: Final = tuple(
    n for n in _ENTRY_FIELDS if n not in {"kind", "at", "roles", "arguments", *_OPTIONAL_TEXT}
)
_PAYLOAD_KEYS: Final[frozenset[str]] = frozenset((*_ENTRY_FIELDS, "position"))

_get_fields = attrgetter(*_ENTRY_FIELDS)
# In canonical JSON (sorted keys) "position" sits right before the "prompt_sha256" key; see
# _prepare for why the last occurrence of this text is always that key.
_POSITION_SPLICE: Final = ',"prompt_sha256":'
assert max(k for k in _ENTRY_FIELDS if k < "position") == "outcome"
assert min(k for k in _ENTRY_FIELDS if k > "position") == "prompt_sha256"

# Every scalar field has a column; ``roles`` and ``arguments`` live only in the payload
# (query them with json_each / json_extract). ``tenant`` and ``position`` lead for the index.
_COLUMN_FIELDS: Final = tuple(n for n in _ENTRY_FIELDS if n not in {"tenant", "roles", "arguments"})
_get_columns = attrgetter(*_COLUMN_FIELDS)
_AT_INDEX: Final = _COLUMN_FIELDS.index("at")
_ALL_COLUMNS: Final = ("tenant", "position", *_COLUMN_FIELDS, "payload", "prev_hash", "hash")

_NULLABLE_COLUMNS: Final = frozenset(_OPTIONAL_TEXT)
_COLUMN_DEFS: Final = ",\n    ".join(
    f"{name} {'INTEGER' if name == 'position' else 'TEXT'}"
    f"{'' if name in _NULLABLE_COLUMNS else ' NOT NULL'}"
    for name in _ALL_COLUMNS
)

_SCHEMA: Final = (
    f"""CREATE TABLE IF NOT EXISTS audit_records (
    row_id INTEGER PRIMARY KEY,
    {_COLUMN_DEFS},
    UNIQUE (tenant, position)
) STRICT""",
    """CREATE TABLE IF NOT EXISTS audit_heads (
    tenant TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    hash TEXT NOT NULL
) STRICT, WITHOUT ROWID""",
    """CREATE TRIGGER IF NOT EXISTS audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_records_no_delete BEFORE DELETE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END""",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

# Column lists are joined from the constants above (never from input), hence the noqa.
_INSERT: Final = (
    f"INSERT INTO audit_records ({', '.join(_ALL_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _ALL_COLUMNS)})"
)
_VERIFY_ROWS: Final = (
    f"SELECT row_id, {', '.join(_ALL_COLUMNS)} FROM audit_records "  # noqa: S608
    "WHERE tenant = ? ORDER BY position"
)
_SELECT_HEAD: Final = "SELECT position, hash FROM audit_heads WHERE tenant = ?"
_UPSERT_HEAD: Final = (
    "INSERT INTO audit_heads (tenant, position, hash) VALUES (?, ?, ?) "
    "ON CONFLICT (tenant) DO UPDATE SET position = excluded.position, hash = excluded.hash"
)
_LAST_ROWID: Final = "SELECT last_insert_rowid()"
# Readers select these six columns, in this order (see _record_from_row).
_TAIL_ALL: Final = (
    "SELECT payload, tenant, position, row_id, prev_hash, hash FROM audit_records "
    "ORDER BY row_id DESC LIMIT ?"
)
_TAIL_TENANT: Final = (
    "SELECT payload, tenant, position, row_id, prev_hash, hash FROM audit_records "
    "WHERE tenant = ? ORDER BY position DESC LIMIT ?"
)
_PAGE_ALL: Final = (
    "SELECT payload, tenant, position, row_id, prev_hash, hash FROM audit_records "
    "WHERE row_id > ? ORDER BY row_id LIMIT ?"
)
_PAGE_TENANT: Final = (
    "SELECT payload, tenant, position, row_id, prev_hash, hash FROM audit_records "
    "WHERE tenant = ? AND position > ? ORDER BY position LIMIT ?"
)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An ``AuditEntry`` as sealed into its tenant's chain."""

    entry: AuditEntry
    position: int
    row_id: int
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """A flat JSON-able dict: every entry field plus the chain fields.

        ``at`` is ISO 8601 in UTC, ``roles`` a list, exactly as in the sealed payload.
        """
        entry = self.entry
        out: dict[str, Any] = dict(
            zip(_ENTRY_FIELDS, attrgetter(*_ENTRY_FIELDS)(entry), strict=True)
        )
        out["at"] = _at_text(entry.at)
        out["roles"] = list(entry.roles)
        out["arguments"] = to_jsonable(entry.arguments)
        out["position"] = self.position
        out["row_id"] = self.row_id
        out["prev_hash"] = self.prev_hash
        out["hash"] = self.hash
        return out


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first place a tenant's chain stops being trustworthy."""

    tenant: str
    position: int
    row_id: int | None
    problem: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the break."""
        return {
            "tenant": self.tenant,
            "position": self.position,
            "row_id": self.row_id,
            "problem": self.problem,
        }


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of ``AuditLog.verify``.

    ``first_break`` is the lowest bad position in the first broken tenant (tenants in sorted
    order). Checking a tenant stops at its first break, since everything after it is suspect;
    ``records_checked`` counts the records actually examined.
    """

    ok: bool
    records_checked: int
    tenants: tuple[str, ...]
    first_break: ChainBreak | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the report."""
        return {
            "ok": self.ok,
            "records_checked": self.records_checked,
            "tenants": list(self.tenants),
            "first_break": None if self.first_break is None else self.first_break.as_dict(),
        }


class _Closed(Exception):
    """Raised inside a batch written after ``close``; ``append`` turns it into a clear error."""


class _Slot:
    """One pending append: the pre-serialized entry and, once written, its outcome."""

    __slots__ = ("columns", "done", "entry", "error", "payload_high", "payload_low", "record")

    def __init__(
        self, entry: AuditEntry, payload_low: str, payload_high: str, columns: tuple[Any, ...]
    ) -> None:
        self.entry = entry
        self.payload_low = payload_low
        self.payload_high = payload_high
        self.columns = columns
        self.done = False
        self.record: AuditRecord | None = None
        self.error: BaseException | None = None


class AuditLog:
    """An append-only audit log in one SQLite file; safe across threads and processes.

    Args:
        path: The database file. Missing parent directories are created.

    Raises:
        AuditUnavailable: The file cannot be created, opened or initialized.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        # Group commit: ``_turn`` guards the pending queue and the ``_leading`` flag; waiting
        # followers sleep on it instead of queueing on the database lock, so when a batch
        # commits they all wake at once rather than one lock hand-off at a time.
        self._turn = threading.Condition(threading.Lock())
        self._pending: list[_Slot] = []
        self._leading = False
        # Guards every use of the connection (the leader's writes, reads, close).
        self._db_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = _open(self._path)
        # Each tenant's last (position, hash) as this log wrote it; saves a read per commit.
        self._heads: dict[str, tuple[int, str]] = {}

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database. Idempotent; later appends raise ``AuditUnavailable``."""
        with self._db_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def append(self, entry: AuditEntry) -> AuditRecord:
        """Seal ``entry`` into its tenant's chain and commit it.

        Args:
            entry: The entry to record.

        Returns:
            The committed record; it is durable when this returns.

        Raises:
            ValueError: ``entry`` cannot be serialized (NaN, lone surrogate, non-JSON value).
            AuditUnavailable: The database refused the write; nothing of the batch was kept.
        """
        slot = _prepare(entry)
        with self._turn:
            self._pending.append(slot)
            while self._leading and not slot.done:
                self._turn.wait()
            # Either a leader wrote our slot, or no one is writing and our slot is still
            # queued: then we lead, writing everything queued so far in one transaction.
            lead = not slot.done
            if lead:
                self._leading = True
                batch, self._pending = self._pending, []
        if lead:
            try:
                with self._db_lock:
                    self._write_batch(batch)
            finally:
                with self._turn:
                    self._leading = False
                    self._turn.notify_all()
        if isinstance(slot.error, _Closed):
            raise AuditUnavailable(f"the audit log {self._path} is closed; open a new AuditLog")
        if slot.record is None:
            raise AuditUnavailable(
                f"could not write to the audit log {self._path}: {slot.error}; "
                "check that the file is writable, the disk is not full and no other process "
                "holds a long write lock"
            ) from slot.error
        return slot.record

    def tail(self, limit: int = 20, tenant: str | None = None) -> list[AuditRecord]:
        """The newest ``limit`` records, oldest first.

        Args:
            limit: How many records at most; must not be negative.
            tenant: Only this tenant's chain, or all tenants in insertion order if None.

        Raises:
            ValueError: ``limit`` is negative.
            AuditUnavailable: The log is closed or unreadable.
        """
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        with self._db_lock:
            conn = self._require_open()
            try:
                if tenant is None:
                    rows = conn.execute(_TAIL_ALL, (limit,)).fetchall()
                else:
                    rows = conn.execute(_TAIL_TENANT, (tenant, limit)).fetchall()
            except sqlite3.Error as exc:
                raise self._read_failed(exc) from exc
        return [_record_from_row(row) for row in reversed(rows)]

    def records(self, tenant: str | None = None) -> Iterator[AuditRecord]:
        """Every record in chain order: by position for one tenant, else by insertion.

        Reads in pages so a large log is never held in memory and the connection is never
        held across a ``yield``; records appended while iterating may or may not be seen.

        Raises:
            AuditUnavailable: The log is closed or unreadable.
        """
        cursor_key = 0
        while True:
            with self._db_lock:
                conn = self._require_open()
                try:
                    if tenant is None:
                        rows = conn.execute(_PAGE_ALL, (cursor_key, _PAGE_SIZE)).fetchall()
                    else:
                        rows = conn.execute(
                            _PAGE_TENANT, (tenant, cursor_key, _PAGE_SIZE)
                        ).fetchall()
                except sqlite3.Error as exc:
                    raise self._read_failed(exc) from exc
            for row in rows:
                record = _record_from_row(row)
                cursor_key = record.row_id if tenant is None else record.position
                yield record
            if len(rows) < _PAGE_SIZE:
                return

    def verify(self, tenant: str | None = None) -> VerifyReport:
        """Recompute every chain (or one tenant's) and report the first break.

        Reads one consistent snapshot on a separate connection, so appends continue meanwhile.

        Args:
            tenant: Verify only this tenant, or every tenant if None.

        Raises:
            AuditUnavailable: The log is closed or cannot be read at all.
        """
        with self._db_lock:
            self._require_open()
        try:
            # Read-only, so a file deleted since we opened it is an error, not a new empty log.
            conn = sqlite3.connect(
                f"{self._path.resolve().as_uri()}?mode=ro",
                uri=True,
                timeout=_BUSY_TIMEOUT_MS / 1000,
            )
        except sqlite3.Error as exc:
            raise self._read_failed(exc) from exc
        try:
            # One read transaction: a concurrent append must not look like a truncation.
            conn.execute("BEGIN")
            if tenant is None:
                heads = {
                    t: (p, h)
                    for t, p, h in conn.execute("SELECT tenant, position, hash FROM audit_heads")
                }
                tenants = {t for (t,) in conn.execute("SELECT DISTINCT tenant FROM audit_records")}
                tenants.update(heads)
            else:
                found = conn.execute(_SELECT_HEAD, (tenant,)).fetchone()
                heads = {} if found is None else {tenant: (found[0], found[1])}
                tenants = {tenant}
            checked = 0
            first_break: ChainBreak | None = None
            ordered = tuple(sorted(tenants))
            for name in ordered:
                count, problem = _verify_chain(
                    name, conn.execute(_VERIFY_ROWS, (name,)), heads.get(name)
                )
                checked += count
                if first_break is None:
                    first_break = problem
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._read_failed(exc) from exc
        finally:
            conn.close()
        if tenant is not None and checked == 0 and first_break is None:
            ordered = ()
        return VerifyReport(
            ok=first_break is None,
            records_checked=checked,
            tenants=ordered,
            first_break=first_break,
        )

    def _write_batch(self, batch: list[_Slot]) -> None:
        """Write ``batch`` in one transaction and finish every slot, success or failure."""
        conn = self._conn
        try:
            if conn is None:
                raise _Closed
            try:
                rows, heads, last_row_id = self._insert(conn, batch, self._heads)
            except sqlite3.IntegrityError:
                # A cached head was stale: another process appended to one of these chains,
                # so our next position already exists. Read every head from the file, retry.
                _rollback(conn)
                self._heads.clear()
                rows, heads, last_row_id = self._insert(conn, batch, {})
        except BaseException as exc:
            _rollback(conn)
            self._heads.clear()
            for slot in batch:
                slot.error = exc
                slot.done = True
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt and friends still propagate in the leader
            return
        self._heads.update(heads)
        # Inside one write transaction new rows get consecutive row ids (max + 1 each).
        row_id = last_row_id - len(rows) + 1
        for slot, row in zip(batch, rows, strict=True):
            slot.record = AuditRecord(
                entry=slot.entry, position=row[1], row_id=row_id, prev_hash=row[-2], hash=row[-1]
            )
            slot.done = True
            row_id += 1

    @staticmethod
    def _insert(
        conn: sqlite3.Connection, batch: list[_Slot], cached: dict[str, tuple[int, str]]
    ) -> tuple[list[tuple[Any, ...]], dict[str, tuple[int, str]], int]:
        """One committed transaction for ``batch``: rows written, new heads, last row id.

        Heads come from ``cached`` (this log's own last writes) or, when absent, from the
        file inside the write transaction. A cached head that another process has since
        moved makes the insert collide with UNIQUE (tenant, position): IntegrityError.
        """
        conn.execute("BEGIN IMMEDIATE")
        heads: dict[str, tuple[int, str]] = {}
        rows: list[tuple[Any, ...]] = []
        for slot in batch:
            tenant = slot.entry.tenant
            head = heads.get(tenant) or cached.get(tenant)
            if head is None:
                found = conn.execute(_SELECT_HEAD, (tenant,)).fetchone()
                head = (0, GENESIS_HASH) if found is None else (found[0], found[1])
            position = head[0] + 1
            payload = f"{slot.payload_low}{position}{slot.payload_high}"
            digest = sha256_hex(f"{head[1]}\n{payload}")
            heads[tenant] = (position, digest)
            rows.append((tenant, position, *slot.columns, payload, head[1], digest))
        if len(rows) == 1:
            last_row_id = conn.execute(_INSERT, rows[0]).lastrowid
        else:
            conn.executemany(_INSERT, rows)
            last_row_id = conn.execute(_LAST_ROWID).fetchone()[0]
        if len(heads) == 1:
            ((tenant, (position, digest)),) = heads.items()
            conn.execute(_UPSERT_HEAD, (tenant, position, digest))
        else:
            conn.executemany(_UPSERT_HEAD, [(t, p, h) for t, (p, h) in heads.items()])
        conn.execute("COMMIT")
        assert last_row_id is not None
        return rows, heads, last_row_id

    def _require_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise AuditUnavailable(f"the audit log {self._path} is closed; open a new AuditLog")
        return self._conn

    def _read_failed(self, exc: sqlite3.Error) -> AuditUnavailable:
        return AuditUnavailable(
            f"could not read the audit log {self._path}: {exc}; "
            "check that the file exists, is readable and is a Charter audit log"
        )


def _open(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date."""
    hint = "check that the path is a writable file location, not a directory"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            path,
            timeout=_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # every use is serialized by AuditLog._db_lock
        )
    except (OSError, sqlite3.Error) as exc:
        raise AuditUnavailable(f"cannot open the audit log {path}: {exc}; {hint}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise AuditUnavailable(
                f"the audit log {path} cannot use write-ahead logging (journal mode {mode}); "
                "put it on a local file system"
            )
        conn.execute("PRAGMA synchronous = NORMAL")
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise AuditUnavailable(
                f"the audit log {path} has schema version {version}, newer than this Charter "
                f"understands ({SCHEMA_VERSION}); upgrade Charter"
            )
        if version < SCHEMA_VERSION:
            # IMMEDIATE so two processes creating the same new file do it one after the other.
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")
    except AuditUnavailable:
        conn.close()
        raise
    except sqlite3.Error as exc:
        _rollback(conn)
        conn.close()
        raise AuditUnavailable(f"cannot open the audit log {path}: {exc}; {hint}") from exc
    return conn


def _rollback(conn: sqlite3.Connection | None) -> None:
    if conn is None or not conn.in_transaction:
        return
    # SQLite may already have rolled back (e.g. after SQLITE_FULL); nothing more to undo then.
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")


def _at_text(at: datetime) -> str:
    # UTC and fixed width, so the ``at`` column sorts as text and the hash does not depend on
    # which offset the caller happened to use.
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.isoformat(timespec="microseconds")


def _prepare(entry: AuditEntry) -> _Slot:
    """Serialize everything about ``entry`` that does not depend on its chain position.

    Runs in the caller's thread, outside the writer lock, so a bad entry fails alone and the
    group-commit leader only has to splice in the position.
    """
    at = _at_text(entry.at)
    payload = dict(zip(_ENTRY_FIELDS, _get_fields(entry), strict=True))
    payload["at"] = at
    payload["roles"] = list(entry.roles)
    # Every field but ``arguments`` is already plain (checked in AuditEntry.__post_init__), so
    # only the arguments need converting before serializing.
    if entry.arguments is not None:
        payload["arguments"] = to_jsonable(entry.arguments)
    try:
        text = canonical_text(payload)
    except TypeError as exc:
        raise ValueError(f"audit entry is not JSON-serializable: {exc}") from exc
    # The sealed payload is this text with '"position":N' inserted before the top-level
    # "prompt_sha256" key. Taking the *last* occurrence finds that key: every top-level value
    # after it is a string, null or a list of strings, and inside JSON strings '"' is always
    # escaped, so ',"prompt_sha256":' cannot occur there. (A key of that name nested in
    # ``arguments`` comes earlier, since "arguments" sorts first.) Tests check the splice
    # against canonical_json of the full payload; verify re-checks it on every record.
    cut = text.rindex(_POSITION_SPLICE)
    columns = list(_get_columns(entry))
    columns[_AT_INDEX] = at
    return _Slot(entry, f'{text[:cut]},"position":', text[cut:], tuple(columns))


def _entry_from_payload(data: dict[str, Any]) -> AuditEntry:
    values = {name: data[name] for name in _ENTRY_FIELDS}
    values["at"] = datetime.fromisoformat(data["at"])
    values["roles"] = tuple(data["roles"])
    return AuditEntry(**values)


def _record_from_row(row: tuple[Any, ...]) -> AuditRecord:
    payload, tenant, position, row_id, prev_hash, digest = row
    try:
        entry = _entry_from_payload(json.loads(payload))
    except (ValueError, TypeError, KeyError) as exc:
        raise AuditUnavailable(
            f"audit record {position} of tenant {tenant!r} (row {row_id}) cannot be read: "
            f"{exc!r}; run verify to locate the damage"
        ) from exc
    return AuditRecord(
        entry=entry, position=position, row_id=row_id, prev_hash=prev_hash, hash=digest
    )


def _verify_chain(
    tenant: str, rows: Iterator[tuple[Any, ...]], head: tuple[int, str] | None
) -> tuple[int, ChainBreak | None]:
    """Check one tenant's rows (in position order) against each other and the head.

    Returns:
        How many records were examined, and the first break (None if the chain is intact).
    """
    expected = 1
    prev_hash = GENESIS_HASH
    last_row_id = 0
    checked = 0
    for row in rows:
        checked += 1
        row_id = row[0]
        values = dict(zip(_ALL_COLUMNS, row[1:], strict=True))
        problem = _check_record(values, expected, prev_hash, row_id, last_row_id)
        if problem is not None:
            position, problem_row, text = problem
            return checked, ChainBreak(tenant, position, problem_row, text)
        prev_hash = values["hash"]
        last_row_id = row_id
        expected += 1
    found = expected - 1
    if head is None:
        if found == 0:
            return checked, None
        return checked, ChainBreak(
            tenant, found, last_row_id, "chain head is missing (audit_heads row deleted?)"
        )
    head_position, head_hash = head
    if head_position > found:
        return checked, ChainBreak(
            tenant,
            found + 1,
            None,
            f"chain head says {head_position} records but only {found} found (truncated?)",
        )
    if head_position < found:
        return checked, ChainBreak(
            tenant,
            head_position + 1,
            None,
            f"chain head says {head_position} records but {found} found (head rolled back?)",
        )
    if head_hash != prev_hash:
        return checked, ChainBreak(
            tenant, found, last_row_id, f"chain head does not match record {found} (altered?)"
        )
    return checked, None


def _check_record(
    values: dict[str, Any], expected: int, prev_hash: str, row_id: int, last_row_id: int
) -> tuple[int, int | None, str] | None:
    """The first problem with one stored record, as (position, row_id, problem), or None."""
    position = values["position"]
    if type(position) is not int:
        return expected, row_id, f"record has a non-integer position {position!r}"
    if position != expected:
        if position > expected:
            return expected, None, f"record {expected} is missing (deleted?)"
        return expected, row_id, f"records out of order (found position {position})"
    payload = values["payload"]
    if sha256_hex(f"{values['prev_hash']}\n{payload}") != values["hash"]:
        return expected, row_id, "record was altered (hash mismatch)"
    try:
        data = json.loads(payload)
        canonical = isinstance(data, dict) and canonical_json(data) == payload
    except (ValueError, RecursionError):
        canonical = False
    if not canonical or set(data) != _PAYLOAD_KEYS:
        return expected, row_id, "record was altered (payload is not a sealed audit entry)"
    if type(data["position"]) is not int or data["position"] != position:
        return (
            expected,
            row_id,
            f"records out of order (record sealed as position {data['position']} is stored "
            f"at position {position})",
        )
    if data["tenant"] != values["tenant"]:
        return expected, row_id, f"record was moved here from tenant {data['tenant']!r}"
    for name in _COLUMN_FIELDS:
        if values[name] != data[name]:
            return (
                expected,
                row_id,
                f"record was altered (column {name!r} does not match the sealed payload)",
            )
    if values["prev_hash"] != prev_hash:
        return (
            expected,
            row_id,
            f"chain link broken (prev_hash does not match the hash of record {expected - 1})",
        )
    if row_id <= last_row_id:
        return expected, row_id, "records out of order (row_id goes backwards)"
    return None
