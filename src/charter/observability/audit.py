"""The audit log: append-only, hash-chained per tenant, stored in Charter's database.

Every run start, tool call and run end becomes one ``AuditEntry``. ``AuditLog.append`` seals it
into its tenant's chain and returns only once the record is committed, so a caller that got an
``AuditRecord`` back knows the record is stored. If the log cannot be written, ``append``
raises ``AuditUnavailable`` and Charter refuses to act unaudited. The database is SQLite or
Postgres (``charter.storage``); both behave the same and hold byte-identical records.

Sealing
    Each record gets a 1-based ``position`` in its tenant's chain. Its *payload* is the
    canonical JSON (``charter.core.canonical``) of every ``AuditEntry`` field plus
    ``position``; ``at`` is written in UTC as ISO 8601 with microseconds and offset, ``roles``
    as a list. The record's hash is ``sha256_hex(prev_hash + "\\n" + payload)``, where
    ``prev_hash`` is the previous record's hash in the same tenant, or ``"0" * 64`` for the
    first. Chains are per tenant so one tenant's records can be exported, verified or purged
    without the others. An ``event_id`` of None is left out of the payload, so records
    without one hash exactly as they did before event ids existed.

Event ids
    An entry may carry an ``event_id`` naming the event it records (say, one step of a durable
    workflow). Appending an entry whose event id is already recorded writes nothing and
    returns the stored record, so a step that runs again after a crash does not record itself
    twice. The stored record wins even if the new entry differs in other fields, even its
    tenant, so an event id must name the fact, not just the moment: a tool call's id ends
    with its outcome, so a re-run that ends differently is a new fact, recorded too.
    Event ids are unique across tenants (a unique index, partial, so records without
    one take no index entry). The lookup happens inside the write transaction, one query per
    batch, only when some entry of the batch has an event id.

Storage
    The tables come from the migrations (``charter.storage``). ``audit_records`` keeps the
    exact payload text (the thing that was hashed) *and* every scalar field in its own column,
    so the log can be queried with plain SQL (``roles`` and ``arguments`` live only in the
    payload; use ``json_extract`` on SQLite, ``payload::json`` on Postgres). ``user`` is a
    reserved word in Postgres, so that column is always written ``"user"``. Text columns
    cannot hold NUL characters on Postgres, so an entry with one in a column field is refused
    on both backends (inside ``arguments`` it is fine: the payload escapes it).
    ``audit_heads`` keeps each tenant's last position and hash, updated in the same
    transaction as the inserts, so deleting records from the end of a chain is detectable.
    Triggers refuse ``UPDATE`` and ``DELETE`` on ``audit_records``; they stop accidents, not
    attackers, which is what ``verify`` is for.

Verification
    ``verify`` trusts nothing it has not recomputed: per tenant, in position order, positions
    must be contiguous from 1, each hash must recompute from the stored ``prev_hash`` and
    payload, the payload must be canonical JSON with exactly the expected fields, every column
    must equal its payload field (so editing a column *or* the payload is caught), each
    ``prev_hash`` must equal the previous record's hash, ``row_id`` must grow with position,
    and the head row must name the last record's position and hash. Limits: someone with write
    access who rewrites a chain's whole suffix *and* its head is not detectable from inside
    the database; compare head hashes against a copy kept elsewhere to catch that.

Writing
    A log holds one dedicated DBAPI connection for writes, with its statements as constant
    strings (psycopg prepares them after a few uses). Appends use leader-based group commit:
    concurrent callers queue their entries and one of them writes the whole queue in one
    transaction (SQLite ``BEGIN IMMEDIATE``; Postgres ``READ COMMITTED``). A log remembers the
    heads it wrote; a tenant it has not written yet has its head read inside the transaction
    (``FOR UPDATE`` on Postgres). Head rows are upserted tenant by tenant in sorted order
    *before* the records are inserted, so two writers lock heads in one order and never
    deadlock, and the records of one tenant are only ever inserted by the holder of its head.
    When another process has appended since, the insert collides with
    ``UNIQUE (tenant, position)`` and the batch is retried with heads read from the database,
    so several processes may share one database safely without a read per commit. Two
    processes racing to record one event id collide on its unique index the same way; the
    retry then finds the winner's record and returns it. A failing
    transaction is rolled back whole and every caller in it gets ``AuditUnavailable``.
    SQLite runs in WAL mode with ``synchronous=NORMAL``: a returned ``append`` survives a crash
    of the process; the most recent commits can be lost on power failure or OS crash.

Reading
    ``tail``, ``records`` and ``verify`` read through the SQLAlchemy engine on other
    connections, so they never wait for (or hold up) the writer; ``verify`` reads one snapshot
    (a SQLite read transaction; ``REPEATABLE READ`` on Postgres). A log on a database opened
    read-only (``AuditLog.open(url, read_only=True)``, ``Database(url, read_only=True)``)
    takes no write connection and refuses ``append``; verifying an archived or read-only copy
    writes nothing, not even a schema upgrade (``charter.storage.migrate``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from operator import attrgetter
from types import TracebackType
from typing import Any, Final, Literal, Self, get_args

from alembic.util import CommandError
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import PoolProxiedConnection

from charter.core.canonical import canonical_json, canonical_text, sha256_hex, to_jsonable
from charter.core.errors import AuditUnavailable, DatabaseUnavailable
from charter.storage.database import Database, redact_url
from charter.storage.migrate import ensure_schema
from charter.storage.tables import AUDIT_COLUMNS

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditKind",
    "AuditLog",
    "AuditRecord",
    "ChainBreak",
    "VerifyReport",
]

AuditKind = Literal[
    "run_started", "tool_call", "run_finished", "approval_decision", "kill_switch", "governance"
]

GENESIS_HASH: Final = "0" * 64
"""The ``prev_hash`` of the first record of every tenant's chain."""

