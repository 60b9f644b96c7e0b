"""A run asking for the same approval again waits on its pending request, on the durable
inbox (SQLite and Postgres) and the in-memory one: one decision, one refund (issue 11, #8)."""

from __future__ import annotations

from pathlib import Path

from charter_examples.support_desk.desk import SupportDesk

from charter import Runtime, Settings
from charter.execution.approval_store import StoreGrants
from charter.identity.secrets import EnvSecretProvider
from charter.storage import Database, upgrade
from tests.execution.harness import REFUND_ENV, call, start_example_run, tool_records
from tests.execution.test_approvals import BIG


def test_three_identical_refunds_in_one_run_are_one_request_and_one_payment(
    db_url: str, tmp_path: Path
) -> None:
    database = Database(db_url)
    upgrade(database)  # Postgres is upgraded on purpose, never by a run
    database.dispose()
    settings = Settings(home=tmp_path / "home", secrets_dir=tmp_path / "s", database_url=db_url)
    desk = SupportDesk.default()
    with Runtime(settings, secret_providers=[EnvSecretProvider(REFUND_ENV)]) as runtime:
        assert isinstance(runtime.grants, StoreGrants)
        runtime.roles.grant("acme", "lead", "approver", by="admin")
        run = start_example_run(runtime, desk=desk)

        asked = [call(run, "issue_refund", BIG) for _ in range(3)]
        assert [r.outcome for r in asked] == ["approval_required"] * 3
        ids = {r.approval.id for r in asked if r.approval}
        assert len(ids) == 1, ids
        [request_id] = ids
        assert "already waiting" not in asked[0].model_text
        for again in asked[1:]:
            assert f"(request {request_id}); the same call is already waiting" in again.model_text
        assert [r.id for r in runtime.approvals.list()] == [request_id]
        assert {r.entry.approval_request_id for r in tool_records(runtime)} == {request_id}

        runtime.approvals.decide(request_id, "approve", by="lead", reason="ok")
        paid = [call(run, "issue_refund", BIG) for _ in range(2)]
        assert [r.outcome for r in paid] == ["executed", "approval_required"]
        assert len(desk.refunds) == 1  # one decision, one refund

        # The next request for the same refund is its own, and the inbox says it repeats one.
        repeat = paid[1].approval
        assert repeat is not None
        assert repeat.id != request_id
        [record] = runtime.approvals.list(status="pending")
        earlier = runtime.approvals.earlier_approvals([record])[record.id]
        assert (earlier.id, earlier.status, earlier.same_run) == (request_id, "executed", True)


def test_the_in_memory_inbox_does_the_same(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    first, second = call(run, "issue_refund", BIG), call(run, "issue_refund", BIG)
    assert first.approval is not None
    assert second.approval is not None
    assert second.approval.id == first.approval.id
    assert "the same call is already waiting" in second.model_text
