"""The audit log: append-only, hash-chained per tenant, stored in Charter's database.

Every run start, tool call and run end becomes one ``AuditEntry``. ``AuditLog.append`` seals it
into its tenant's chain and returns only once the record is committed, so a caller that got an
``AuditRecord`` back knows the record is stored. If the log cannot be written, ``append``
raises ``AuditUnavailable`` and Charter refuses to act unaudited. The database is SQLite or
Postgres (``charter.storage``); both behave the same and hold byte-identical records.

The log is split by idea; every public name is importable from here:

- ``audit_record``: the entry, the record, sealing (payload and hash) and reading back;
- ``audit_sql``: the statements the log runs;
- ``audit_verify``: recomputing chains and reporting the first break;
- ``audit_reading``: tail, count, pages of records and verification, for ``AuditLog``;
- this module: ``AuditLog``, its connection and the writer with group commit.

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
    The tables come from the migrations (``charter.storage``); the record's columns are
    described in ``audit_record``. ``audit_heads`` keeps each tenant's last position and hash,
    updated in the same transaction as the inserts, so deleting records from the end of a
    chain is detectable. Triggers refuse ``UPDATE`` and ``DELETE`` on ``audit_records``; they
    stop accidents, not attackers, which is what ``verify`` (``audit_verify``) is for.

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
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final, Self

from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import PoolProxiedConnection

from charter.core.canonical import sha256_hex
from charter.core.errors import AuditUnavailable, DatabaseUnavailable, first_line
from charter.observability.audit_reading import AuditReading
from charter.observability.audit_record import (
    GENESIS_HASH,
    AuditEntry,
    AuditKind,
    AuditRecord,
    prepare_entry,
    record_from_row,
)
from charter.observability.audit_sql import (
    FIND_EVENTS_CHUNK,
    FIND_EVENTS_POSTGRES,
    POSTGRES_SQL,
    SQLITE_SQL,
    find_events_sqlite,
    postgres_insert_many,
)
from charter.observability.audit_verify import ChainBreak, VerifyReport
from charter.storage.database import Database, redact_url
from charter.storage.migrate import ensure_schema

__all__ = [
    "AUDIT_TABLES",
    "GENESIS_HASH",
    "AuditEntry",
    "AuditKind",
    "AuditLog",
    "AuditRecord",
    "ChainBreak",
    "VerifyReport",
]

#: The tables the log reads: a read-only log opens an archive as old as they allow
#: (``storage.migrate.READABLE_SINCE``), so ``charter audit verify`` reads an older copy.
AUDIT_TABLES: Final = ("audit_records", "audit_heads")

# A batch whose cached heads turned out stale is retried with heads read from the database;
# only writers racing on a tenant's very first record can collide more than once.
_ATTEMPTS: Final = 3
# A Postgres batch of several records is one multi-row INSERT of at most this many rows
# (``audit_sql.postgres_insert_many``).
_POSTGRES_CHUNK: Final = 1000  # rows per statement: 26,000 parameters, under the 65,535 cap


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


class AuditLog(AuditReading):
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
        self._sql = POSTGRES_SQL if self._postgres else SQLITE_SQL
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
            ensure_schema(database, reads=AUDIT_TABLES)
            if not database.read_only:  # a reader needs no write connection
                self._connect()
        except DatabaseUnavailable as exc:
            raise AuditUnavailable(f"cannot open the audit log: {exc}") from exc
        except (SQLAlchemyError, CommandError, OSError, self._dbapi_error) as exc:
            raise AuditUnavailable(
                f"cannot open the audit log in {database.shown_url}: {first_line(exc)}; "
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
                f"{first_line(slot.error)}; check that the database is reachable and "
                "writable, the disk is not full and no other process holds a long write lock"
            ) from slot.error
        return slot.record

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
                        postgres_insert_many(len(chunk)), [v for row in chunk for v in row]
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
        """The stored rows (``audit_sql.RECORD_COLUMNS``) of those ``event_ids`` already
        recorded."""
        cursor = self._cursor
        if self._postgres:
            cursor.execute(FIND_EVENTS_POSTGRES, (event_ids,))
            stored = cursor.fetchall()
        else:
            stored = []
            for start in range(0, len(event_ids), FIND_EVENTS_CHUNK):
                chunk = event_ids[start : start + FIND_EVENTS_CHUNK]
                cursor.execute(find_events_sqlite(len(chunk)), chunk)
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
                record = record_from_row(found[event_id])
            except AuditUnavailable as exc:
                slot.error = exc
        slot.record = record
        slot.done = True


def _prepare(entry: AuditEntry) -> _Slot:
    """``entry`` serialized (``audit_record.prepare_entry``), as a slot of the writer's queue."""
    return _Slot(entry, *prepare_entry(entry))
