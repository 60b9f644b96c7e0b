"""Filing an approval request: one call of one run, one request.

A run files a request when a call needs approval. Filing the same request id again (a
durable step re-run after a crash) returns what the first filing returned. Filing another
call of the same run that is the same call (same tool, same argument hash) while a request
for it is pending returns that request: the filing is linked to it (``approval_links``), so
the human decides once, the run uses the approval once, and the filing, re-run, finds the
same request even after it was decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import and_, func, insert, select
from sqlalchemy.engine import Connection

from charter.core.canonical import canonical_json, sha256_hex
from charter.core.errors import UserError
from charter.storage.database import from_db_time
from charter.storage.tables import approval_links, approval_requests

__all__ = ["file_request"]

# The columns an idempotent repeat of ``request`` must match. Not requested_at: a durable
# step re-run after a crash asks again later, and the first filing (and its clock) stands
# (found by the crash campaign); nor expires_at, derived from a ttl processes may differ on.
_CONTENT: Final = (
    "run_id", "tenant", "requested_by", "charter_name", "tool", "arguments",
    "arguments_sha256", "reason", "rule_id",
)  # fmt: skip

# What makes two requests the same call: a filing matching a pending request on these waits
# on that request instead of becoming another one. A run has one tenant and one user; they
# are compared anyway, so no misfiled request can wait on another tenant's decision.
_SAME_CALL: Final = ("run_id", "tenant", "requested_by", "tool", "arguments_sha256")

_T = approval_requests.c


def file_request(
    connection: Connection, row: Mapping[str, Any], now: datetime
) -> Mapping[str, Any]:
    """Inside the caller's transaction: the stored row standing for ``row``.

    That is ``row``'s own stored row (filed before under its id), or the request its id was
    linked to, or a pending request of the same call of the same run (and ``row``'s id is
    linked to it now), or else ``row``, inserted now.

    Args:
        connection: in a transaction that takes the write lock (``BEGIN IMMEDIATE`` on
            SQLite).
        row: the new request's columns, people canonical.
        now: the time a pending request must not have expired by (UTC).

    Raises:
        UserError: ``row``'s id was filed before for another request.
    """
    _lock_call(connection, row)
    own = _first(connection, select(approval_requests).where(_T.id == row["id"]))
    if own is not None:
        differing = [name for name in _CONTENT if _stored(own[name]) != row[name]]
        if differing:
            raise UserError(
                f"approval request {row['id']!r} already exists with a different "
                f"{', '.join(differing)}; request ids must be unique, file it under a new id"
            )
        return own
    linked = _first(
        connection,
        select(approval_requests)
        .join(approval_links, approval_links.c.request_id == _T.id)
        .where(approval_links.c.id == row["id"]),
    )
    if linked is None:
        same_call = and_(*(_T[name] == row[name] for name in _SAME_CALL))
        linked = _first(
            connection,
            select(approval_requests)
            .where(same_call, _T.status == "pending", _T.expires_at > now)
            .order_by(_T.requested_at, _T.id)
            .limit(1),
        )
        if linked is None:
            connection.execute(insert(approval_requests).values(**row))
            return row
        connection.execute(
            insert(approval_links).values(
                id=row["id"], request_id=linked["id"], linked_at=row["requested_at"]
            )
        )
    differing = [name for name in _SAME_CALL if linked[name] != row[name]]
    if differing:
        raise UserError(
            f"approval request {row['id']!r} was filed for another call (it waits on "
            f"{linked['id']!r}, which has a different {', '.join(differing)}); request "
            "ids must be unique, file it under a new id"
        )
    return linked


def _stored(value: Any) -> Any:
    return from_db_time(value) if isinstance(value, datetime) else value


def _first(connection: Connection, statement: Any) -> Mapping[str, Any] | None:
    row = connection.execute(statement).first()
    return None if row is None else cast(Mapping[str, Any], row._mapping)


def _lock_call(connection: Connection, row: Mapping[str, Any]) -> None:
    """Serialise filings of one call of one run until the transaction ends.

    Two filings of the same call at once must not both find nothing pending and both insert.
    SQLite already serialises writers (``BEGIN IMMEDIATE``); Postgres takes a transaction
    advisory lock on a 64-bit key derived from the call.
    """
    if connection.dialect.name != "postgresql":
        return
    digest = sha256_hex(canonical_json([row[name] for name in _SAME_CALL]))
    key = int(digest[:16], 16) - 2**63  # a signed 64-bit integer, as Postgres wants
    connection.execute(select(func.pg_advisory_xact_lock(key)))
