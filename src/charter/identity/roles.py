"""Role grants: which user holds which role (``approver``, ``operator``...) in which tenant.

A run's caller asserts some roles; these are the ones an administrator granted on purpose,
held in Charter's database (``role_grants``) so every process sees the same answer. Tenants
and roles follow the rules of :class:`~charter.identity.principal.Principal`; people (the
holder, who grants) are stored in their canonical form (``charter.identity.names``), so
``Alice`` and ``alice`` hold one set of roles, and a granted role can always be matched
against a principal, whose user is canonical too.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from charter.core.clock import Clock
from charter.core.errors import DatabaseUnavailable, UserError
from charter.identity.names import canonical_person
from charter.identity.principal import _NAME
from charter.storage.database import Database, from_db_time
from charter.storage.migrate import ensure_schema
from charter.storage.tables import role_grants

__all__ = ["RoleGrant", "RoleGrants", "check_identifier"]


@dataclass(frozen=True, slots=True)
class RoleGrant:
    """One role held by one user in one tenant.

    Attributes:
        tenant: the tenant the role applies in.
        user: who holds it.
        role: the role's name.
        granted_by: who granted it.
        granted_at: when, UTC.
    """

    tenant: str
    user: str
    role: str
    granted_by: str
    granted_at: datetime

    def as_dict(self) -> dict[str, str]:
        """The grant as JSON-ready values."""
        return {
            "tenant": self.tenant,
            "user": self.user,
            "role": self.role,
            "granted_by": self.granted_by,
            "granted_at": self.granted_at.isoformat(),
        }


def check_identifier(value: object, label: str) -> str:
    """``value`` if it is a valid identifier by the rules ``Principal`` applies.

    Args:
        value: the name to check.
        label: what it names, for the message (``user``, ``tenant``, ``--as``...).

    Returns:
        The value, unchanged.

    Raises:
        UserError: it is not a string of 1-128 letters, digits or ``. _ @ : + -``.
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise UserError(
            f"{label} {value!r} is not a valid identifier; use 1-128 letters, digits or "
            ". _ @ : + - (starting with a letter or digit)"
        )
    return value


class RoleGrants:
    """Durable role grants in Charter's database.

    Args:
        database: where grants are kept; its schema must be current (an embedded SQLite
            file is upgraded on open, a Postgres one needs ``charter db upgrade``).
        clock: stamps ``granted_at``.

    Raises:
        DatabaseUnavailable: the database cannot be reached or is out of date.
    """

    def __init__(self, database: Database, clock: Clock) -> None:
        ensure_schema(database)
        self._database = database
        self._clock = clock

    def grant(self, tenant: str, user: str, role: str, *, by: str) -> bool:
        """Give ``user`` the role ``role`` in ``tenant``.

        ``user`` and ``by`` are people: any spelling of one person is that person (``Alice``
        and ``alice`` are one), stored in canonical form.

        Returns:
            True when granted now; False when the user already held the role (nothing is
            changed, the original grant keeps its author and time).

        Raises:
            UserError: a name is invalid.
            DatabaseUnavailable: the database cannot be written.
        """
        user = _checked(tenant, user, role)
        by = canonical_person(by, "granted by")
        row = {
            "tenant": tenant,
            "user": user,
            "role": role,
            "granted_by": by,
            # SQLite keeps the wall time without its zone, so store UTC.
            "granted_at": self._clock.now().astimezone(UTC),
        }
        try:
            with self._database.engine.begin() as connection:
                connection.execute(insert(role_grants).values(**row))
        except IntegrityError:
            # The primary key is (tenant, user, role): a concurrent or earlier grant won.
            return False
        except SQLAlchemyError as exc:
            raise self._unavailable("write role grants", exc) from None
        return True

    def revoke(self, tenant: str, user: str, role: str, *, by: str) -> RoleGrant:
        """Take the role ``role`` in ``tenant`` away from ``user``.

        ``by`` is checked but not stored: the row is deleted, and the history belongs in the
        audit log. Any spelling of the holder revokes the grant of that person.

        Returns:
            The grant that was revoked.

        Raises:
            UserError: a name is invalid, or the user does not hold that role there.
            DatabaseUnavailable: the database cannot be written.
        """
        person = _checked(tenant, user, role)
        canonical_person(by, "revoked by")
        table = role_grants.c
        statement = (
            delete(role_grants)
            .where(and_(table.tenant == tenant, table.user == person, table.role == role))
            .returning(*role_grants.c)
        )
        try:
            with self._database.engine.begin() as connection:
                found = connection.execute(statement).one_or_none()
        except SQLAlchemyError as exc:
            raise self._unavailable("write role grants", exc) from None
        if found is None:
            held = ", ".join(sorted(self.roles_of(tenant, person))) or "none"
            raise UserError(
                f"{user!r} does not hold role {role!r} in tenant {tenant!r}, so there is "
                f"nothing to revoke; their roles there: {held}"
            )
        return _grant(found._mapping)

    def roles_of(self, tenant: str, user: str) -> frozenset[str]:
        """The roles ``user`` (any spelling of them) holds in ``tenant`` (empty when none)."""
        check_identifier(tenant, "tenant")
        person = canonical_person(user, "user")
        statement = select(role_grants.c.role).where(
            and_(role_grants.c.tenant == tenant, role_grants.c.user == person)
        )
        return frozenset(row.role for row in self._read(statement))

    def holders(self, tenant: str, role: str) -> builtins.list[str]:
        """The users holding ``role`` in ``tenant``, in canonical form, sorted."""
        check_identifier(tenant, "tenant")
        check_identifier(role, "role")
        statement = (
            select(role_grants.c.user)
            .where(and_(role_grants.c.tenant == tenant, role_grants.c.role == role))
            .order_by(role_grants.c.user)
        )
        return [row.user for row in self._read(statement)]

    def list(self, tenant: str | None = None) -> builtins.list[RoleGrant]:
        """Every grant (of one tenant, if given), sorted by tenant, user and role."""
        statement = select(role_grants).order_by(
            role_grants.c.tenant, role_grants.c.user, role_grants.c.role
        )
        if tenant is not None:
            statement = statement.where(role_grants.c.tenant == check_identifier(tenant, "tenant"))
        return [_grant(row._mapping) for row in self._read(statement)]

    def _read(self, statement: Any) -> builtins.list[Any]:
        try:
            with self._database.engine.connect() as connection:
                return builtins.list(connection.execute(statement))
        except SQLAlchemyError as exc:
            raise self._unavailable("read role grants", exc) from None

    def _unavailable(self, doing: str, exc: SQLAlchemyError) -> DatabaseUnavailable:
        # The exception text can carry the URL; only the redacted form is shown.
        return DatabaseUnavailable(
            f"cannot {doing} in {self._database.shown_url}: {type(exc).__name__}; check "
            "CHARTER_DATABASE_URL and that the server is running"
        )


def _checked(tenant: str, user: str, role: str) -> str:
    """The canonical form of ``user``, once the tenant and role are valid identifiers."""
    check_identifier(tenant, "tenant")
    person = canonical_person(user, "user")
    check_identifier(role, "role")
    return person


def _grant(row: Any) -> RoleGrant:
    return RoleGrant(
        tenant=row["tenant"],
        user=row["user"],
        role=row["role"],
        granted_by=row["granted_by"],
        granted_at=from_db_time(row["granted_at"]),
    )
