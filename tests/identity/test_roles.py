"""Role grants in Charter's database, on SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from charter.core.errors import DatabaseUnavailable, UserError
from charter.identity.roles import RoleGrant, RoleGrants, check_identifier
from charter.storage import Database
from charter.testing.clock import FakeClock

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def grants(database: Database) -> RoleGrants:
    return RoleGrants(database, FakeClock())


def test_grant_revoke_and_read_back(grants: RoleGrants) -> None:
    assert grants.roles_of("acme", "lead@acme") == frozenset()
    assert grants.grant("acme", "lead@acme", "approver", by="admin") is True
    assert grants.grant("acme", "lead@acme", "operator", by="admin") is True
    assert grants.grant("acme", "ann@acme", "approver", by="admin") is True
    assert grants.grant("globex", "lead@acme", "approver", by="root") is True

    assert grants.roles_of("acme", "lead@acme") == {"approver", "operator"}
    assert grants.roles_of("globex", "lead@acme") == {"approver"}
    assert grants.holders("acme", "approver") == ["ann@acme", "lead@acme"]
    assert grants.holders("acme", "nobody-holds-this") == []
    assert grants.list("acme") == [
        RoleGrant("acme", "ann@acme", "approver", "admin", T0),
        RoleGrant("acme", "lead@acme", "approver", "admin", T0),
        RoleGrant("acme", "lead@acme", "operator", "admin", T0),
    ]
    assert [(g.tenant, g.user, g.role) for g in grants.list()] == [
        ("acme", "ann@acme", "approver"),
        ("acme", "lead@acme", "approver"),
        ("acme", "lead@acme", "operator"),
        ("globex", "lead@acme", "approver"),
    ]

    revoked = grants.revoke("acme", "lead@acme", "approver", by="admin")
    assert revoked == RoleGrant("acme", "lead@acme", "approver", "admin", T0)
    assert grants.roles_of("acme", "lead@acme") == {"operator"}
    assert grants.roles_of("globex", "lead@acme") == {"approver"}  # other tenants untouched


def test_a_duplicate_grant_is_a_no_op_that_keeps_the_original(database: Database) -> None:
    clock = FakeClock()
    grants = RoleGrants(database, clock)
    assert grants.grant("acme", "lead@acme", "approver", by="admin") is True
    clock.advance(3600)
    assert grants.grant("acme", "lead@acme", "approver", by="someone-else") is False
    [grant] = grants.list()
    assert (grant.granted_by, grant.granted_at) == ("admin", T0)


def test_revoking_a_role_not_held_is_an_error_naming_the_roles_held(grants: RoleGrants) -> None:
    with pytest.raises(UserError, match=r"does not hold role 'approver'.*roles there: none"):
        grants.revoke("acme", "lead@acme", "approver", by="admin")
    grants.grant("acme", "lead@acme", "operator", by="admin")
    with pytest.raises(UserError, match=r"roles there: operator"):
        grants.revoke("acme", "lead@acme", "approver", by="admin")
    assert grants.roles_of("acme", "lead@acme") == {"operator"}


def test_grants_ignore_case_like_principals(grants: RoleGrants) -> None:
    # Issue 11: one person, however spelled (tests/identity/test_roles_canonical.py).
    grants.grant("acme", "Lead@acme", "approver", by="admin")
    assert grants.roles_of("acme", "lead@acme") == {"approver"}


@pytest.mark.parametrize(
    ("tenant", "user", "role", "by"),
    [
        ("acme", "", "approver", "admin"),
        ("acme", "has space", "approver", "admin"),
        ("acme", "lead@\u200bacme", "approver", "admin"),
        ("acme", "x" * 129, "approver", "admin"),
        ("acme", "-leading-dash", "approver", "admin"),
        ("", "lead@acme", "approver", "admin"),
        ("acme corp", "lead@acme", "approver", "admin"),
        ("acme", "lead@acme", "", "admin"),
        ("acme", "lead@acme", "approver; drop", "admin"),
        ("acme", "lead@acme", "approver", ""),
        ("acme", "lead@acme", "approver", "admin user"),
    ],
)
def test_invalid_names_are_refused(
    grants: RoleGrants, tenant: str, user: str, role: str, by: str
) -> None:
    with pytest.raises(UserError, match="not a valid identifier"):
        grants.grant(tenant, user, role, by=by)
    with pytest.raises(UserError, match="not a valid identifier"):
        grants.revoke(tenant, user, role, by=by)
    assert grants.list() == []


def test_readers_refuse_invalid_names(grants: RoleGrants) -> None:
    with pytest.raises(UserError, match="user"):
        grants.roles_of("acme", "bad user")
    with pytest.raises(UserError, match="role"):
        grants.holders("acme", "bad role")
    with pytest.raises(UserError, match="tenant"):
        grants.list("bad tenant")


def test_check_identifier_uses_the_principal_rules() -> None:
    assert check_identifier("lead@acme.example:1+x_y-z", "user") == "lead@acme.example:1+x_y-z"
    with pytest.raises(UserError, match="user 42 is not a valid identifier"):
        check_identifier(42, "user")


def test_an_unreachable_database_is_a_clear_error_without_the_password() -> None:
    database = Database("postgresql://x:s3cret@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailable) as raised:
        RoleGrants(database, FakeClock())
    assert "127.0.0.1:1/none" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    database.dispose()


def test_a_second_instance_sees_grants_at_once(database: Database) -> None:
    other = Database(database.url)
    try:
        RoleGrants(database, FakeClock()).grant("acme", "lead@acme", "approver", by="admin")
        assert RoleGrants(other, FakeClock()).roles_of("acme", "lead@acme") == {"approver"}
    finally:
        other.dispose()
