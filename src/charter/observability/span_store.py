"""Finished spans kept in Charter's own database, for the run inspector; prunable.

``SpanStoreExporter`` is an OpenTelemetry ``SpanExporter`` that writes spans into the
``spans`` table (SQLite or Postgres, whichever Charter's database is). It runs behind a
``BatchSpanProcessor`` (see ``observability/export.py``), so a run never waits on a database
write for its spans: it hands each finished span to a queue, and a batch is written in one
transaction every second or every 512 spans.

A span exported again (the same span id: a durable step re-run after a crash, or a batch
retried) **replaces** the stored one, so the table holds the latest word on every span, as
the ``runs`` table does for runs. ``SpanStore`` reads a run's spans back and prunes old ones.
The audit log, not this table, is the record of what happened: spans may be pruned, records
never are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from charter.core.errors import DatabaseUnavailable
from charter.storage.database import Database
from charter.storage.migrate import ensure_schema
from charter.storage.tables import spans

__all__ = ["SpanStore", "SpanStoreExporter", "StoredSpan"]

_S = spans.c


@dataclass(frozen=True, slots=True)
class StoredSpan:
    """One span as stored: ids in lowercase hex, times in Unix nanoseconds."""

    span_id: str
    trace_id: str
    parent_span_id: str | None
    run_id: str | None
    name: str
    start_ns: int
    end_ns: int
    status: str  # UNSET | OK | ERROR
    status_message: str
    attributes: dict[str, Any]

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1_000_000

    def as_dict(self) -> dict[str, Any]:
        return {
            "span_id": self.span_id,
            "trace_id": self.trace_id,
            "parent_span_id": self.parent_span_id,
            "run_id": self.run_id,
            "name": self.name,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_ms": round(self.duration_ms, 3),
            "status": self.status,
            "status_message": self.status_message,
            "attributes": self.attributes,
        }


class SpanStoreExporter(SpanExporter):
    """Writes finished spans into the ``spans`` table; a span id seen again replaces its row.

    Never raises: a batch that cannot be written is reported as ``FAILURE`` (and counted by
    the wrapper in ``export.py``), with ``last_error`` saying why without the database URL.
    The database must already have Charter's schema (``Runtime`` makes sure of it).
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        dialect = postgresql if database.dialect == "postgresql" else sqlite
        self._insert = dialect.insert(spans)
        self.last_error = ""

    def export(self, spans_: Sequence[ReadableSpan]) -> SpanExportResult:
        rows: dict[str, dict[str, Any]] = {}
        for span in spans_:
            row = _row(span)
            if row is not None:
                # One statement may not touch a row twice (Postgres refuses): the last wins.
                rows[row["span_id"]] = row
        if not rows:
            return SpanExportResult.SUCCESS
        statement = self._insert.on_conflict_do_update(
            index_elements=[_S.span_id],
            set_={name: self._insert.excluded[name] for name in _COLUMNS if name != "span_id"},
        )
        try:
            with self._database.engine.begin() as connection:
                connection.execute(statement, list(rows.values()))
        except SQLAlchemyError as exc:
            self.last_error = f"cannot store spans: the database failed ({type(exc).__name__})"
            return SpanExportResult.FAILURE
        except Exception as exc:  # an exporter must not raise into the batch worker
            self.last_error = f"cannot store spans: {type(exc).__name__}"
            return SpanExportResult.FAILURE
        self.last_error = ""
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release: the database belongs to the caller."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing is buffered here; the processor holds the queue


class SpanStore:
    """Reads stored spans and prunes old ones."""

    def __init__(self, database: Database) -> None:
        ensure_schema(database)
        self._database = database

    def spans_of_run(self, run_id: str) -> list[StoredSpan]:
        """The spans of ``run_id``, in the order they started (the run's own span first).

        Raises:
            DatabaseUnavailable: the database cannot be read.
        """
        statement = (
            select(spans)
            .where(_S.run_id == run_id)
            .order_by(_S.start_ns, _S.parent_span_id.isnot(None), _S.span_id)
        )
        try:
            with self._database.engine.connect() as connection:
                found = list(connection.execute(statement))
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(
                f"cannot read spans: the database failed ({type(exc).__name__})"
            ) from None
        return [_stored(row) for row in found]


_COLUMNS = tuple(column.name for column in spans.columns)


def _row(span: ReadableSpan) -> dict[str, Any] | None:
    context = span.context
    if context is None or span.start_time is None or span.end_time is None:
        return None  # not a finished, valid span: nothing an inspector could show
    attributes = dict(span.attributes or {})
    run_id = attributes.get("charter.run_id")
    return {
        "span_id": format(context.span_id, "016x"),
        "trace_id": format(context.trace_id, "032x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "run_id": run_id if isinstance(run_id, str) else None,
        "name": span.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "status_message": span.status.description or "",
        "attributes": json.dumps(
            {key: list(v) if isinstance(v, tuple) else v for key, v in attributes.items()},
            sort_keys=True,
            ensure_ascii=False,
        ),
    }


def _stored(row: Any) -> StoredSpan:
    data: Mapping[str, Any] = row._mapping
    return StoredSpan(
        span_id=data["span_id"],
        trace_id=data["trace_id"],
        parent_span_id=data["parent_span_id"],
        run_id=data["run_id"],
        name=data["name"],
        start_ns=int(data["start_ns"]),
        end_ns=int(data["end_ns"]),
        status=data["status"],
        status_message=data["status_message"],
        attributes=json.loads(data["attributes"]),
    )
