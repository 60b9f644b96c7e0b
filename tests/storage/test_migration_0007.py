"""Migration 0007 brings stored people to canonical form, merging role grants, on SQLite and
Postgres; records (the audit log, releases, the changelog) keep what was given."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from charter.storage import Database, current_revision, head_revision, upgrade
from charter.storage.tables import (
    approval_requests,
    audit_records,
    deployments,
    governance_events,
    kill_switches,
    promotions,
    releases,
    role_grants,
    run_labels,
    runs,
)
from tests.storage.support import database_at

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def at_0006(db_url: str) -> Iterator[Database]:
    """A database at migration 0006 (before canonical people)."""
    with database_at(db_url, "0006") as database:
        yield database


def _insert(database: Database, table: Any, *rows: dict[str, Any]) -> None:
    with database.engine.begin() as connection:
        for row in rows:
            connection.execute(insert(table).values(**row))


def _rows(database: Database, table: Any, *columns: str) -> list[tuple[Any, ...]]:
    with database.engine.connect() as connection:
        selected = select(*(table.c[name] for name in columns)).order_by(
            *(table.c[n] for n in columns)
        )
        return [tuple(row) for row in connection.execute(selected)]


def test_role_grants_of_one_person_merge_into_the_earliest(at_0006: Database) -> None:
    grant = {"tenant": "acme", "role": "approver"}
    _insert(
        at_0006,
        role_grants,
        {**grant, "user": "alice", "granted_by": "root", "granted_at": T0 + timedelta(days=2)},
        {**grant, "user": "Alice", "granted_by": "Admin", "granted_at": T0},
        {**grant, "user": "ALICE", "granted_by": "root", "granted_at": T0 + timedelta(days=1)},
        {**grant, "user": "Bob", "granted_by": "Admin", "granted_at": T0},
        {**grant, "user": "carol", "granted_by": "admin", "granted_at": T0},
        {"tenant": "globex", "role": "approver", "user": "Alice", "granted_by": "x",
         "granted_at": T0},
        {"tenant": "acme", "role": "operator", "user": "ALICE", "granted_by": "x",
         "granted_at": T0},
    )  # fmt: skip
    upgrade(at_0006)
    assert current_revision(at_0006) == head_revision()
    assert _rows(at_0006, role_grants, "tenant", "user", "role", "granted_by") == [
        ("acme", "alice", "approver", "admin"),  # the earliest grant, its author folded
        ("acme", "alice", "operator", "x"),
        ("acme", "bob", "approver", "admin"),
        ("acme", "carol", "approver", "admin"),
        ("globex", "alice", "approver", "x"),
    ]
    with at_0006.engine.connect() as connection:
        [granted_at] = connection.execute(
            select(role_grants.c.granted_at).where(
                (role_grants.c.tenant == "acme") & (role_grants.c.role == "approver")
                & (role_grants.c.user == "alice")
            )
        ).scalars()  # fmt: skip
    assert granted_at.replace(tzinfo=UTC) == T0


def test_people_in_current_state_tables_become_canonical(at_0006: Database) -> None:
    request = {
        "run_id": "run_1", "tenant": "acme", "charter_name": "c", "tool": "issue_refund",
        "arguments": "{}", "arguments_sha256": "0" * 64, "reason": "r", "rule_id": "x",
        "requested_at": T0, "expires_at": T0 + timedelta(days=1),
    }  # fmt: skip
    _insert(
        at_0006,
        approval_requests,
        {**request, "id": "apr_1", "requested_by": "Alice", "status": "pending"},
        {**request, "id": "apr_2", "requested_by": "carol", "status": "approved",
         "decided_by": "Bob", "decided_at": T0, "decision_reason": ""},
        # Deciders were never checked: a name that is no identity is folded and kept.
        {**request, "id": "apr_3", "requested_by": "carol", "status": "rejected",
         "decided_by": " Jane DOE ", "decided_at": T0, "decision_reason": "no"},
    )  # fmt: skip
    run = {
        "charter_name": "c", "charter_sha256": "0" * 64, "tenant": "acme", "environment": "dev",
        "model": "m", "trace_id": "t", "started_at": T0, "outcome": "escalated", "reason": "r",
        "tool_calls": 0, "tool_errors": 0, "denied_calls": 0, "model_calls": 0,
        "total_tokens": 0, "cost_usd": "0", "tool_fees_usd": "0",
    }  # fmt: skip
    _insert(at_0006, runs, {**run, "id": "run_1", "user": "Alice"},
            {**run, "id": "run_2", "user": "dave"})  # fmt: skip
    _insert(at_0006, run_labels, {"run_id": "run_1", "label": "escalation",
            "value": "confirmed", "labeled_by": "Lead", "labeled_at": T0, "note": ""})  # fmt: skip
    _insert(at_0006, kill_switches,
            {"scope": "all", "reason": "r", "killed_by": "OPS", "killed_at": T0})  # fmt: skip
    _insert(at_0006, deployments, {"charter_name": "c", "environment": "prod",
            "weights": "{}", "stable_release": "r1", "stage": 0, "generation": 1,
            "updated_at": T0, "updated_by": "Bob"})  # fmt: skip

    upgrade(at_0006)

    assert _rows(at_0006, approval_requests, "id", "requested_by", "decided_by") == [
        ("apr_1", "alice", None),
        ("apr_2", "carol", "bob"),
        ("apr_3", "carol", "jane doe"),
    ]
    assert _rows(at_0006, runs, "id", "user") == [("run_1", "alice"), ("run_2", "dave")]
    assert _rows(at_0006, run_labels, "labeled_by") == [("lead",)]
    assert _rows(at_0006, kill_switches, "killed_by") == [("ops",)]
    assert _rows(at_0006, deployments, "updated_by") == [("bob",)]


def test_records_keep_the_names_as_given(at_0006: Database) -> None:
    audit = {name.name: "x" for name in audit_records.columns if name.name != "row_id"}
    _insert(at_0006, audit_records, {**audit, "position": 1, "user": "Alice"})
    _insert(at_0006, releases, {"id": "r1", "charter_name": "c", "version": 1,
            "author": "Alice", "message": "m", "created_at": T0, "bundle": "{}"})  # fmt: skip
    _insert(at_0006, promotions, {"id": "p1", "release_id": "r1", "charter_name": "c",
            "environment": "dev", "promoted_by": "Bob", "promoted_at": T0, "reason": "r",
            "evidence": "{}"})  # fmt: skip
    _insert(at_0006, governance_events, {"at": T0, "charter_name": "c", "action": "promoted",
            "actor": "Bob", "reason": "r", "details": "{}"})  # fmt: skip

    upgrade(at_0006)  # the audit log refuses updates: this passing means none was tried

    assert _rows(at_0006, audit_records, "user") == [("Alice",)]
    assert _rows(at_0006, releases, "author") == [("Alice",)]
    assert _rows(at_0006, promotions, "promoted_by") == [("Bob",)]
    assert _rows(at_0006, governance_events, "actor") == [("Bob",)]


def test_an_empty_database_migrates_and_an_upgraded_one_is_left_alone(at_0006: Database) -> None:
    assert upgrade(at_0006) == ("0006", head_revision())
    assert upgrade(at_0006) == (head_revision(), head_revision())
