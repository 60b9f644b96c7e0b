"""Durable approvals on SQLite and Postgres: every rule, the races, expiry and grants."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from charter.core.canonical import canonical_json, sha256_hex
from charter.core.errors import DatabaseUnavailable, UserError
from charter.core.events import ApprovalDecided, Event, EventBus
from charter.execution.approval_store import (
    ApprovalRecord,
    ApprovalStore,
    DecisionVerdict,
    RoleDirectory,
    StoreGrants,
)
from charter.execution.approvals import ApprovalGrants, ApprovalRequest
from charter.identity.roles import RoleGrants
from charter.storage import Database, current_revision, head_revision, upgrade
from charter.storage.tables import approval_requests
from charter.testing import FakeClock

TTL = timedelta(hours=24)
ARGUMENTS = {"amount_usd": "350", "ticket": "T-1001"}


@dataclass
class World:
    """One database, a clock, a bus that records, role grants and a store over them."""

    database: Database
    clock: FakeClock
    bus: EventBus
    roles: RoleGrants
    store: ApprovalStore
    events: list[Event] = field(default_factory=list)

    def decided(self) -> list[ApprovalDecided]:
        return [e for e in self.events if isinstance(e, ApprovalDecided)]

    def another_store(self, roles: RoleDirectory | None = None) -> tuple[ApprovalStore, Database]:
        """A second store on its own connection pool, as another process would have."""
        database = Database(self.database.url)
        store = ApprovalStore(
            database, self.clock, self.bus, roles or RoleGrants(database, self.clock)
        )
        return store, database


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    database = Database(db_url)
    upgrade(database)  # Postgres is never upgraded implicitly
    clock = FakeClock(datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC))
    bus = EventBus()
    roles = RoleGrants(database, clock)
    for user in ("alice", "bob", "carol"):
        roles.grant("acme", user, "approver", by="admin")
    roles.grant("globex", "dave", "approver", by="admin")
    w = World(database, clock, bus, roles, ApprovalStore(database, clock, bus, roles, ttl=TTL))
    bus.subscribe(w.events.append)
    try:
        yield w
    finally:
        database.dispose()


def make_request(world: World, id: str = "apr_1", **changes: Any) -> ApprovalRequest:
    values: dict[str, Any] = {
        "id": id,
        "run_id": "run_1",
        "tenant": "acme",
        "requested_by": "carol",
        "tool": "issue_refund",
        "arguments": ARGUMENTS,
        "arguments_sha256": sha256_hex(canonical_json(ARGUMENTS)),
        "reason": "amount_usd > 200",
        "rule_id": "require_approval_for[0]",
        "requested_at": world.clock.now(),
    }
    values.update(changes)
    return ApprovalRequest(**values)


def filed(world: World, id: str = "apr_1", **changes: Any) -> ApprovalRecord:
    return world.store.request(make_request(world, id, **changes), charter_name="support-triage")


# --- requests -------------------------------------------------------------------------------


def test_a_request_is_stored_pending_with_its_expiry(world: World) -> None:
    record = filed(world)
    assert record.status == "pending"
    assert record.requested_at == world.clock.now()
    assert record.expires_at == world.clock.now() + TTL
    assert record.arguments == ARGUMENTS
    assert record.charter_name == "support-triage"
    assert (record.decided_by, record.decided_at, record.decision_reason) == (None, None, None)
    assert world.store.get("apr_1") == record
    assert world.events == []


def test_as_dict_is_json_with_every_column_and_iso_datetimes(world: World) -> None:
    data = filed(world).as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["arguments"] == ARGUMENTS
    assert data["requested_at"] == "2026-03-01T09:30:15.123456+00:00"
    assert data["expires_at"] == "2026-03-02T09:30:15.123456+00:00"
    assert set(data) == {column.name for column in approval_requests.columns}


def test_filing_the_same_request_twice_returns_the_same_record(world: World) -> None:
    first = filed(world)
    world.clock.advance(60)
    assert filed(world, requested_at=first.requested_at) == first
    assert len(world.store.list()) == 1


def test_a_step_rerun_after_a_crash_files_again_later_and_keeps_the_first_filing(
    world: World,
) -> None:
    first = filed(world)
    world.clock.advance(90)  # the worker died after filing; the re-run step asks again
    again = filed(world, requested_at=world.clock.now())
    assert again == first
    assert again.requested_at == first.requested_at
    assert len(world.store.list()) == 1


def test_filing_another_request_under_a_used_id_is_refused_and_changes_nothing(
    world: World,
) -> None:
    first = filed(world)
    with pytest.raises(UserError, match=r"'apr_1' already exists with a different tool, arguments"):
        filed(world, tool="delete_record", arguments={"id": "x"})
    assert world.store.get("apr_1") == first


def test_a_request_needs_a_timezone(world: World) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        filed(world, requested_at=datetime(2026, 3, 1))  # naive: the point of the test


def test_an_unknown_id_is_not_found(world: World) -> None:
    with pytest.raises(UserError, match=r"approval request 'apr_nope' not found; list requests"):
        world.store.get("apr_nope")


def test_sqlite_is_upgraded_on_open_but_postgres_behind_the_code_is_refused(db_url: str) -> None:
    database = Database(db_url)
    try:
        if database.dialect == "sqlite":
            ApprovalStore(database, FakeClock(), EventBus(), _NoRoles())
            assert current_revision(database) == head_revision()
        else:
            with pytest.raises(DatabaseUnavailable, match="charter db upgrade"):
                ApprovalStore(database, FakeClock(), EventBus(), _NoRoles())
    finally:
        database.dispose()


class _NoRoles:
    def roles_of(self, tenant: str, user: str) -> frozenset[str]:
        return frozenset()


# --- decisions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "status"),
    [
        ("approve", "approved"),
        ("reject", "rejected"),
        ("terminate", "terminated"),
        ("escalate", "escalated"),
    ],
)
def test_a_decision_is_stored_and_published_once(
    world: World, verdict: DecisionVerdict, status: str
) -> None:
    filed(world)
    world.clock.advance(90)
    record = world.store.decide("apr_1", verdict, by="alice", reason="checked the order")
    assert record.status == status
    assert (record.decided_by, record.decision_reason) == ("alice", "checked the order")
    assert record.decided_at == world.clock.now()
    assert world.store.get("apr_1") == record  # what was returned is what was stored
    assert world.decided() == [
        ApprovalDecided(
            at=world.clock.now(),
            request_id="apr_1",
            run_id="run_1",
            tenant="acme",
            charter_name="support-triage",
            tool="issue_refund",
            arguments_sha256=record.arguments_sha256,
            verdict=verdict,
            decided_by="alice",
            reason="checked the order",
        )
    ]


def test_approving_needs_no_reason(world: World) -> None:
    filed(world)
    assert world.store.decide("apr_1", "approve", by="alice", reason="").status == "approved"


def assert_refused(world: World, id: str, verdict: str, by: str, reason: str, match: str) -> None:
    """The decision is refused with ``match``, nothing is stored and nothing is published."""
    before = world.store.list(limit=1000)
    published = list(world.events)
    with pytest.raises(UserError, match=match):
        world.store.decide(id, verdict, by=by, reason=reason)  # type: ignore[arg-type]
    assert world.store.list(limit=1000) == before
    assert world.events == published


def test_deciding_an_unknown_request_is_refused(world: World) -> None:
    assert_refused(world, "apr_nope", "approve", "alice", "", r"'apr_nope' not found")


def test_an_unknown_verdict_is_refused(world: World) -> None:
    filed(world)
    assert_refused(world, "apr_1", "bless", "alice", "ok", r"verdict 'bless' is not one of")


def test_a_decision_needs_someone_deciding(world: World) -> None:
    filed(world)
    assert_refused(world, "apr_1", "approve", " ", "", r"say who decides")


@pytest.mark.parametrize("verdict", ["approve", "reject", "terminate", "escalate"])
def test_a_decided_request_cannot_be_decided_again(world: World, verdict: str) -> None:
    filed(world)
    world.store.decide("apr_1", "reject", by="alice", reason="wrong customer")
    assert_refused(
        world,
        "apr_1",
        verdict,
        "bob",
        "me too",
        r"'apr_1' was already rejected by 'alice' at 2026-03-01T09:30:15\.123456\+00:00 "
        r"\(wrong customer\); nothing changed",
    )


@pytest.mark.parametrize("verdict", ["approve", "reject", "terminate", "escalate"])
def test_the_runs_own_user_cannot_decide_it(world: World, verdict: str) -> None:
    filed(world)  # requested by carol, who is also an approver in acme
    assert_refused(
        world, "apr_1", verdict, "carol", "fine", r"'carol' requested 'apr_1'.*separation of duties"
    )


def test_deciding_needs_the_approver_role_in_that_tenant(world: World) -> None:
    filed(world)
    assert_refused(
        world,
        "apr_1",
        "approve",
        "erin",
        "",
        r"'erin' does not hold the role 'approver' in tenant 'acme'",
    )
    # dave approves for globex, not for acme
    assert_refused(world, "apr_1", "approve", "dave", "", r"'dave' does not hold the role")


@pytest.mark.parametrize("verdict", ["reject", "terminate", "escalate"])
@pytest.mark.parametrize("reason", ["", "   "])
def test_refusing_needs_a_reason(world: World, verdict: str, reason: str) -> None:
    filed(world)
    assert_refused(
        world, "apr_1", verdict, "alice", reason, rf"a reason is required to {verdict} 'apr_1'"
    )


def test_a_failed_publication_undoes_the_decision(world: World) -> None:
    filed(world)

    def audit_down(event: Event) -> None:
        raise RuntimeError("audit log unavailable")

    bus = EventBus()
    bus.subscribe(audit_down)
    store = ApprovalStore(world.database, world.clock, bus, world.roles)
    with pytest.raises(RuntimeError, match="audit log unavailable"):
        store.decide("apr_1", "approve", by="alice", reason="")
    assert world.store.get("apr_1").status == "pending"
    assert world.store.decide("apr_1", "approve", by="bob", reason="").decided_by == "bob"


class _Rendezvous:
    """Roles that hold each decider until both have read the request as pending."""

    def __init__(self, roles: RoleDirectory, parties: int) -> None:
        self._roles = roles
        self._barrier = threading.Barrier(parties, timeout=10)

    def roles_of(self, tenant: str, user: str) -> frozenset[str]:
        self._barrier.wait()
        return self._roles.roles_of(tenant, user)


def _race(calls: list[Callable[[], Any]]) -> list[Any]:
    outcomes: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            outcomes[i] = calls[i]()
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


def test_two_approvers_racing_exactly_one_wins(world: World) -> None:
    filed(world)
    rendezvous = _Rendezvous(world.roles, 2)
    (first, db1), (second, db2) = world.another_store(rendezvous), world.another_store(rendezvous)
    try:
        outcomes = _race(
            [
                lambda: first.decide("apr_1", "approve", by="alice", reason=""),
                lambda: second.decide("apr_1", "reject", by="bob", reason="no"),
            ]
        )
    finally:
        db1.dispose()
        db2.dispose()
    won = [o for o in outcomes if isinstance(o, ApprovalRecord)]
    lost = [o for o in outcomes if isinstance(o, Exception)]
    assert len(won) == 1, outcomes
    assert len(lost) == 1
    assert isinstance(lost[0], UserError)
    assert "was already" in str(lost[0])
    assert world.store.get("apr_1") == won[0]
    assert len(world.decided()) == 1
    assert world.decided()[0].decided_by == won[0].decided_by


# --- expiry ---------------------------------------------------------------------------------


def test_a_pending_request_past_its_expiry_reads_expired_and_cannot_be_approved(
    world: World,
) -> None:
    filed(world)
    world.clock.advance(TTL.total_seconds() - 1)
    assert world.store.get("apr_1").status == "pending"
    world.clock.advance(1)
    assert world.store.get("apr_1").status == "expired"
    for verdict in ("approve", "reject"):
        assert_refused(
            world,
            "apr_1",
            verdict,
            "alice",
            "late",
            r"'apr_1' expired at 2026-03-02T09:30:15\.123456\+00:00 without a decision and "
            r"counts as rejected",
        )


def test_status_filters_treat_overdue_requests_as_expired(world: World) -> None:
    filed(world, "apr_old")
    world.clock.advance(TTL.total_seconds() / 2)
    filed(world, "apr_new", run_id="run_2")  # in run_1 it would wait on apr_old
    world.clock.advance(TTL.total_seconds() / 2 + 1)
    assert [r.id for r in world.store.list(status="pending")] == ["apr_new"]
    assert [r.id for r in world.store.list(status="expired")] == ["apr_old"]


def test_expire_due_marks_and_publishes_each_overdue_request_once(world: World) -> None:
    filed(world, "apr_old")
    filed(world, "apr_decided", run_id="run_2")  # in run_1 it would wait on apr_old
    world.store.decide("apr_decided", "approve", by="alice", reason="")
    world.clock.advance(TTL.total_seconds() / 2)
    filed(world, "apr_new", run_id="run_3")
    world.clock.advance(TTL.total_seconds() / 2)
    world.events.clear()

    [expired] = world.store.expire_due()
    assert expired.id == "apr_old"
    assert (expired.status, expired.decided_by) == ("expired", "system")
    assert expired.decision_reason == "no decision before 2026-03-02T09:30:15.123456+00:00"
    assert world.store.get("apr_old") == expired
    [event] = world.decided()
    assert (event.request_id, event.verdict, event.decided_by) == ("apr_old", "expire", "system")
    assert world.store.expire_due() == []  # done once
    assert len(world.decided()) == 1
    assert world.store.get("apr_new").status == "pending"
    assert world.store.get("apr_decided").status == "approved"
    assert_refused(world, "apr_old", "approve", "alice", "", r"expired at .* counts as rejected")


# --- listing --------------------------------------------------------------------------------


def test_list_filters_by_tenant_and_status_newest_first(world: World) -> None:
    filed(world, "apr_a")
    world.clock.advance(1)
    filed(world, "apr_b", tenant="globex", requested_by="zed")
    world.clock.advance(1)
    filed(world, "apr_c", run_id="run_3")  # in run_1 it would wait on apr_a
    world.store.decide("apr_c", "approve", by="alice", reason="")
    assert [r.id for r in world.store.list()] == ["apr_c", "apr_b", "apr_a"]
    assert [r.id for r in world.store.list(limit=2)] == ["apr_c", "apr_b"]
    assert [r.id for r in world.store.list(tenant="acme")] == ["apr_c", "apr_a"]
    assert [r.id for r in world.store.list(status="approved")] == ["apr_c"]
    assert [r.id for r in world.store.list(tenant="acme", status="pending")] == ["apr_a"]
    assert world.store.list(status="rejected") == []
    assert world.store.list(tenant="initech") == []


def test_list_refuses_an_unknown_status_or_a_bad_limit(world: World) -> None:
    with pytest.raises(UserError, match=r"status 'done' is not one of pending, approved"):
        world.store.list(status="done")
    with pytest.raises(UserError, match=r"limit 0 must be at least 1"):
        world.store.list(limit=0)


# --- grants ---------------------------------------------------------------------------------


def test_store_grants_is_an_approval_grants(world: World) -> None:
    grants: ApprovalGrants = StoreGrants(world.store)
    assert grants.granted("run_1", "issue_refund", "0" * 64, use_key="run_1:k1") is None


def test_an_approval_is_used_exactly_once_across_stores(world: World) -> None:
    record = filed(world)
    sha = record.arguments_sha256
    other, database = world.another_store()
    try:
        grants, other_grants = StoreGrants(world.store), StoreGrants(other)
        # Pending is not approved:
        assert grants.granted("run_1", "issue_refund", sha, use_key="run_1:k2") is None
        world.store.decide("apr_1", "approve", by="alice", reason="")
        # Bound to this run, this tool and these exact arguments:
        assert grants.granted("run_2", "issue_refund", sha, use_key="run_2:k3") is None
        assert grants.granted("run_1", "send_email", sha, use_key="run_1:k4") is None
        assert grants.granted("run_1", "issue_refund", "f" * 64, use_key="run_1:k5") is None
        assert other_grants.granted("run_1", "issue_refund", sha, use_key="run_1:k6") == "apr_1"
        assert grants.granted("run_1", "issue_refund", sha, use_key="run_1:k7") is None
        assert other_grants.granted("run_1", "issue_refund", sha, use_key="run_1:k8") is None
        # The call that used it, asking again (its durable step re-run after a crash):
        assert grants.granted("run_1", "issue_refund", sha, use_key="run_1:k6") == "apr_1"
    finally:
        database.dispose()
    assert world.store.get("apr_1").status == "executed"
    assert world.store.list(status="executed")[0].id == "apr_1"
    assert_refused(
        world,
        "apr_1",
        "reject",
        "bob",
        "too late",
        r"already approved \(and the approval has been used\)",
    )


def test_rejected_and_expired_requests_grant_nothing(world: World) -> None:
    sha = filed(world, "apr_r").arguments_sha256
    world.store.decide("apr_r", "reject", by="alice", reason="no")
    filed(world, "apr_x", run_id="run_x")
    world.clock.advance(TTL.total_seconds())
    world.store.expire_due()
    grants = StoreGrants(world.store)
    assert grants.granted("run_1", "issue_refund", sha, use_key="run_1:k9") is None
    assert grants.granted("run_x", "issue_refund", sha, use_key="run_x:k10") is None


def test_two_approvals_of_the_same_call_allow_two_executions(world: World) -> None:
    sha = filed(world, "apr_1").arguments_sha256
    world.store.decide("apr_1", "approve", by="alice", reason="")
    # Decided, apr_1 no longer stands for the call: the next filing is a request of its own.
    assert filed(world, "apr_2").id == "apr_2"
    world.store.decide("apr_2", "approve", by="bob", reason="")
    grants = StoreGrants(world.store)
    used = {
        grants.granted("run_1", "issue_refund", sha, use_key="run_1:k11"),
        grants.granted("run_1", "issue_refund", sha, use_key="run_1:k12"),
    }
    assert used == {"apr_1", "apr_2"}
    assert grants.granted("run_1", "issue_refund", sha, use_key="run_1:k13") is None


def test_two_workers_racing_for_one_approval_exactly_one_gets_it(world: World) -> None:
    sha = filed(world).arguments_sha256
    world.store.decide("apr_1", "approve", by="alice", reason="")
    stores = [world.another_store() for _ in range(4)]
    try:
        outcomes = _race(
            [
                lambda store=store: StoreGrants(store).granted(
                    "run_1", "issue_refund", sha, use_key=f"run_1:{id(store)}"
                )
                for store, _ in stores
            ]
        )
    finally:
        for _, database in stores:
            database.dispose()
    assert sorted(outcomes, key=str) == [None, None, None, "apr_1"]