_KINDS: Final[frozenset[str]] = frozenset(get_args(AuditKind))
_PAGE_SIZE: Final = 256
# A batch whose cached heads turned out stale is retried with heads read from the database;
# only writers racing on a tenant's very first record can collide more than once.
_ATTEMPTS: Final = 3


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What a caller records: one run start, tool call or run end.

    ``arguments`` must already be redacted and JSON-able. It is read back in its JSON form:
    tuples come back as lists and ``Decimal`` values as exact strings. ``event_id``, when set,
    makes the append idempotent: see "Event ids" in the module docstring.

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
    event_id: str | None = None

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
    "event_id",
)
_REQUIRED_TEXT: Final = tuple(
    n for n in _ENTRY_FIELDS if n not in {"kind", "at", "roles", "arguments", *_OPTIONAL_TEXT}
)
_PAYLOAD_KEYS: Final[frozenset[str]] = frozenset((*_ENTRY_FIELDS, "position"))
# The payload of an entry without an event id (see _prepare).
_PAYLOAD_KEYS_NO_EVENT: Final[frozenset[str]] = _PAYLOAD_KEYS - {"event_id"}

_get_fields = attrgetter(*_ENTRY_FIELDS)
# In canonical JSON (sorted keys) "position" sits right before the "prompt_sha256" key; see
# _prepare for why the last occurrence of this text is always that key.
_POSITION_SPLICE: Final = ',"prompt_sha256":'
assert max(k for k in _ENTRY_FIELDS if k < "position") == "outcome"
assert min(k for k in _ENTRY_FIELDS if k > "position") == "prompt_sha256"

