"""Durable kill switches: exact across processes, on SQLite and Postgres."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from charter.core.errors import DatabaseUnavailable, UserError
from charter.execution.kill_store import MAX_REASON_CHARS, ActiveKillRecord, KillSwitchStore
from charter.execution.kill_switch import ActiveKill, KillSwitchView
from charter.storage import Database, upgrade
from charter.testing.clock import FakeClock
from tests.backends import database_url

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(database: Database) -> Iterator[KillSwitchStore]:
    with KillSwitchStore(database, FakeClock()) as store:
        yield store


def test_kill_and_revive_round_trip(store: KillSwitchStore) -> None:
    assert store.active_for("support-triage", "acme") is None
    record = store.kill("charter:support-triage", "  refund loop  ", by="alice@ops")

    assert record == ActiveKillRecord("charter:support-triage", "refund loop", "alice@ops", T0)
    assert store.active_for("support-triage", "acme") == ActiveKill(
        "charter:support-triage", "refund loop"
    )
    assert store.active_for("other-charter", "acme") is None
    assert store.active() == [record]

    assert store.revive("charter:support-triage", by="bob") == record
    assert store.active_for("support-triage", "acme") is None
    assert store.active() == []


def test_the_store_is_a_kill_switch_view(store: KillSwitchStore) -> None:
    view: KillSwitchView = store
    assert view.active_for("a", "b") is None


def test_all_beats_charter_beats_tenant(store: KillSwitchStore) -> None:
    store.kill("tenant:acme", "tenant abuse", by="ops")
    assert store.active_for("support-triage", "acme") == ActiveKill("tenant:acme", "tenant abuse")
    assert store.active_for("support-triage", "globex") is None

    store.kill("charter:support-triage", "bad release", by="ops")
    assert store.active_for("support-triage", "acme") == ActiveKill(
        "charter:support-triage", "bad release"
    )

    store.kill("all", "provider outage", by="ops")
    assert store.active_for("support-triage", "acme") == ActiveKill("all", "provider outage")
    assert store.active_for("anything", "anyone") == ActiveKill("all", "provider outage")
    assert [kill.scope for kill in store.active()] == [
        "all",
        "charter:support-triage",
        "tenant:acme",
    ]

    store.revive("all", by="ops")
    assert store.active_for("anything", "globex") is None


def test_a_second_store_sees_a_kill_at_once(database: Database) -> None:
    # Another Database object: its own pool and dedicated connection, like another process.
    other_database = Database(database.url)
    with (
        KillSwitchStore(database, FakeClock()) as writer,
        KillSwitchStore(other_database, FakeClock()) as reader,
    ):
        assert reader.active_for("support-triage", "acme") is None  # connection now open
        writer.kill("tenant:acme", "incident 42", by="alice")
        assert reader.active_for("support-triage", "acme") == ActiveKill(
            "tenant:acme", "incident 42"
        )
        writer.revive("tenant:acme", by="alice")
        assert reader.active_for("support-triage", "acme") is None
    other_database.dispose()


def test_a_kill_from_another_process_stops_the_next_check(
    database: Database, store: KillSwitchStore
) -> None:
    assert store.active_for("support-triage", "acme") is None
    script = (
        "import sys\n"
        "from charter.core.clock import SystemClock\n"
        "from charter.execution.kill_store import KillSwitchStore\n"
        "from charter.storage import Database\n"
        "db = Database(sys.argv[1])\n"
        "KillSwitchStore(db, SystemClock()).kill('all', 'from another process', by='ops')\n"
    )
    subprocess.run([sys.executable, "-c", script, database.url], check=True, timeout=60)
    assert store.active_for("support-triage", "acme") == ActiveKill("all", "from another process")


def test_concurrent_checks_share_the_connection_safely(store: KillSwitchStore) -> None:
    store.kill("tenant:acme", "incident", by="ops")
    results: list[ActiveKill | None] = []
    errors: list[BaseException] = []

    def check() -> None:
        try:
            for _ in range(50):
                results.append(store.active_for("support-triage", "acme"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=check) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == [ActiveKill("tenant:acme", "incident")] * 400


def test_a_dropped_connection_is_reopened(store: KillSwitchStore) -> None:
    store.active_for("support-triage", "acme")
    store.close()  # as if the server had closed it
    store.kill("all", "still seen", by="ops")
    assert store.active_for("support-triage", "acme") == ActiveKill("all", "still seen")


@pytest.mark.parametrize(
    "scope",
    [
        "",
        "everything",
        "charter:",
        "tenant:",
        "team:acme",
        "charter:Support Triage",  # no charter can have this name: it would stop nothing
        "tenant:acme corp",
        "tenant:" + "a" * 200,
        " all",
    ],
)
def test_bad_scopes_are_refused(store: KillSwitchStore, scope: str) -> None:
    with pytest.raises(UserError, match=r"scope|tenant"):
        store.kill(scope, "reason", by="ops")
    with pytest.raises(UserError, match=r"scope|tenant"):
        store.revive(scope, by="ops")
    assert store.active() == []


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
def test_a_kill_needs_a_reason(store: KillSwitchStore, reason: str) -> None:
    with pytest.raises(UserError, match="needs a reason"):
        store.kill("all", reason, by="ops")
    assert store.active() == []


def test_reasons_longer_than_the_limit_are_refused(store: KillSwitchStore) -> None:
    with pytest.raises(UserError, match="keep it to 500"):
        store.kill("all", "x" * (MAX_REASON_CHARS + 1), by="ops")
    assert store.kill("all", "x" * MAX_REASON_CHARS, by="ops").reason == "x" * MAX_REASON_CHARS


@pytest.mark.parametrize("reason", ["nul\x00byte", "bell\x07", "lone \udc80 surrogate"])
def test_reasons_with_control_characters_are_refused(store: KillSwitchStore, reason: str) -> None:
    with pytest.raises(UserError, match="control characters"):
        store.kill("all", reason, by="ops")
    assert store.kill("all", "line one\nline two\tend", by="ops").reason.startswith("line one")


# "ops\n" is ops: a person's name is trimmed (issue 11); invisible characters are refused.
@pytest.mark.parametrize("by", ["", "has space", "-dash", "x" * 129, "op\u200bs", "\u043eps"])
def test_a_kill_needs_a_valid_operator(store: KillSwitchStore, by: str) -> None:
    with pytest.raises(UserError, match="not a valid identifier"):
        store.kill("all", "reason", by=by)
    store.kill("all", "reason", by="ops")
    with pytest.raises(UserError, match="not a valid identifier"):
        store.revive("all", by=by)
    assert [kill.scope for kill in store.active()] == ["all"]


def test_reviving_what_is_not_killed_names_what_is(store: KillSwitchStore) -> None:
    with pytest.raises(UserError, match=r"scope 'tenant:x' is not killed; active: none"):
        store.revive("tenant:x", by="ops")
    store.kill("tenant:acme", "incident", by="ops")
    store.kill("all", "outage", by="ops")
    with pytest.raises(UserError, match=r"not killed; active: all, tenant:acme"):
        store.revive("tenant:x", by="ops")


def test_killing_twice_changes_nothing_and_says_who_did_it(database: Database) -> None:
    clock = FakeClock()
    with KillSwitchStore(database, clock) as store:
        first = store.kill("charter:support-triage", "first reason", by="alice")
        clock.advance(60)
        with pytest.raises(UserError) as raised:
            store.kill("charter:support-triage", "second reason", by="bob")
        message = str(raised.value)
        assert "already killed by alice at 2026-01-01T00:00:00+00:00: first reason" in message
        assert "revive it first" in message
        assert store.active() == [first]


def test_an_unreachable_database_is_a_clear_error_without_the_password() -> None:
    database = Database("postgresql://x:s3cret@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailable) as raised:
        KillSwitchStore(database, FakeClock())
    assert "127.0.0.1:1/none" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    database.dispose()


def test_an_outdated_postgres_schema_is_refused(db_url: str) -> None:
    database = Database(db_url)
    try:
        if database.dialect == "sqlite":
            KillSwitchStore(database, FakeClock()).close()  # the embedded file is upgraded
        else:
            with pytest.raises(DatabaseUnavailable, match="charter db upgrade"):
                KillSwitchStore(database, FakeClock())
    finally:
        database.dispose()


def test_checks_fail_closed_when_the_database_goes_away(
    database: Database, store: KillSwitchStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert store.active_for("support-triage", "acme") is None
    store.close()

    def unreachable() -> None:
        raise OperationalError("connect", {}, Exception("connection refused"))

    monkeypatch.setattr(database.engine, "raw_connection", unreachable)
    # The next check must raise, never answer "not killed".
    with pytest.raises(DatabaseUnavailable, match="cannot read kill switches"):
        store.active_for("support-triage", "acme")


def test_a_connection_closed_by_the_server_is_reopened_once(tmp_path: Path) -> None:
    with database_url("postgres", tmp_path) as url:  # only a server can drop it
        database = Database(url)
        upgrade(database)
        with KillSwitchStore(database, FakeClock()) as store:
            assert store.active_for("support-triage", "acme") is None
            store.kill("tenant:acme", "incident", by="ops")
            with database.engine.connect() as connection:
                terminated = connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).all()
            assert terminated  # the store's dedicated connection was among them
            assert store.active_for("support-triage", "acme") == ActiveKill(
                "tenant:acme", "incident"
            )
        database.dispose()
