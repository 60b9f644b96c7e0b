"""Reading the audit log: the newest records, counts, every record page by page, and
verifying every chain over one snapshot.

``AuditLog`` (``charter.observability.audit``) is an ``AuditReading``: these read through the
SQLAlchemy engine on pooled connections other than the writer's, so they never wait for (or
hold up) appends; ``verify`` reads one snapshot (a SQLite read transaction; ``REPEATABLE
READ`` on Postgres) and checks it with ``audit_verify``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from charter.core.errors import AuditUnavailable, first_line
from charter.observability.audit_record import AuditRecord, record_from_row
from charter.observability.audit_sql import Statements
from charter.observability.audit_verify import ChainBreak, VerifyReport, verify_chain
from charter.storage.database import Database

__all__ = ["AuditReading"]

_PAGE_SIZE: Final = 256


class AuditReading:
    """The reading half of ``AuditLog``: set up by its constructor."""

    _database: Database
    _postgres: bool
    _sql: Statements
    _closed: bool

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
        return [record_from_row(row) for row in reversed(rows)]

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
                record = record_from_row(row)
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
                count, problem = verify_chain(
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
                f"{first_line(exc)}; check that the database is reachable and holds "
                "Charter's schema"
            ) from exc

    def _closed_error(self) -> AuditUnavailable:
        return AuditUnavailable(
            f"the audit log in {self._database.shown_url} is closed; open a new AuditLog"
        )
