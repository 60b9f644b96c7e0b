"""A tool call's audit record carries what the run's budget charged for it as its tool's fee.

``fee_usd`` is an optional field of the record format: plain decimal text on a tool call's
record written by this version, left out of the sealed payload when there is none (other
kinds of record, and tool calls recorded before fees were kept), so every older record hashes
and verifies exactly as before. ``charter audit verify`` accepts a sealed fee only in the
form an entry takes: a forged one is caught like any other altered payload.

Runs on SQLite and Postgres (``db_url``).
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest

from charter.contract.loader import Charter
from charter.core.canonical import canonical_json, sha256_hex
from charter.core.decision import Decision, Stage
from charter.core.events import RunIdentity, ToolCallFinished
from charter.execution.agent import run_agent
from charter.identity.principal import Principal
from charter.observability.audit import AuditLog
from charter.observability.audit_record import fee_text
from charter.observability.audit_recorder import AuditRecorder
from charter.runtime import Runtime
from charter.testing import FakeClock, ScriptedModel, reply, tool_call
from tests.execution.test_tool_fees import (
    FEE,
    NO_HANG,
    Desk,
    charter,  # noqa: F401  (a fixture)
    runtime,  # noqa: F401  (a fixture)
)
from tests.observability.test_audit import (
    assert_break,
    attacker,
    log,  # noqa: F401  (a fixture)
    make_entry,
    reseal,
    sql,
    url,  # noqa: F401  (a fixture)
)


def test_a_fee_is_sealed_read_back_and_verified(log: AuditLog) -> None:  # noqa: F811
    first = log.append(make_entry(0, fee_usd="0.05"))
    second = log.append(make_entry(1, fee_usd="0"))
    plain = log.append(make_entry(2))
    assert [r.entry.fee_usd for r in log.records()] == ["0.05", "0", None]
    assert (first.as_dict()["fee_usd"], plain.as_dict()["fee_usd"]) == ("0.05", None)
    with log.database.engine.connect() as conn:
        payloads = [json.loads(p) for (p,) in conn.exec_driver_sql(
            "SELECT payload FROM audit_records ORDER BY row_id")]  # fmt: skip
    assert [p.get("fee_usd", "absent") for p in payloads] == ["0.05", "0", "absent"]
    # Left out when there is none: a record without a fee hashes as before fees existed.
    assert plain.hash == sha256_hex(f"{plain.prev_hash}\n{canonical_json(payloads[2])}")
    assert second.hash == sha256_hex(f"{second.prev_hash}\n{canonical_json(payloads[1])}")
    assert log.verify().ok


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("-1", ValueError),
        ("NaN", ValueError),
        ("Infinity", ValueError),
        ("1e3", ValueError),
        (" 1", ValueError),
        ("0.", ValueError),
        (".5", ValueError),
        ("", ValueError),
        ("\u0661", ValueError),  # an Arabic-Indic one is not plain decimal text
        ("1" * 40, ValueError),
        (5, TypeError),
        (Decimal("0.05"), TypeError),
        (0.05, TypeError),
    ],
)
def test_a_fee_that_is_not_plain_decimal_text_is_refused(value: Any, error: type) -> None:
    with pytest.raises(error, match="fee_usd"):
        make_entry(0, fee_usd=value)


def test_fee_text_is_the_plain_form_of_an_amount() -> None:
    assert fee_text(Decimal("0.05")) == "0.05"
    assert fee_text(Decimal("1E+2")) == "100"
    assert fee_text(Decimal("0")) == "0"
    for bad in (Decimal("-0.01"), Decimal("NaN"), Decimal("Infinity")):
        with pytest.raises(ValueError, match="fee"):
            fee_text(bad)


@pytest.mark.parametrize("forged", [None, "-1", "0.05 ", 5, "abc"])
def test_a_forged_fee_is_not_a_sealed_entry(log: AuditLog, forged: Any) -> None:  # noqa: F811
    log.append(make_entry(0, fee_usd="0.05"))
    record = log.append(make_entry(1, fee_usd="0.05"))
    reseal(log, record, fee_usd=forged)
    assert_break(log.verify(), "acme", 2, "payload is not a sealed audit entry")


def test_a_fee_taken_out_of_a_sealed_record_is_caught(log: AuditLog) -> None:  # noqa: F811
    record = log.append(make_entry(0, fee_usd="0.05"))
    with attacker(log) as conn:
        payload = sql(
            conn, "SELECT payload FROM audit_records WHERE row_id = :r", r=record.row_id
        ).scalar_one()
        data = json.loads(payload)
        del data["fee_usd"]
        sql(
            conn,
            "UPDATE audit_records SET payload = :p WHERE row_id = :r",
            p=canonical_json(data),
            r=record.row_id,
        )
    assert_break(log.verify(), "acme", 1, "hash mismatch")


def tool_event(fee: Decimal | None, event_id: str) -> ToolCallFinished:
    """A tool call's event as a run publishes it, charged ``fee``."""
    run = RunIdentity(
        run_id="run_1", charter_name="c", charter_sha256="0" * 64, tenant="acme", user="u",
        service_principal="agent:c", roles=(), environment="dev", model="m:n",
        prompt_sha256="0" * 64, trace_id="0" * 31 + "1",
    )  # fmt: skip
    return ToolCallFinished(
        run=run, at=FakeClock().now(), call_id="call_1", span_id="00000000000000ab",
        tool="lookup", arguments={}, arguments_sha256="", outcome="executed", duration_ms=1.0,
        decision=Decision.allow(Stage.POLICY, "ok", "tools.lookup"), event_id=event_id,
        fee_usd=fee,
    )  # fmt: skip


def test_the_recorder_writes_the_fee_the_event_carries(log: AuditLog) -> None:  # noqa: F811
    recorder = AuditRecorder(log)
    recorder(tool_event(Decimal("0.0501"), "e-1"))
    recorder(tool_event(Decimal("1E+1"), "e-2"))
    recorder(tool_event(Decimal(0), "e-3"))
    recorder(tool_event(None, "e-4"))  # a publisher that does not know what was charged
    assert [r.entry.fee_usd for r in log.records()] == ["0.0501", "10", "0", None]
    assert log.verify().ok


def test_every_call_of_a_run_is_recorded_with_the_fee_its_result_was_charged(
    runtime: Runtime,  # noqa: F811
    charter: Charter,  # noqa: F811
) -> None:
    run = runtime.start_run(charter, Principal("alice", "acme"), resources=(Desk(),))
    model = ScriptedModel([
        reply("", tool_call("ok", x=1)), reply("", tool_call("send", to="a")),
        reply("", tool_call("ok", x=13)), reply("", tool_call("fails", x=1)),
        reply("", tool_call("write", row="r")), reply("", tool_call("keyed", x=1)),
    ])  # fmt: skip
    result = asyncio.run(asyncio.wait_for(run_agent(run, model, "go", price=None), NO_HANG))
    recorded = [
        (r.entry.tool, r.entry.outcome, r.entry.fee_usd)
        for r in runtime.audit.records("acme")
        if r.entry.run_id == run.id and r.entry.kind == "tool_call"
    ]
    assert recorded == [(c.tool, c.outcome, str(c.fee_usd)) for c in result.tool_calls]
    # ok, the send (decided, then discarded), the call that raised and the write; not the
    # refusal, the call without its credential, the discard or the compensation.
    assert [fee for _, _, fee in recorded].count(str(FEE)) == 4
    assert runtime.audit.verify().ok
