"""The history of governance actions: who changed what an agent is or serves, when and why.

Every action (a release created, a promotion, a traffic change, a rollback, a kill) is a row
in ``governance_events`` (what ``charter changelog`` lists) and a ``GovernanceChanged``
event on the bus, which the audit log records in its hash chain. Rows are append-only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from charter.core.clock import Clock
from charter.core.errors import DatabaseUnavailable
from charter.core.events import EventBus, GovernanceChanged
from charter.storage.database import Database, from_db_time
from charter.storage.tables import governance_events

__all__ = ["ACTIONS", "ChangelogEntry", "GovernanceLog"]

ACTIONS: Final = frozenset(
    {
        "release_created",
        "promoted",
        "traffic_set",
        "rollout_started",
        "rollout_advanced",
        "rollback",
        "auto_rollback",
    }
)
_MAX_REASON = 1000


@dataclass(frozen=True, slots=True)
class ChangelogEntry:
    at: datetime
    charter_name: str
    environment: str | None
    action: str
    actor: str
    release_id: str | None
    reason: str
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "charter": self.charter_name,
            "environment": self.environment,
            "action": self.action,
            "actor": self.actor,
            "release": self.release_id,
            "reason": self.reason,
            "details": self.details,
        }


class GovernanceLog:
    """Writes and reads the governance history (and announces each action on the bus)."""

    def __init__(self, database: Database, clock: Clock, bus: EventBus) -> None:
        self._database = database
        self._clock = clock
        self._bus = bus

    def record(
        self,
        connection: Connection,
        *,
        charter_name: str,
        action: str,
        actor: str,
        reason: str,
        environment: str | None = None,
        release_id: str | None = None,
        details: dict[str, Any] | None = None,
        summary: str = "",
    ) -> GovernanceChanged:
        """Add the row inside the caller's transaction; return the event to publish once
        that transaction committed (``publish``), so the audit never records an action the
        database then rolled back."""
        if action not in ACTIONS:
            raise ValueError(f"unknown governance action {action!r}")
        at = self._clock.now().astimezone(UTC)
        connection.execute(
            insert(governance_events).values(
                at=at,
                charter_name=charter_name,
                environment=environment,
                action=action,
                actor=actor,
                release_id=release_id,
                reason=reason[:_MAX_REASON],
                details=json.dumps(details or {}, sort_keys=True, default=str),
            )
        )
        return GovernanceChanged(
            at=at,
            charter_name=charter_name,
            environment=environment or "",
            action=action,
            actor=actor,
            release_id=release_id or "",
            reason=reason[:_MAX_REASON],
            detail=summary,
        )

    def publish(self, event: GovernanceChanged) -> None:
        self._bus.publish(event)

    def history(
        self,
        *,
        charter_name: str | None = None,
        environment: str | None = None,
        limit: int = 100,
    ) -> list[ChangelogEntry]:
        """The latest actions, oldest first (``limit`` most recent)."""
        query = (
            select(governance_events)
            .where(*_matching(charter_name, environment))
            .order_by(governance_events.c.id.desc())
            .limit(limit)
        )
        try:
            with self._database.engine.connect() as connection:
                rows = connection.execute(query).mappings().all()
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"cannot read the changelog: {exc}") from None
        return [
            ChangelogEntry(
                at=from_db_time(row["at"]),
                charter_name=row["charter_name"],
                environment=row["environment"],
                action=row["action"],
                actor=row["actor"],
                release_id=row["release_id"],
                reason=row["reason"],
                details=json.loads(row["details"]),
            )
            for row in reversed(rows)
        ]

    def count(self, *, charter_name: str | None = None, environment: str | None = None) -> int:
        """How many actions ``history`` could list with the same filters and no limit."""
        query = (
            select(func.count())
            .select_from(governance_events)
            .where(*_matching(charter_name, environment))
        )
        try:
            with self._database.engine.connect() as connection:
                return int(connection.execute(query).scalar_one())
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"cannot read the changelog: {exc}") from None


def _matching(charter_name: str | None, environment: str | None) -> list[ColumnElement[bool]]:
    """The filters ``history`` and ``count`` share: one charter, one environment, or all."""
    columns = governance_events.c
    given = ((columns.charter_name, charter_name), (columns.environment, environment))
    return [column == value for column, value in given if value is not None]