# Every scalar field has a column; ``roles`` and ``arguments`` live only in the payload (query
# them with json_extract on SQLite, payload::json on Postgres). ``tenant`` and ``position``
# lead for the index.
_COLUMN_FIELDS: Final = tuple(n for n in _ENTRY_FIELDS if n not in {"tenant", "roles", "arguments"})
_get_columns = attrgetter(*_COLUMN_FIELDS)
_AT_INDEX: Final = _COLUMN_FIELDS.index("at")
_ALL_COLUMNS: Final = ("tenant", "position", *_COLUMN_FIELDS, "payload", "prev_hash", "hash")

assert _COLUMN_FIELDS == AUDIT_COLUMNS, "audit columns drifted from charter.storage.tables"


def _quoted(name: str) -> str:
    # "user" is reserved in Postgres; SQLite accepts the quotes too.
    return f'"{name}"' if name == "user" else name


_COLUMN_LIST: Final = ", ".join(_quoted(name) for name in _ALL_COLUMNS)
# Readers select these six columns, in this order (see _record_from_row).
_RECORD_COLUMNS: Final = "payload, tenant, position, row_id, prev_hash, hash"


@dataclass(frozen=True, slots=True)
class _Statements:
    """Every statement the log runs, spelled for one DBAPI paramstyle."""

    insert: str  # one record; on Postgres it returns the new row_id
    lock_head: str  # a head read inside the write transaction (locked on Postgres)
    upsert_head: str
    read_head: str
    all_heads: str
    tenants: str
    verify_rows: str
    tail_all: str
    tail_tenant: str
    count_all: str
    count_tenant: str
    page_all: str
    page_tenant: str


def _statements(mark: str, *, postgres: bool) -> _Statements:
    # Statements are joined from the constants above and a placeholder (never from input),
    # hence the noqa.
    read_head = f"SELECT position, hash FROM audit_heads WHERE tenant = {mark}"  # noqa: S608
    return _Statements(
        insert=(
            f"INSERT INTO audit_records ({_COLUMN_LIST}) "  # noqa: S608
            f"VALUES ({', '.join(mark for _ in _ALL_COLUMNS)})"
            f"{' RETURNING row_id' if postgres else ''}"
        ),
        lock_head=f"{read_head} FOR UPDATE" if postgres else read_head,
        upsert_head=(
            f"INSERT INTO audit_heads (tenant, position, hash) VALUES ({mark}, {mark}, {mark}) "  # noqa: S608
            "ON CONFLICT (tenant) DO UPDATE SET position = excluded.position, hash = excluded.hash"
        ),
        read_head=read_head,
        all_heads="SELECT tenant, position, hash FROM audit_heads",
        tenants="SELECT DISTINCT tenant FROM audit_records",
        verify_rows=(
            f"SELECT row_id, {_COLUMN_LIST} FROM audit_records "  # noqa: S608
            f"WHERE tenant = {mark} ORDER BY position"
        ),
        tail_all=(
            f"SELECT {_RECORD_COLUMNS} FROM audit_records "  # noqa: S608
            f"ORDER BY row_id DESC LIMIT {mark}"
        ),
        tail_tenant=(
            f"SELECT {_RECORD_COLUMNS} FROM audit_records "  # noqa: S608
            f"WHERE tenant = {mark} ORDER BY position DESC LIMIT {mark}"
        ),
        count_all="SELECT count(*) FROM audit_records",
        count_tenant=f"SELECT count(*) FROM audit_records WHERE tenant = {mark}",  # noqa: S608
        page_all=(
            f"SELECT {_RECORD_COLUMNS} FROM audit_records "  # noqa: S608
            f"WHERE row_id > {mark} ORDER BY row_id LIMIT {mark}"
        ),
        page_tenant=(
            f"SELECT {_RECORD_COLUMNS} FROM audit_records "  # noqa: S608
            f"WHERE tenant = {mark} AND position > {mark} ORDER BY position LIMIT {mark}"
        ),
    )


_SQLITE_SQL: Final = _statements("?", postgres=False)  # sqlite3: qmark
_POSTGRES_SQL: Final = _statements("%s", postgres=True)  # psycopg: format

