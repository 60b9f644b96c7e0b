"""Reading a run's audit records back, and telling apart what its agent asked for.

Records are read by the indexed ``run_id`` column rather than by walking a tenant's chain;
each is taken from its payload, the text the chain hashes (``charter audit verify`` checks
that every column agrees with it). The run inspector and policy what-if both read them so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from charter.core.errors import DatabaseUnavailable
from charter.storage.database import Database
from charter.storage.tables import audit_records

__all__ = ["CallPhase", "call_phase", "call_step", "records_of_runs"]

CallPhase = Literal["call", "send", "discard", "compensate"]
_PHASES: Final[frozenset[str]] = frozenset({"call", "send", "discard", "compensate"})
_CHUNK: Final = 500  # run ids per query: bounded IN lists on both backends
# ``<phase>/<step>`` after the run id, then the outcome (a call's id before outcomes were
# appended ends at the step). Steps count from 1, in plain ASCII digits.
_STEP_ID: Final = re.compile(r"(call|send|discard|compensate)/([1-9][0-9]{0,17})(?:/[a-z_]+)?")


def records_of_runs(
    database: Database, run_ids: Sequence[str], *, kind: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Each run's audit records (of ``kind``, if given), in the order they were appended.

    Raises:
        DatabaseUnavailable: the database cannot be read.
    """
    by_run: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
    for start in range(0, len(run_ids), _CHUNK):
        statement = (
            select(audit_records.c.payload)
            .where(audit_records.c.run_id.in_(run_ids[start : start + _CHUNK]))
            .order_by(audit_records.c.row_id)
        )
        if kind is not None:
            statement = statement.where(audit_records.c.kind == kind)
        try:
            with database.engine.connect() as connection:
                payloads = [payload for (payload,) in connection.execute(statement)]
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(
                f"cannot read the audit log from {database.shown_url}: {type(exc).__name__}; "
                "check CHARTER_DATABASE_URL and that the server is running"
            ) from None
        for payload in payloads:
            record = json.loads(payload)
            by_run[record["run_id"]].append(record)
    return by_run


def call_phase(record: Mapping[str, Any]) -> CallPhase:
    """Which part of the run's life a tool-call record belongs to: ``call`` (the agent asked
    for it), ``send`` or ``discard`` (a deferred effect settled when the run ended), or
    ``compensate`` (a write taken back).

    The event id says it (``<run>/<phase>/...``, see ``execution/run.py``); records written
    before event ids existed are recognised by their outcome and rule instead.
    """
    event_id = record.get("event_id") or ""
    part = event_id.split("/")[1] if event_id.count("/") >= 2 else ""
    if part in _PHASES:
        return part  # type: ignore[return-value]
    if record["outcome"] == "discarded":
        return "discard"
    if (record.get("rule_id") or "").endswith(".compensate"):
        return "compensate"
    if str(record.get("reason") or "").startswith("sent after the run succeeded"):
        return "send"
    return "call"


def call_step(record: Mapping[str, Any]) -> int | None:
    """The run's step a tool-call record belongs to: the step that made the call, and for a
    send, discard or compensation the step of the call it settles (``<run>/<phase>/<step>/
    <outcome>``, see ``execution/run.py``). None when the event id names no step: a record
    from before event ids, or an effect recorded before its step named it, whose id carried
    the model's tool-call id instead (which a model may reuse, and which may even be a
    number: a caller pairing records checks that they agree, see ``timeline_model``).
    """
    event_id = record.get("event_id")
    prefix = f"{record.get('run_id')}/"
    if not isinstance(event_id, str) or not event_id.startswith(prefix):
        return None
    found = _STEP_ID.fullmatch(event_id, len(prefix))
    return int(found.group(2)) if found else None
