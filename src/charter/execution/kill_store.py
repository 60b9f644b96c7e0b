"""Durable kill switches, shared by every process that uses the same database.

``KillSwitchStore`` keeps the switches in force in the ``kill_switches`` table and answers
:meth:`KillSwitchStore.active_for` (asked before every tool call and model call) exactly: once
:meth:`KillSwitchStore.kill` has returned, the next check in any process sees the kill. It does
so with one dedicated DBAPI connection that never holds a snapshot open (autocommit; SQLite
without a driver-level transaction) and one prepared three-key lookup, so a check is a single
indexed primary-key read and no pool checkout.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from charter.contract.schema import _NAME as _CHARTER_NAME
from charter.core.clock import Clock
from charter.core.errors import DatabaseUnavailable, UserError
from charter.core.events import EventBus, KillSwitchChanged
from charter.execution.kill_switch import ActiveKill, _check_scope
from charter.identity.names import canonical_person
from charter.identity.roles import check_identifier
from charter.storage.database import Database
from charter.storage.migrate import ensure_schema
from charter.storage.tables import kill_switches

__all__ = ["MAX_REASON_CHARS", "ActiveKillRecord", "KillSwitchStore", "valid_scope"]

MAX_REASON_CHARS = 500

_log = logging.getLogger(__name__)

# Precedence when several scopes apply: stopping everything is the strongest statement.
_PRECEDENCE = ("all", "charter", "tenant")

# The one query asked before every call: a primary-key lookup of the three scopes that apply.
_LOOKUP_SQLITE = "SELECT scope, reason FROM kill_switches WHERE scope IN (?, ?, ?)"
_LOOKUP_PG = "SELECT scope, reason FROM kill_switches WHERE scope IN (%s, %s, %s)"


@dataclass(frozen=True, slots=True)
class ActiveKillRecord(ActiveKill):
    """A kill switch in force, with who pulled it and when.

    Attributes:
        scope: ``all``, ``charter:<name>`` or ``tenant:<id>``.
        reason: why, as given by whoever pulled it.
        killed_by: who pulled it.
        killed_at: when, UTC.
    """

    killed_by: str
    killed_at: datetime

    def as_dict(self) -> dict[str, str]:
        """The kill as JSON-ready values."""
        return {
            "scope": self.scope,
            "reason": self.reason,
            "killed_by": self.killed_by,
            "killed_at": self.killed_at.isoformat(),
        }


class KillSwitchStore:
    """Kill switches in Charter's database; implements ``KillSwitchView``.

    Args:
        database: where switches are kept; its schema must be current (an embedded SQLite
            file is upgraded on open, a Postgres one needs ``charter db upgrade``).
        clock: stamps ``killed_at``.

    Raises:
        DatabaseUnavailable: the database cannot be reached or is out of date.
    """

    def __init__(self, database: Database, clock: Clock, bus: EventBus | None = None) -> None:
        ensure_schema(database)
        self._database = database
        self._clock = clock
        # Kills and revivals are governance actions: published so the audit log records them.
        self._bus = bus
        self._lock = threading.Lock()
        self._connection: Any = None  # the dedicated DBAPI connection, opened on first check
        self._cursor: Any = None
        self._lookup = _LOOKUP_PG if database.dialect == "postgresql" else _LOOKUP_SQLITE
        self._dbapi_error: type[Exception] = database.engine.dialect.loaded_dbapi.Error

    def active_for(self, charter: str, tenant: str) -> ActiveKill | None:
        """The kill that applies to this charter and tenant, if any.

        ``all`` takes precedence over ``charter:<name>``, which takes precedence over
        ``tenant:<id>``.

        Raises:
            DatabaseUnavailable: the database cannot be read even after reconnecting once;
                the caller must treat that as "not allowed" (fail closed).
        """
        keys = ("all", f"charter:{charter}", f"tenant:{tenant}")
        with self._lock:
            try:
                rows = self._lookup_rows(keys)
            except self._dbapi_error:
                # A server restart or a dropped connection: reconnect once, then give up.
                self._close_connection()
                try:
                    rows = self._lookup_rows(keys)
                except self._dbapi_error as exc:
                    self._close_connection()
                    raise DatabaseUnavailable(
                        f"cannot read kill switches from {self._database.shown_url}: "
                        f"{type(exc).__name__}; check CHARTER_DATABASE_URL and that the server "
                        "is running"
                    ) from None
        if not rows:
            return None
        found = dict(rows)
        for key in keys:
            if key in found:
                return ActiveKill(key, found[key])
        return None  # pragma: no cover - the query only returns the keys asked for

    def kill(self, scope: str, reason: str, *, by: str) -> ActiveKillRecord:
        """Stop every call in ``scope`` from the next check on, in every process.

        Args:
            scope: ``all``, ``charter:<name>`` or ``tenant:<id>``.
            reason: why, 1-500 characters; shown to whoever is refused and whoever revives.
            by: who pulls the switch (an identifier, as for a ``Principal`` user).

        Returns:
            The kill now in force.

        Raises:
            UserError: the scope, reason or ``by`` is invalid, or the scope is already
                killed (nothing is changed; revive it first to change the reason).
            DatabaseUnavailable: the database cannot be written.
        """
        scope = valid_scope(scope)
        reason = _valid_reason(reason)
        by = canonical_person(by, "killed by")  # one spelling per person (issue 11)
        # SQLite keeps the wall time without its zone, so store UTC.
        record = ActiveKillRecord(scope, reason, by, self._clock.now().astimezone(UTC))
        try:
            with self._database.engine.begin() as connection:
                connection.execute(
                    insert(kill_switches).values(
                        scope=record.scope,
                        reason=record.reason,
                        killed_by=record.killed_by,
                        killed_at=record.killed_at,
                    )
                )
        except IntegrityError:
            existing = self._find(scope)
            if existing is None:  # revived between our insert and this read: say so plainly
                raise UserError(
                    f"scope {scope!r} was being killed and revived concurrently; check "
                    "'charter kill --list' and try again"
                ) from None
            raise UserError(
                f"scope {scope!r} is already killed by {existing.killed_by} at "
                f"{existing.killed_at.isoformat(timespec='seconds')}: {existing.reason}; "
                "nothing changed (revive it first to change the reason)"
            ) from None
        except SQLAlchemyError as exc:
            raise self._unavailable("write kill switches", exc) from None
        _log.info("kill switch %s pulled by %s: %s", scope, by, reason)
        if self._bus is not None:
            self._bus.publish(KillSwitchChanged(record.killed_at, scope, "kill", reason, by))
        return record

    def revive(self, scope: str, *, by: str) -> ActiveKillRecord:
        """Lift the kill on ``scope``; calls in it are allowed again from the next check on.

        ``by`` is checked but not stored: the row is deleted, and the history belongs in the
        audit log.

        Returns:
            The kill that was lifted.

        Raises:
            UserError: the scope or ``by`` is invalid, or the scope is not killed.
            DatabaseUnavailable: the database cannot be written.
        """
        scope = valid_scope(scope)
        by = canonical_person(by, "revived by")
        statement = (
            delete(kill_switches).where(kill_switches.c.scope == scope).returning(*kill_switches.c)
        )
        try:
            with self._database.engine.begin() as connection:
                row = connection.execute(statement).one_or_none()
        except SQLAlchemyError as exc:
            raise self._unavailable("write kill switches", exc) from None
        if row is None:
            active = ", ".join(kill.scope for kill in self.active()) or "none"
            raise UserError(f"scope {scope!r} is not killed; active: {active}")
        _log.info("kill switch %s revived by %s", scope, by)
        revived = _record(row._mapping)
        if self._bus is not None:
            self._bus.publish(
                KillSwitchChanged(self._clock.now(), scope, "revive", revived.reason, by)
            )
        return revived

    def active(self) -> list[ActiveKillRecord]:
        """Every kill in force, by precedence (``all``, charters, tenants), then scope."""
        try:
            with self._database.engine.connect() as connection:
                rows = connection.execute(select(kill_switches)).all()
        except SQLAlchemyError as exc:
            raise self._unavailable("read kill switches", exc) from None
        records = [_record(row._mapping) for row in rows]
        return sorted(records, key=lambda r: (_PRECEDENCE.index(_kind(r.scope)), r.scope))

    def close(self) -> None:
        """Close the dedicated connection (the ``Database`` itself stays open)."""
        with self._lock:
            self._close_connection()

    def __enter__(self) -> KillSwitchStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _lookup_rows(self, keys: tuple[str, str, str]) -> list[tuple[str, str]]:
        if self._cursor is None:
            self._open_connection()
        if self._database.dialect == "postgresql":
            # prepare=True: parsed and planned once per connection, then only executed.
            self._cursor.execute(self._lookup, keys, prepare=True)
        else:
            # sqlite3 keeps the compiled statement in its per-connection statement cache.
            self._cursor.execute(self._lookup, keys)
        rows: list[tuple[str, str]] = self._cursor.fetchall()
        return rows

    def _open_connection(self) -> None:
        try:
            fairy = self._database.engine.raw_connection()
        except SQLAlchemyError as exc:
            raise self._unavailable("read kill switches", exc) from None
        driver: Any = fairy.driver_connection
        # Out of the pool for good: its settings (autocommit) must not leak to other users,
        # and closing it must really close it.
        fairy.detach()
        if self._database.dialect == "postgresql":
            # Each statement in its own transaction, so each read sees the latest commit.
            driver.rollback()
            driver.autocommit = True
        # SQLite: the engine's connect hook already set isolation_level=None (no driver-level
        # transaction), and WAL readers see every commit made before the statement starts.
        self._connection = fairy
        self._cursor = driver.cursor()

    def _close_connection(self) -> None:
        cursor, connection = self._cursor, self._connection
        self._cursor = self._connection = None
        for closable in (cursor, connection):
            if closable is not None:
                # Already broken: dropping our reference is all that is left to do.
                with contextlib.suppress(self._dbapi_error):
                    closable.close()

    def _find(self, scope: str) -> ActiveKillRecord | None:
        try:
            with self._database.engine.connect() as connection:
                row = connection.execute(
                    select(kill_switches).where(kill_switches.c.scope == scope)
                ).one_or_none()
        except SQLAlchemyError as exc:
            raise self._unavailable("read kill switches", exc) from None
        return None if row is None else _record(row._mapping)

    def _unavailable(self, doing: str, exc: SQLAlchemyError) -> DatabaseUnavailable:
        # The exception text can carry the URL; only the redacted form is shown.
        return DatabaseUnavailable(
            f"cannot {doing} in {self._database.shown_url}: {type(exc).__name__}; check "
            "CHARTER_DATABASE_URL and that the server is running"
        )


def valid_scope(scope: object) -> str:
    """``scope`` if it is a kill scope some run could match, else a ``UserError`` saying why.

    ``all``, ``charter:<name>`` with a name a charter may have, or ``tenant:<id>`` with a
    valid identifier. Whether such a charter or tenant exists is
    ``governance.kill_scopes``'s question.
    """
    if not isinstance(scope, str):
        raise UserError(f"kill scope must be text, not {type(scope).__name__}")
    try:
        _check_scope(scope)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    kind, _, value = scope.partition(":")
    # A scope no run can ever match would look like a kill and stop nothing: refuse it.
    if kind == "charter" and not re.fullmatch(_CHARTER_NAME, value):
        raise UserError(
            f"kill scope {scope!r} names no possible charter; charter names are lowercase "
            "letters, digits and '-', starting with a letter (e.g. charter:support-triage)"
        )
    if kind == "tenant":
        check_identifier(value, "tenant in kill scope")
    return scope


def _valid_reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise UserError("a kill needs a reason; it is shown to whoever is stopped or revives it")
    reason = reason.strip()
    if len(reason) > MAX_REASON_CHARS:
        raise UserError(
            f"the reason is {len(reason)} characters; keep it to {MAX_REASON_CHARS} and link "
            "to the incident for the rest"
        )
    # Postgres cannot store NUL, and control characters would garble every terminal that
    # prints the reason; surrogates are not text at all.
    if any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t" for ch in reason):
        raise UserError("the reason contains control characters; use plain text")
    return reason


def _kind(scope: str) -> str:
    return scope.partition(":")[0]


def _record(row: Any) -> ActiveKillRecord:
    killed_at: datetime = row["killed_at"]
    # SQLite hands back naive datetimes (written as UTC); Postgres the session's time zone.
    killed_at = (
        killed_at.replace(tzinfo=UTC) if killed_at.tzinfo is None else killed_at.astimezone(UTC)
    )
    return ActiveKillRecord(row["scope"], row["reason"], row["killed_by"], killed_at)