# Records already holding some event ids: _RECORD_COLUMNS, then event_id. Postgres takes the
# ids as one array (a constant statement); SQLite gets one placeholder per id, in chunks.
_FIND_EVENTS_POSTGRES: Final = (
    f"SELECT {_RECORD_COLUMNS}, event_id FROM audit_records WHERE event_id = ANY(%s)"  # noqa: S608
)
_FIND_EVENTS_CHUNK: Final = 500  # ids per SQLite statement, under any build's variable limit


@functools.cache
def _find_events_sqlite(count: int) -> str:
    return (
        f"SELECT {_RECORD_COLUMNS}, event_id FROM audit_records "  # noqa: S608
        f"WHERE event_id IN ({', '.join(['?'] * count)})"
    )


# A Postgres batch of several records is one multi-row INSERT (psycopg's executemany would
# pipeline, and log a warning each time a stale head aborts the pipeline). RETURNING names
# each row, so row ids are matched by (tenant, position), not by the order rows come back.
_POSTGRES_ROW: Final = f"({', '.join('%s' for _ in _ALL_COLUMNS)})"
_POSTGRES_CHUNK: Final = 1000  # rows per statement: 26,000 parameters, under the 65,535 cap


@functools.cache
def _postgres_insert_many(count: int) -> str:
    return (
        f"INSERT INTO audit_records ({_COLUMN_LIST}) "  # noqa: S608
        f"VALUES {', '.join([_POSTGRES_ROW] * count)} RETURNING tenant, position, row_id"
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
    """An append-only audit log in Charter's database; safe across threads and processes.

    Args:
        database: Where the log lives. Its schema is brought up to date (SQLite) or checked
            (Postgres: run ``charter db upgrade`` first; a database opened read-only: never
            upgraded). The log borrows it: ``close`` closes the log's own connection and
            leaves the database to its owner.

    Raises:
        AuditUnavailable: The database cannot be reached, is behind its migrations or refuses
            a connection.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._owns_database = False
        self._postgres = database.dialect == "postgresql"
        self._sql = _POSTGRES_SQL if self._postgres else _SQLITE_SQL
        dbapi = database.engine.dialect.dbapi
        assert dbapi is not None
        self._dbapi_error: type[Exception] = dbapi.Error
        # sqlite3.IntegrityError or psycopg's (whose UniqueViolation is a subclass).
        self._integrity_error: type[Exception] = dbapi.IntegrityError
        # Group commit: ``_turn`` guards the pending queue and the ``_leading`` flag; waiting
        # followers sleep on it instead of queueing on the database lock, so when a batch
        # commits they all wake at once rather than one lock hand-off at a time.
        self._turn = threading.Condition(threading.Lock())
        self._pending: list[_Slot] = []
        self._leading = False
        # Guards the write connection (the leader's batch, reconnecting, close).
        self._db_lock = threading.Lock()
        self._closed = False
        self._raw: PoolProxiedConnection | None = None
        self._conn: Any = None  # the DBAPI connection of _raw: sqlite3 or psycopg
        self._cursor: Any = None
        # Each tenant's last (position, hash) as this log wrote it; saves a read per commit.
        self._heads: dict[str, tuple[int, str]] = {}
        try:
            ensure_schema(database)
            if not database.read_only:  # a reader needs no write connection
                self._connect()
        except DatabaseUnavailable as exc:
            raise AuditUnavailable(f"cannot open the audit log: {exc}") from exc
        except (SQLAlchemyError, CommandError, OSError, self._dbapi_error) as exc:
            raise AuditUnavailable(
                f"cannot open the audit log in {database.shown_url}: {_first_line(exc)}; "
                "check that the URL names a reachable database Charter may write to (for "
                "SQLite, a writable file location, not a directory)"
            ) from exc

    @classmethod
    def open(cls, url: str, *, read_only: bool = False) -> Self:
        """Open the log in the database at ``url``; ``close`` disposes that database too.

        Args:
            url: The database's URL.
            read_only: Open it to read and verify only, writing nothing (an archived copy,
                a read-only mount, a SELECT-only role).

        Raises:
            AuditUnavailable: As for the constructor, or the URL is malformed or unsupported.
        """
        try:
            database = Database(url, read_only=read_only)
        except DatabaseUnavailable as exc:
            raise AuditUnavailable(f"cannot open the audit log: {exc}") from exc
        except OSError as exc:  # the SQLite file's directory cannot be created
            raise AuditUnavailable(
                f"cannot open the audit log at {redact_url(url)}: {exc}; check that the path "
                "is a writable file location"
            ) from exc
        try:
            log = cls(database)
        except BaseException:
            database.dispose()
            raise
        log._owns_database = True
        return log

    @property
    def database(self) -> Database:
        """The database the log lives in."""
        return self._database

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
        """Close the log's connection (and its database if ``open`` made it). Idempotent.

        Later calls raise ``AuditUnavailable``.
        """
        with self._db_lock:
            if self._closed:
                return
            self._closed = True
            self._disconnect()
            if self._owns_database:
                self._database.dispose()

    def append(self, entry: AuditEntry) -> AuditRecord:
        """Seal ``entry`` into its tenant's chain and commit it.

        Args:
            entry: The entry to record.

        Returns:
            The committed record; it is durable when this returns. If ``entry.event_id`` is
            already recorded, the record stored for it (nothing is written).

        Raises:
            ValueError: ``entry`` cannot be serialized (NaN, lone surrogate, non-JSON value)
                or stored (a NUL character in a column field).
            AuditUnavailable: The database refused the write; nothing of the batch was kept;
                or the log is open read-only.
        """
        if self._database.read_only:
            raise AuditUnavailable(
                f"the audit log in {self._database.shown_url} is open read-only: nothing can "
                "be appended to it; open it writable to record"
            )
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
            raise self._closed_error()
        if isinstance(slot.error, AuditUnavailable):
            raise slot.error  # the stored record of this event id cannot be read
        if slot.record is None:
            raise AuditUnavailable(
                f"could not write to the audit log in {self._database.shown_url}: "
                f"{_first_line(slot.error)}; check that the database is reachable and "
                "writable, the disk is not full and no other process holds a long write lock"
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
        with self._reading() as conn:
            if tenant is None:
                rows = conn.exec_driver_sql(self._sql.tail_all, (limit,)).fetchall()
            else:
                rows = conn.exec_driver_sql(self._sql.tail_tenant, (tenant, limit)).fetchall()
        return [_record_from_row(row) for row in reversed(rows)]

    def count(self, tenant: str | None = None) -> int:
        """How many records are stored (in one tenant's chain, or in all).

        Raises:
            AuditUnavailable: The log is closed or unreadable.
        """
        with self._reading() as conn:
            if tenant is None:
                found = conn.exec_driver_sql(self._sql.count_all).scalar()
            else:
                found = conn.exec_driver_sql(self._sql.count_tenant, (tenant,)).scalar()
        return int(found or 0)

    def records(self, tenant: str | None = None) -> Iterator[AuditRecord]:
        """Every record in chain order: by position for one tenant, else by insertion.

        Reads in pages so a large log is never held in memory and no connection is held
        across a ``yield``; records appended while iterating may or may not be seen.

        Raises:
            AuditUnavailable: The log is closed or unreadable.
        """
        cursor_key = 0
        while True:
            with self._reading() as conn:
                if tenant is None:
                    result = conn.exec_driver_sql(self._sql.page_all, (cursor_key, _PAGE_SIZE))
                else:
                    result = conn.exec_driver_sql(
                        self._sql.page_tenant, (tenant, cursor_key, _PAGE_SIZE)
                    )
                rows = result.fetchall()
            for row in rows:
                record = _record_from_row(row)
                cursor_key = record.row_id if tenant is None else record.position
                yield record
            if len(rows) < _PAGE_SIZE:
                return

    def verify(self, tenant: str | None = None) -> VerifyReport:
        """Recompute every chain (or one tenant's) and report the first break.

        Reads one consistent snapshot on another connection, so appends continue meanwhile.

        Args:
            tenant: Verify only this tenant, or every tenant if None.

        Raises:
            AuditUnavailable: The log is closed or cannot be read at all.
        """
        sql = self._sql
        # One snapshot: a concurrent append must not look like a truncation.
        with self._reading(snapshot=True) as conn:
            if tenant is None:
                heads = {t: (p, h) for t, p, h in conn.exec_driver_sql(sql.all_heads)}
                tenants = {t for (t,) in conn.exec_driver_sql(sql.tenants)}
                tenants.update(heads)
            else:
                found = conn.exec_driver_sql(sql.read_head, (tenant,)).fetchone()
                heads = {} if found is None else {tenant: (found[0], found[1])}
                tenants = {tenant}
            checked = 0
            first_break: ChainBreak | None = None
            ordered = tuple(sorted(tenants))
            for name in ordered:
                count, problem = _verify_chain(
                    name, conn.exec_driver_sql(sql.verify_rows, (name,)), heads.get(name)
                )
                checked += count
                if first_break is None:
                    first_break = problem
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
        try:
            if self._closed:
                raise _Closed
            if self._conn is None:
                self._connect()  # the previous connection broke (e.g. a server restart)
            for attempt in range(_ATTEMPTS):
                try:
                    written, rows, row_ids, heads, found = self._insert(batch, self._heads)
                    break
                except self._integrity_error:
                    # A cached head was stale: another writer appended to one of these
                    # chains, so our next position already exists. Or another writer has
                    # just recorded one of our event ids. Read the heads, retry.
                    self._rollback()
                    self._heads.clear()
                    if attempt == _ATTEMPTS - 1:
                        raise
        except BaseException as exc:
            self._rollback()
            self._heads.clear()
            for slot in batch:
                slot.error = exc
                slot.done = True
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt and friends still propagate in the leader
            return
        self._heads.update(heads)
        for slot, row, row_id in zip(written, rows, row_ids, strict=True):
            slot.record = AuditRecord(
                entry=slot.entry, position=row[1], row_id=row_id, prev_hash=row[-2], hash=row[-1]
            )
            slot.done = True
        if len(written) != len(batch):
            _resolve_duplicates(batch, written, found)

    def _insert(
        self, batch: list[_Slot], cached: dict[str, tuple[int, str]]
    ) -> tuple[
        list[_Slot],
        list[tuple[Any, ...]],
        list[int],
        dict[str, tuple[int, str]],
        dict[str, Sequence[Any]],
    ]:
        """One committed transaction for ``batch``.

        Returns:
            The slots written (in batch order), their rows and row ids, the new heads, and
            the stored rows of event ids that were already recorded. A slot is not written if
            its event id is recorded already or belongs to an earlier slot of the batch.

        Heads come from ``cached`` (this log's own last writes) or, when absent, from the
        database inside the write transaction. A cached head that another writer has since
        moved makes the insert collide with UNIQUE (tenant, position): IntegrityError. So
        does an event id another writer recorded after we looked.
        """
        conn, cursor, sql = self._conn, self._cursor, self._sql
        if not self._postgres:
            cursor.execute("BEGIN IMMEDIATE")  # psycopg opens the transaction by itself
        found: dict[str, Sequence[Any]] = {}
        written = batch
        event_ids = [slot.entry.event_id for slot in batch if slot.entry.event_id is not None]
        if event_ids:
            found = self._find_events(list(dict.fromkeys(event_ids)))
            seen = set(found)
            written = []
            for slot in batch:
                event_id = slot.entry.event_id
                if event_id is not None:
                    if event_id in seen:
                        continue
                    seen.add(event_id)
                written.append(slot)
        by_tenant: dict[str, list[int]] = {}
        for index, slot in enumerate(written):
            by_tenant.setdefault(slot.entry.tenant, []).append(index)
        rows: list[tuple[Any, ...]] = [()] * len(written)
        heads: dict[str, tuple[int, str]] = {}
        # Heads are locked (read FOR UPDATE, or upserted) in sorted tenant order, all before
        # any record is inserted: concurrent writers on Postgres cannot deadlock.
        for tenant in sorted(by_tenant):
            head = cached.get(tenant)
            if head is None:
                cursor.execute(sql.lock_head, (tenant,))
                found_head = cursor.fetchone()
                head = (0, GENESIS_HASH) if found_head is None else (found_head[0], found_head[1])
            position, digest = head
            for index in by_tenant[tenant]:
                slot = written[index]
                prev_hash = digest
                position += 1
                payload = f"{slot.payload_low}{position}{slot.payload_high}"
                digest = sha256_hex(f"{prev_hash}\n{payload}")
                rows[index] = (tenant, position, *slot.columns, payload, prev_hash, digest)
            heads[tenant] = (position, digest)
            cursor.execute(sql.upsert_head, (tenant, position, digest))
        row_ids: list[int]
        if self._postgres:
            if not rows:
                row_ids = []
            elif len(rows) == 1:
                cursor.execute(sql.insert, rows[0])
                row_ids = [cursor.fetchone()[0]]
            else:
                ids: dict[tuple[str, int], int] = {}
                for start in range(0, len(rows), _POSTGRES_CHUNK):
                    chunk = rows[start : start + _POSTGRES_CHUNK]
                    cursor.execute(
                        _postgres_insert_many(len(chunk)), [v for row in chunk for v in row]
                    )
                    ids.update(((t, p), r) for t, p, r in cursor.fetchall())
                row_ids = [ids[row[0], row[1]] for row in rows]
            conn.commit()
        else:
            if not rows:
                last_row_id = 0
            elif len(rows) == 1:
                cursor.execute(sql.insert, rows[0])
                last_row_id = cursor.lastrowid
            else:
                cursor.executemany(sql.insert, rows)
                cursor.execute("SELECT last_insert_rowid()")
                (last_row_id,) = cursor.fetchone()
            cursor.execute("COMMIT")
            # Inside one write transaction new rows get consecutive row ids (max + 1 each).
            row_ids = list(range(last_row_id - len(rows) + 1, last_row_id + 1))
        return written, rows, row_ids, heads, found

    def _find_events(self, event_ids: list[str]) -> dict[str, Sequence[Any]]:
        """The stored rows (``_RECORD_COLUMNS``) of those ``event_ids`` already recorded."""
        cursor = self._cursor
        if self._postgres:
            cursor.execute(_FIND_EVENTS_POSTGRES, (event_ids,))
            stored = cursor.fetchall()
        else:
            stored = []
            for start in range(0, len(event_ids), _FIND_EVENTS_CHUNK):
                chunk = event_ids[start : start + _FIND_EVENTS_CHUNK]
                cursor.execute(_find_events_sqlite(len(chunk)), chunk)
                stored.extend(cursor.fetchall())
        return {row[-1]: row[:-1] for row in stored}

    def _connect(self) -> None:
        """Take the write connection: out of the pool, kept (and closed) by this log alone."""
        raw = self._database.engine.raw_connection()
        try:
            conn: Any = raw.driver_connection  # (None once detached: take it first)
            raw.detach()
            if self._postgres:
                conn.rollback()  # end whatever the pool's liveness check began
                conn.autocommit = False  # the first statement opens a transaction
            else:
                conn.isolation_level = None  # we issue BEGIN IMMEDIATE / COMMIT ourselves
            cursor = conn.cursor()
        except BaseException:
            raw.close()
            raise
        self._raw, self._conn, self._cursor = raw, conn, cursor

    def _disconnect(self) -> None:
        raw, self._raw, self._conn, self._cursor = self._raw, None, None, None
        if raw is not None:
            with contextlib.suppress(self._dbapi_error):
                raw.close()

    def _rollback(self) -> None:
        conn = self._conn
        if conn is None:
            return
        # The database may already have rolled back (e.g. SQLite after SQLITE_FULL).
        with contextlib.suppress(self._dbapi_error):
            if self._postgres:
                conn.rollback()
            elif conn.in_transaction:
                conn.execute("ROLLBACK")
        if getattr(conn, "broken", False) or getattr(conn, "closed", False) is True:
            self._disconnect()  # psycopg lost the server; the next batch reconnects

    @contextlib.contextmanager
    def _reading(self, *, snapshot: bool = False) -> Iterator[Connection]:
        """A pooled read connection (one snapshot if asked); errors become AuditUnavailable."""
        if self._closed:
            raise self._closed_error()
        try:
            with self._database.engine.connect() as conn:
                if snapshot and self._postgres:
                    conn.execution_options(isolation_level="REPEATABLE READ")
                yield conn
        except SQLAlchemyError as exc:
            raise AuditUnavailable(
                f"could not read the audit log in {self._database.shown_url}: "
                f"{_first_line(exc)}; check that the database is reachable and holds "
                "Charter's schema"
            ) from exc

    def _closed_error(self) -> AuditUnavailable:
        return AuditUnavailable(
            f"the audit log in {self._database.shown_url} is closed; open a new AuditLog"
        )


def _resolve_duplicates(
    batch: list[_Slot], written: list[_Slot], found: dict[str, Sequence[Any]]
) -> None:
    """Finish the slots of ``batch`` not written: each gets the record of its event id."""
    sealed = {
        slot.entry.event_id: slot.record
        for slot in written
        if slot.entry.event_id is not None and slot.record is not None
    }
    for slot in batch:
        if slot.done:
            continue
        event_id = slot.entry.event_id
        assert event_id is not None  # only slots with an event id are ever skipped
        record = sealed.get(event_id)
        if record is None:
            try:
                record = _record_from_row(found[event_id])
            except AuditUnavailable as exc:
                slot.error = exc
        slot.record = record
        slot.done = True


def _first_line(exc: BaseException | None) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


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
    if entry.event_id is None:
        del payload["event_id"]  # records without one hash as they did before event ids
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
    if "\x00" in entry.tenant or "\x00" in "".join(filter(None, columns)):
        named = zip(("tenant", *_COLUMN_FIELDS), (entry.tenant, *columns), strict=True)
        name = next(n for n, value in named if value and "\x00" in value)
        raise ValueError(
            f"audit entry field {name!r} contains a NUL character, which the database cannot "
            "store in a column; remove it before recording"
        )
    return _Slot(entry, f'{text[:cut]},"position":', text[cut:], tuple(columns))


def _entry_from_payload(data: dict[str, Any]) -> AuditEntry:
    values = {name: data[name] for name in _ENTRY_FIELDS if name != "event_id"}
    values["event_id"] = data.get("event_id")
    values["at"] = datetime.fromisoformat(data["at"])
    values["roles"] = tuple(data["roles"])
    return AuditEntry(**values)


def _record_from_row(row: Sequence[Any]) -> AuditRecord:
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
    tenant: str, rows: Iterable[Sequence[Any]], head: tuple[int, str] | None
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
    keys = frozenset(data) if canonical else None
    # An event id is either a string or left out (never a sealed null: see _prepare).
    if not (
        keys == _PAYLOAD_KEYS_NO_EVENT
        or (keys == _PAYLOAD_KEYS and isinstance(data["event_id"], str))
    ):
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
        if values[name] != data.get(name):  # only event_id may be absent (None)
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
