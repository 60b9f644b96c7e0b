"""Role grants name people in their canonical form: ``Alice`` and ``alice`` are one person."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from charter.core.errors import UserError
from charter.identity.roles import RoleGrant, RoleGrants
from charter.storage import Database, upgrade
from charter.testing.clock import FakeClock

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FULLWIDTH_ALICE = "\uff21\uff4c\uff49\uff43\uff45"


@pytest.fixture
def grants(db_url: str) -> Iterator[RoleGrants]:
    database = Database(db_url)
    upgrade(database)
    yield RoleGrants(database, FakeClock())
    database.dispose()


def test_a_grant_is_stored_under_the_canonical_name_and_found_by_any_spelling(
    grants: RoleGrants,
) -> None:
    assert grants.grant("acme", "Alice", "approver", by="Admin") is True
    assert grants.list() == [RoleGrant("acme", "alice", "approver", "admin", T0)]
    for spelling in ("alice", "ALICE", " Alice ", FULLWIDTH_ALICE):
        assert grants.roles_of("acme", spelling) == {"approver"}, spelling
    assert grants.holders("acme", "approver") == ["alice"]


@pytest.mark.parametrize("again", ["alice", "ALICE", FULLWIDTH_ALICE, "alice\n"], ids=ascii)
def test_granting_to_another_spelling_is_idempotent(grants: RoleGrants, again: str) -> None:
    assert grants.grant("acme", "Alice", "approver", by="admin") is True
    assert grants.grant("acme", again, "approver", by="root") is False
    assert [(g.user, g.granted_by) for g in grants.list()] == [("alice", "admin")]


def test_revoking_any_spelling_revokes_the_person(grants: RoleGrants) -> None:
    grants.grant("acme", "alice", "approver", by="admin")
    revoked = grants.revoke("acme", "ALICE", "approver", by="Root")
    assert revoked.user == "alice"
    assert grants.roles_of("acme", "Alice") == frozenset()
    assert grants.list() == []


def test_an_unknown_person_revoked_is_named_as_given(grants: RoleGrants) -> None:
    with pytest.raises(UserError, match=r"'Bob' does not hold role 'approver'"):
        grants.revoke("acme", "Bob", "approver", by="admin")


@pytest.mark.parametrize(
    "user", ["ali\u200bce", "\u0430lice", "\u202eecila", "al ice", ""], ids=ascii
)
def test_names_that_cannot_be_a_person_are_refused_everywhere(
    grants: RoleGrants, user: str
) -> None:
    with pytest.raises(UserError, match="not a valid identifier"):
        grants.grant("acme", user, "approver", by="admin")
    with pytest.raises(UserError, match="not a valid identifier"):
        grants.grant("acme", "alice", "approver", by=user)
    with pytest.raises(UserError, match="not a valid identifier"):
        grants.revoke("acme", user, "approver", by="admin")
    with pytest.raises(UserError, match="not a valid identifier"):
        grants.roles_of("acme", user)
    assert grants.list() == []


def test_tenants_and_roles_keep_their_exact_spelling(grants: RoleGrants) -> None:
    # Only people are canonicalised; a tenant or role is an identifier compared as written.
    grants.grant("acme", "alice", "approver", by="admin")
    assert grants.roles_of("ACME", "alice") == frozenset()
    assert grants.holders("acme", "Approver") == []
