"""Approvals compare people in canonical form (issue 11, defect 5), on SQLite and Postgres."""

from __future__ import annotations

import pytest

from charter.core.errors import UserError
from tests.execution.test_approval_store import World, assert_refused, filed, world

__all__ = ["world"]

FULLWIDTH_ALICE = "\uff21\uff4c\uff49\uff43\uff45"
SPELLINGS_OF_CAROL = ["Carol", "CAROL", " carol ", "carol\n", "\uff43\uff41\uff52\uff4f\uff4c"]


@pytest.mark.parametrize("by", SPELLINGS_OF_CAROL, ids=ascii)
def test_the_runs_user_cannot_decide_their_request_under_another_spelling(
    world: World, by: str
) -> None:
    filed(world)  # requested by carol, who is also an approver in acme
    assert_refused(world, "apr_1", "approve", by, "", r"'carol' requested 'apr_1'.*separation")


@pytest.mark.parametrize("requested_by", ["Carol", "CAROL", "\uff23arol"], ids=ascii)
def test_a_request_filed_under_another_spelling_is_stored_canonical(
    world: World, requested_by: str
) -> None:
    assert filed(world, requested_by=requested_by).requested_by == "carol"
    assert_refused(world, "apr_1", "approve", "carol", "", r"'carol' requested 'apr_1'")


def test_the_issue_reproduction_alice_granted_as_alice_cannot_approve_alices_request(
    world: World,
) -> None:
    # `roles grant Alice ... --role approver`, a request filed by `alice`, `--as Alice`.
    world.roles.grant("acme", "Alice", "approver", by="admin")
    filed(world, requested_by="alice")
    assert_refused(world, "apr_1", "approve", "Alice", "", r"'alice' requested 'apr_1'")
    assert world.store.decide("apr_1", "approve", by="BOB", reason="").decided_by == "bob"


def test_an_approver_granted_under_one_spelling_decides_under_another(world: World) -> None:
    world.roles.grant("acme", "Erin@Acme", "approver", by="admin")
    filed(world)
    record = world.store.decide("apr_1", "approve", by="erin@acme", reason="")
    assert record.decided_by == "erin@acme"
    [event] = world.decided()
    assert event.decided_by == "erin@acme"  # the audit log records the person, canonical


@pytest.mark.parametrize("by", ["ali\u200bce", "\u0430lice", "\u202eecila", "al ice"], ids=ascii)
def test_a_decider_that_cannot_be_a_person_is_refused(world: World, by: str) -> None:
    filed(world)
    assert_refused(world, "apr_1", "approve", by, "", "is not a valid identifier")


def test_a_request_whose_user_cannot_be_a_person_is_not_filed(world: World) -> None:
    with pytest.raises(UserError, match="requested by 'car ol' is not a valid identifier"):
        filed(world, requested_by="car ol")
    assert world.store.list() == []


def test_withdrawing_records_the_operator_canonical(world: World) -> None:
    filed(world)
    withdrawn = world.store.withdraw("apr_1", by="Ops", reason="kill switch on all: incident")
    assert withdrawn is not None
    assert withdrawn.decided_by == "ops"
    assert world.store.get("apr_1").decided_by == "ops"
