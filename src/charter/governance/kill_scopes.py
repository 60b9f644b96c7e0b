"""Whether a kill scope names something this database knows, so a typo is not a kill.

A kill of ``charter:suport-triage`` is accepted by the kill switches (the name is well
formed), stops nothing and reads as if it had. So before a kill, the scope is checked:

- ``all`` is always known;
- a charter is known when this database has a run of it (the ``runs`` table, every run
  since migration 0004), a release of it, or a deployment or governance history of it;
- a tenant is known when it has runs, role grants, or audit records (its own audit chain).

An unknown scope is refused with the known names listed; the operator may insist (a charter
about to be deployed here for the first time, say), which the CLI offers as ``--force``.
Everything here reads; nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, exists, select, union
from sqlalchemy.exc import SQLAlchemyError

from charter.core.errors import DatabaseUnavailable, UserError
from charter.execution.kill_store import valid_scope
from charter.storage.database import Database
from charter.storage.tables import (
    audit_heads,
    deployments,
    governance_events,
    releases,
    role_grants,
    runs,
)

__all__ = ["ScopeCheck", "check_kill_scope", "require_known_scope"]

_LISTED = 20  # names shown in a refusal; the rest are counted

# Where a charter or a tenant leaves its name (each column is indexed or a key).
_CHARTER_COLUMNS: tuple[Column[str], ...] = (
    runs.c.charter_name,
    releases.c.charter_name,
    deployments.c.charter_name,
    governance_events.c.charter_name,
)
_TENANT_COLUMNS: tuple[Column[str], ...] = (
    runs.c.tenant,
    role_grants.c.tenant,
    audit_heads.c.tenant,
)


@dataclass(frozen=True, slots=True)
class ScopeCheck:
    """What the database knows about a kill scope.

    Attributes:
        scope: the scope checked, as given (valid).
        known: ``all``, or a charter or tenant this database has records of.
        kind: ``all``, ``charter`` or ``tenant``.
        known_names: when unknown, the charters (or tenants) that are known, sorted.
    """

    scope: str
    known: bool
    kind: str
    known_names: tuple[str, ...] = ()

    def problem(self) -> str:
        """Why an unknown scope is refused, naming what would be accepted."""
        noun = "charter" if self.kind == "charter" else "tenant"
        having = (
            "runs, releases or deployments"
            if self.kind == "charter"
            else "runs, role grants or audit records"
        )
        head = f"kill scope {self.scope!r} names no {noun} this database knows"
        if self.known_names:
            shown = ", ".join(self.known_names[:_LISTED])
            more = len(self.known_names) - _LISTED
            if more > 0:
                shown += f" (and {more} more)"
            known = f" (none with {having}); known {noun}s: {shown}"
        else:
            known = f": no {noun} has {having} here yet"
        return f"{head}{known}. Check the spelling, or pass --force to kill it anyway"


def check_kill_scope(database: Database, scope: str) -> ScopeCheck:
    """Whether ``scope`` names a charter or tenant ``database`` has records of.

    Raises:
        UserError: the scope is malformed (see ``KillSwitchStore.kill``).
        DatabaseUnavailable: the database cannot be read.
    """
    scope = valid_scope(scope)
    kind, _, name = scope.partition(":")
    if kind == "all":
        return ScopeCheck(scope, True, kind)
    columns = _CHARTER_COLUMNS if kind == "charter" else _TENANT_COLUMNS
    try:
        with database.engine.connect() as connection:
            for column in columns:  # a hit costs one indexed lookup, usually the first
                found = connection.execute(select(exists().where(column == name))).scalar()
                if found:
                    return ScopeCheck(scope, True, kind)
            names = union(*(select(column.label("name")).distinct() for column in columns))
            known = sorted(row.name for row in connection.execute(names))
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(
            f"cannot check kill scope {scope!r} in {database.shown_url}: "
            f"{type(exc).__name__}; check CHARTER_DATABASE_URL and that the server is running"
        ) from None
    # The audit log's pseudo-tenant for governance records is not a tenant anyone runs as.
    return ScopeCheck(scope, False, kind, tuple(n for n in known if not n.startswith("_")))


def require_known_scope(database: Database, scope: str, *, force: bool) -> str | None:
    """Refuse a kill of a scope ``database`` does not know, unless ``force``.

    Returns:
        None when the scope is known; when it is not and ``force`` is set, a warning to show
        the operator (the kill goes ahead).

    Raises:
        UserError: the scope is malformed, or unknown and ``force`` is not set (the message
            lists the known charters or tenants).
        DatabaseUnavailable: the database cannot be read.
    """
    check = check_kill_scope(database, scope)
    if check.known:
        return None
    if not force:
        raise UserError(check.problem())
    return (
        f"warning: {scope!r} names no {check.kind} this database knows; killing it anyway (--force)"
    )
