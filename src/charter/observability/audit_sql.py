"""The audit log's SQL: every statement it runs, as constant strings per DBAPI paramstyle.

The writer holds one dedicated DBAPI connection and runs these directly (psycopg prepares
them after a few uses); readers run them through SQLAlchemy connections. ``user`` is a
reserved word in Postgres, so that column is always written ``"user"``. Statements are joined
from the column names and a placeholder, never from input.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

from charter.observability.audit_record import ALL_COLUMNS

__all__ = [
    "FIND_EVENTS_CHUNK",
    "FIND_EVENTS_POSTGRES",
    "POSTGRES_SQL",
    "RECORD_COLUMNS",
    "SQLITE_SQL",
    "Statements",
    "find_events_sqlite",
    "postgres_insert_many",
]


def _quoted(name: str) -> str:
    # "user" is reserved in Postgres; SQLite accepts the quotes too.
    return f'"{name}"' if name == "user" else name


_COLUMN_LIST: Final = ", ".join(_quoted(name) for name in ALL_COLUMNS)
# Readers select these six columns, in this order (see audit_record.record_from_row).
RECORD_COLUMNS: Final = "payload, tenant, position, row_id, prev_hash, hash"


@dataclass(frozen=True, slots=True)
class Statements:
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


def _statements(mark: str, *, postgres: bool) -> Statements:
    # Statements are joined from the constants above and a placeholder (never from input),
    # hence the noqa.
    read_head = f"SELECT position, hash FROM audit_heads WHERE tenant = {mark}"  # noqa: S608
    return Statements(
        insert=(
            f"INSERT INTO audit_records ({_COLUMN_LIST}) "  # noqa: S608
            f"VALUES ({', '.join(mark for _ in ALL_COLUMNS)})"
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
            f"SELECT {RECORD_COLUMNS} FROM audit_records "  # noqa: S608
            f"ORDER BY row_id DESC LIMIT {mark}"
        ),
        tail_tenant=(
            f"SELECT {RECORD_COLUMNS} FROM audit_records "  # noqa: S608
            f"WHERE tenant = {mark} ORDER BY position DESC LIMIT {mark}"
        ),
        count_all="SELECT count(*) FROM audit_records",
        count_tenant=f"SELECT count(*) FROM audit_records WHERE tenant = {mark}",  # noqa: S608
        page_all=(
            f"SELECT {RECORD_COLUMNS} FROM audit_records "  # noqa: S608
            f"WHERE row_id > {mark} ORDER BY row_id LIMIT {mark}"
        ),
        page_tenant=(
            f"SELECT {RECORD_COLUMNS} FROM audit_records "  # noqa: S608
            f"WHERE tenant = {mark} AND position > {mark} ORDER BY position LIMIT {mark}"
        ),
    )


SQLITE_SQL: Final = _statements("?", postgres=False)  # sqlite3: qmark
POSTGRES_SQL: Final = _statements("%s", postgres=True)  # psycopg: format

# Records already holding some event ids: RECORD_COLUMNS, then event_id. Postgres takes the
# ids as one array (a constant statement); SQLite gets one placeholder per id, in chunks.
FIND_EVENTS_POSTGRES: Final = (
    f"SELECT {RECORD_COLUMNS}, event_id FROM audit_records WHERE event_id = ANY(%s)"  # noqa: S608
)
FIND_EVENTS_CHUNK: Final = 500  # ids per SQLite statement, under any build's variable limit


@functools.cache
def find_events_sqlite(count: int) -> str:
    return (
        f"SELECT {RECORD_COLUMNS}, event_id FROM audit_records "  # noqa: S608
        f"WHERE event_id IN ({', '.join(['?'] * count)})"
    )


# A Postgres batch of several records is one multi-row INSERT (psycopg's executemany would
# pipeline, and log a warning each time a stale head aborts the pipeline). RETURNING names
# each row, so row ids are matched by (tenant, position), not by the order rows come back.
_POSTGRES_ROW: Final = f"({', '.join('%s' for _ in ALL_COLUMNS)})"


@functools.cache
def postgres_insert_many(count: int) -> str:
    return (
        f"INSERT INTO audit_records ({_COLUMN_LIST}) "  # noqa: S608
        f"VALUES {', '.join([_POSTGRES_ROW] * count)} RETURNING tenant, position, row_id"
    )
