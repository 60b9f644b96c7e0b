"""One call of a run, one pending request; earlier approvals of the same effect are found
(issue 11, defect 8), on SQLite and Postgres."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from charter.core.canonical import canonical_json, sha256_hex
from charter.core.errors import UserError
from charter.execution.approval_store import StoreGrants
from charter.execution.approvals import InMemoryGrants
from charter.storage.tables import approval_links, approval_requests
from tests.execution.test_approval_store import (
    TTL,
    World,
    _race,
    filed,
    make_request,
    world,
)

__all__ = ["world"]

OTHER_ARGUMENTS = {"amount_usd": "351", "ticket": "T-1001"}


def _count(world: World, table: object) -> int:
    with world.database.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


# --- one call, one pending request ----------------------------------------------------------


def test_the_same_call_filed_again_while_pending_gets_the_pending_request(world: World) -> None:
    first = filed(world, "apr_1")
    world.clock.advance(60)
    for n in (2, 3):
        again = filed(world, f"apr_{n}", requested_at=world.clock.now())
        assert again == first
    assert [r.id for r in world.store.list()] == ["apr_1"]
    assert _count(world, approval_links) == 2


def test_a_filing_rerun_after_a_crash_finds_the_request_it_waited_on_even_decided(
    world: World,
) -> None:
    filed(world, "apr_1")
    assert filed(world, "apr_2").id == "apr_1"  # step 2 waits on apr_1
    world.store.decide("apr_1", "reject", by="alice", reason="no")
    world.clock.advance(90)
    # Step 2 re-runs (its worker died before recording it): the same request, as decided.
    again = filed(world, "apr_2", requested_at=world.clock.now())
    assert (again.id, again.status) == ("apr_1", "rejected")
    assert [r.id for r in world.store.list()] == ["apr_1"]


@pytest.mark.parametrize("verdict", ["approve", "reject", "terminate", "escalate"])
def test_once_decided_the_same_call_files_a_request_of_its_own(world: World, verdict: str) -> None:
    filed(world, "apr_1")
    world.store.decide("apr_1", verdict, by="alice", reason="decided")  # type: ignore[arg-type]
    assert filed(world, "apr_2").id == "apr_2"
    assert filed(world, "apr_3").id == "apr_2"  # which now stands for the call


def test_an_expired_request_does_not_stand_for_the_call(world: World) -> None:
    filed(world, "apr_1")
    world.clock.advance(TTL.total_seconds())
    assert filed(world, "apr_2", requested_at=world.clock.now()).id == "apr_2"
    assert world.store.get("apr_1").status == "expired"


@pytest.mark.parametrize(
    "other",
    [
        {"run_id": "run_2"},
        {"tool": "send_email"},
        {
            "arguments": OTHER_ARGUMENTS,
            "arguments_sha256": sha256_hex(canonical_json(OTHER_ARGUMENTS)),
        },
        {"tenant": "globex"},
        {"requested_by": "dave"},
    ],
    ids=["run", "tool", "arguments", "tenant", "user"],
)
def test_another_call_is_another_request(world: World, other: dict[str, object]) -> None:
    filed(world, "apr_1")
    assert filed(world, "apr_2", **other).id == "apr_2"
    assert _count(world, approval_requests) == 2
    assert _count(world, approval_links) == 0


def test_a_linked_id_reused_for_another_call_is_refused(world: World) -> None:
    filed(world, "apr_1")
    filed(world, "apr_2")  # linked to apr_1
    with pytest.raises(UserError, match=r"'apr_2' was filed for another call .*'apr_1'.*tool"):
        filed(world, "apr_2", tool="send_email")
    assert _count(world, approval_requests) == 1


def test_one_decision_one_use_for_every_filing_of_the_call(world: World) -> None:
    sha = filed(world, "apr_1").arguments_sha256
    filed(world, "apr_2")
    world.store.decide("apr_1", "approve", by="alice", reason="")
    grants = StoreGrants(world.store)
    assert grants.granted("run_1", "issue_refund", sha, use_key="run_1:1") == "apr_1"
    assert grants.granted("run_1", "issue_refund", sha, use_key="run_1:2") is None


def test_filings_of_one_call_racing_across_stores_make_one_request(world: World) -> None:
    stores = [world.another_store() for _ in range(4)]
    try:
        outcomes = _race(
            [
                lambda store=store, n=n: (
                    store.request(make_request(world, f"apr_{n}"), charter_name="support-triage").id
                )
                for n, (store, _) in enumerate(stores)
            ]
        )
    finally:
        for _, database in stores:
            database.dispose()
    assert len(set(outcomes)) == 1, outcomes
    assert isinstance(outcomes[0], str)
    assert _count(world, approval_requests) == 1
    assert _count(world, approval_links) == 3


def test_the_in_memory_inbox_keeps_one_request_per_waiting_call(world: World) -> None:
    inbox = InMemoryGrants()
    first = make_request(world, "apr_1")
    assert inbox.request(first, charter_name="c") is first
    assert inbox.request(make_request(world, "apr_2"), charter_name="c") is first
    assert (
        inbox.request(make_request(world, "apr_3", run_id="run_2"), charter_name="c").id == "apr_3"
    )
    inbox.grant(first, "apr_1")
    assert inbox.request(make_request(world, "apr_4"), charter_name="c").id == "apr_4"
    assert inbox.request(make_request(world, "apr_2"), charter_name="c") is first  # as before
    assert set(inbox.requests) == {"apr_1", "apr_3", "apr_4"}


# --- earlier approvals of the same effect ---------------------------------------------------


def test_a_request_repeating_an_approved_effect_names_the_latest_approval(world: World) -> None:
    filed(world, "apr_1")
    world.clock.advance(60)
    world.store.decide("apr_1", "approve", by="alice", reason="")
    StoreGrants(world.store).granted(
        "run_1", "issue_refund", make_request(world).arguments_sha256, use_key="run_1:1"
    )
    world.clock.advance(60)
    filed(world, "apr_2", run_id="run_2", requested_at=world.clock.now())
    world.clock.advance(60)
    world.store.decide("apr_2", "approve", by="bob", reason="")
    world.clock.advance(60)
    third = filed(world, "apr_3", requested_at=world.clock.now())  # run_1 again

    found = world.store.earlier_approvals(world.store.list())
    assert set(found) == {"apr_2", "apr_3"}  # apr_1 repeats nothing
    latest = found["apr_3"]
    assert (latest.id, latest.run_id, latest.status, latest.decided_by, latest.same_run) == (
        "apr_2", "run_2", "approved", "bob", False,
    )  # fmt: skip
    assert latest.decided_at == third.requested_at - timedelta(seconds=60)
    assert latest.describe() == (
        "repeat of apr_2 approved by bob at 2026-03-01T09:33:15+00:00 in run run_2 (not used yet)"
    )
    earliest = found["apr_2"]
    assert (earliest.id, earliest.status, earliest.same_run) == ("apr_1", "executed", False)
    assert earliest.as_dict()["summary"].endswith("in run run_1 (used: it ran)")


@pytest.mark.parametrize("verdict", ["reject", "terminate", "escalate"])
def test_requests_not_approved_are_not_repeated_effects(world: World, verdict: str) -> None:
    filed(world, "apr_1")
    world.store.decide("apr_1", verdict, by="alice", reason="no")  # type: ignore[arg-type]
    world.clock.advance(1)
    second = filed(world, "apr_2", requested_at=world.clock.now())
    assert world.store.earlier_approvals([second]) == {}


@pytest.mark.parametrize(
    "other",
    [
        {"tenant": "globex", "requested_by": "zed"},
        {"tool": "send_email"},
        {
            "arguments": OTHER_ARGUMENTS,
            "arguments_sha256": sha256_hex(canonical_json(OTHER_ARGUMENTS)),
        },
    ],
    ids=["tenant", "tool", "arguments"],
)
def test_another_tenant_tool_or_argument_is_another_effect(
    world: World, other: dict[str, object]
) -> None:
    filed(world, "apr_1")
    world.store.decide("apr_1", "approve", by="alice", reason="")
    world.clock.advance(1)
    second = filed(world, "apr_2", run_id="run_2", requested_at=world.clock.now(), **other)
    assert world.store.earlier_approvals([second]) == {}


def test_a_later_approval_is_not_an_earlier_one(world: World) -> None:
    first = filed(world, "apr_1")
    world.clock.advance(1)
    filed(world, "apr_2", run_id="run_2", requested_at=world.clock.now())
    world.store.decide("apr_2", "approve", by="alice", reason="")
    assert world.store.earlier_approvals([first]) == {}
    assert world.store.earlier_approvals([]) == {}
