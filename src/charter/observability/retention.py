"""Retention: drop old spans and run rows; the audit log is never pruned.

Spans are the bulk (one per model and tool call, with attributes) and only add durations and
model-call detail to a run's timeline, so they are kept for a short while (default 30 days).
Run rows feed lists, cost reports and metrics, and are kept longer (default 90 days), with
their human labels. The audit log is the record of what was decided and is not touched here,
ever: its chain must verify after pruning exactly as before, and a run whose row and spans
are gone is still explained from it (``charter runs show``).

Spans go by their start time, runs by the time they started. A run that is still going is
pruned like any other once it is that old: its row is a view that the run rewrites when it
ends (``RunRecorder`` records a run from its end when its row is missing).

Deletes run in batches of ``batch`` rows, each its own short transaction, so pruning a large
backlog never holds SQLite's write lock for long: audit appends from running agents wait on
that lock, and an append that waits too long fails (and its run stops, closed).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from charter.core.errors import DatabaseUnavailable, UserError
from charter.storage.database import Database
from charter.storage.migrate import ensure_schema
from charter.storage.tables import run_labels, runs, spans

__all__ = ["PruneReport", "Pruner"]

_BATCH: Final = 1000  # ids bound per DELETE: well under any SQLite's variable limit
_NS: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What was (or, in a dry run, would be) deleted, and the cut-off times used."""

    dry_run: bool
    spans_before: datetime | None
    runs_before: datetime | None
    spans: int
    runs: int
    run_labels: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "spans_before": self.spans_before.isoformat() if self.spans_before else None,
            "runs_before": self.runs_before.isoformat() if self.runs_before else None,
            "spans": self.spans,
            "runs": self.runs,
            "run_labels": self.run_labels,
        }


class Pruner:
    """Deletes spans and runs older than given ages (see the module docstring).

    Raises:
        DatabaseUnavailable: the database cannot be reached or is out of date.
    """

    def __init__(self, database: Database, *, batch: int = _BATCH) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        ensure_schema(database)
        self._database = database
        self._batch = batch

    def prune(
        self,
        *,
        now: datetime,
        spans_older_than: timedelta | None,
        runs_older_than: timedelta | None,
        dry_run: bool = False,
    ) -> PruneReport:
        """Delete spans that started before ``now - spans_older_than`` and runs (with their
        labels) that started before ``now - runs_older_than``; ``None`` keeps that kind.

        Raises:
            UserError: ``now`` is naive or an age is not positive.
            DatabaseUnavailable: the database cannot be read or written.
        """
        if now.utcoffset() is None:
            raise UserError("now must be timezone-aware")
        for age in (spans_older_than, runs_older_than):
            if age is not None and age <= timedelta(0):
                raise UserError(f"an age to prune must be positive, not {age}")
        now = now.astimezone(UTC)
        spans_before = now - spans_older_than if spans_older_than is not None else None
        runs_before = now - runs_older_than if runs_older_than is not None else None
        span_count = run_count = label_count = 0
        try:
            if spans_before is not None:
                old_spans = spans.c.start_ns < _ns(spans_before)
                span_count = (
                    self._count(spans, old_spans)
                    if dry_run
                    else self._delete(spans.c.span_id, old_spans)
                )
            if runs_before is not None:
                old_runs = runs.c.started_at < runs_before
                if dry_run:
                    run_count = self._count(runs, old_runs)
                    label_count = self._count(
                        run_labels, run_labels.c.run_id.in_(select(runs.c.id).where(old_runs))
                    )
                else:
                    run_count, label_count = self._delete_runs(old_runs)
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(
                f"cannot prune {self._database.shown_url}: {type(exc).__name__}; check "
                "CHARTER_DATABASE_URL and that the server is running"
            ) from None
        return PruneReport(dry_run, spans_before, runs_before, span_count, run_count, label_count)

    def _write(self) -> AbstractContextManager[Connection]:
        # BEGIN IMMEDIATE on SQLite: a transaction that reads, then writes, would otherwise
        # fail at once (not wait) if another process wrote in between.
        return self._database.engine.execution_options(sqlite_begin="IMMEDIATE").begin()

    def _count(self, table: Any, condition: ColumnElement[bool]) -> int:
        with self._database.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(table)
                                          .where(condition)).scalar_one())  # fmt: skip

    def _delete(self, key: Any, condition: ColumnElement[bool]) -> int:
        deleted = 0
        while True:
            with self._write() as connection:
                ids = connection.execute(select(key).where(condition).limit(self._batch))
                batch = [row[0] for row in ids]
                if batch:
                    connection.execute(delete(key.table).where(key.in_(batch)))
            deleted += len(batch)
            if len(batch) < self._batch:
                return deleted

    def _delete_runs(self, condition: ColumnElement[bool]) -> tuple[int, int]:
        deleted = labels = 0
        while True:
            with self._write() as connection:
                ids = connection.execute(select(runs.c.id).where(condition).limit(self._batch))
                batch = [row[0] for row in ids]
                if batch:
                    # A label without its run would count in no report: they go together.
                    labels += connection.execute(
                        delete(run_labels).where(run_labels.c.run_id.in_(batch))
                    ).rowcount
                    connection.execute(delete(runs).where(runs.c.id.in_(batch)))
            deleted += len(batch)
            if len(batch) < self._batch:
                return deleted, labels


def _ns(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1000
