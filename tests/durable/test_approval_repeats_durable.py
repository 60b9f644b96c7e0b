"""Three identical refunds in one durable run: one request while it waits, one payment, and
the inbox marks the later request as a repeat of the approved one (issue 11, defect 8).

The agent loop runs a run's calls one after another, so two calls of one run never wait at
once. The second identical call can still find the first one's request pending: here the
run's wait ends (its timeout) before an approver decides, the model asks again, and the call
waits on that same request instead of filing another. Decided, it wakes that call.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy import select

from charter import Runtime, Settings
from charter.durable import DurableEngine, RunSpec, notify_decision
from charter.execution.approval_store import ApprovalRecord
from charter.storage.tables import approval_links
from tests.durable import repeat_toolkit
from tests.durable.support import wait_for, written_spec

NO_HANG = 60.0  # seconds: only stops a hang

CHARTER = """\
charter: repeat-durable
model: {provider: scripted, name: scripted, factory: "tests.durable.repeat_toolkit:model"}
prompt: prompt.md
toolkit: [tests.durable.repeat_toolkit]
tools:
  refund: {effect: irreversible}
policies:
  on_deny: continue
  require_approval_for:
    - {action: refund, when: "amount_usd > 200", reason: "refunds over $200 need a human"}
"""


def _spec(tmp_path: Path) -> RunSpec:
    return written_spec(
        tmp_path / "charter", CHARTER, prompt="Refund what is asked.\n",
        task="Refund T-1001, $350.",
    )  # fmt: skip


def test_identical_calls_share_one_pending_request_and_repeats_are_marked(
    settings: Settings, tmp_path: Path
) -> None:
    repeat_toolkit.PAID.clear()
    runtime = Runtime(settings)
    # A wait shorter than the request's life: the run stops waiting before anyone decides.
    engine = DurableEngine(
        runtime, executor_id=f"test-{uuid.uuid4().hex[:8]}", approval_timeout_seconds=1
    )
    engine.launch(reset=settings.database.startswith("sqlite"))
    try:
        runtime.roles.grant("acme", "lead", "approver", by="admin")
        store = runtime.approvals

        def pending() -> list[ApprovalRecord]:
            return store.list(tenant="acme", status="pending")

        def links() -> list[tuple[str, str]]:
            with runtime.database.engine.connect() as connection:
                rows = connection.execute(select(approval_links.c.id, approval_links.c.request_id))
                return [(row.id, row.request_id) for row in rows]

        async def scenario() -> dict[str, object]:
            task = asyncio.create_task(engine.run(_spec(tmp_path), run_id="run_repeats"))
            [first] = await asyncio.to_thread(wait_for, "the first request", pending, NO_HANG)
            # c1's wait times out; the model's c2 asks again and waits on the same request.
            [(_, linked)] = await asyncio.to_thread(wait_for, "c2 linked", links, NO_HANG)
            assert linked == first.id
            assert [r.id for r in pending()] == [first.id]  # still one request
            store.decide(first.id, "approve", by="lead", reason="checked")
            woke = notify_decision(settings, run_id="run_repeats", request_id=first.id,
                                   verdict="approve", by="lead", reason="checked")  # fmt: skip
            assert woke

            def repeat() -> list[ApprovalRecord]:
                return [r for r in pending() if r.id != first.id]

            [third] = await asyncio.to_thread(wait_for, "the third request", repeat, NO_HANG)
            earlier = store.earlier_approvals([third])[third.id]
            assert (earlier.id, earlier.status, earlier.decided_by, earlier.same_run) == (
                first.id, "executed", "lead", True,
            )  # fmt: skip
            assert earlier.describe().startswith(f"repeat of {first.id} approved by lead at ")
            return await asyncio.wait_for(task, NO_HANG)

        result = asyncio.run(scenario())
        filed = [
            (r.entry.approval_request_id, "already waiting" in r.entry.detail)
            for r in runtime.audit.records("acme")
            if r.entry.kind == "tool_call" and r.entry.outcome == "approval_required"
        ]
        assert runtime.audit.verify().ok
    finally:
        engine.destroy()
        runtime.close()

    assert result["outcome"] == "succeeded"
    calls = [(c["tool"], c["outcome"]) for c in result["tool_calls"]]
    assert calls == [
        ("refund", "approval_required"),  # c1 files; its wait expires
        ("refund", "approval_required"),  # c2 waits on c1's request; approved, wakes
        ("refund", "executed"),
        ("refund", "approval_required"),  # c3: a new request, marked a repeat; expires
    ]
    # The audit log: c2 was told it waits on c1's request; c3 filed its own.
    assert [told for _, told in filed] == [False, True, False]
    first, second, third = (request for request, _ in filed)
    assert first == second != third
    assert repeat_toolkit.PAID == ["run_repeats:3"]  # one approval, one payment
