"""The support desk's durable effects ledger: the payment and email providers, outside Charter.

A crash test counts on it to tell how many refunds were really paid and emails really sent,
across processes and ``kill -9``; so these tests use separate ledgers on one file and real
second processes, not only one object.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest
from charter_examples.support_desk.desk import SupportDesk
from charter_examples.support_desk.effects import Effect, EffectsLedger, run_id_of
from charter_examples.support_desk.tools import EFFECTS_DB_ENV, make_resources

from tests.examples.test_support_desk import call, context

REFUND = {"ticket_id": "T-1001", "amount_usd": "45.00", "account": "acct-C-01"}
EMAIL_ARGS = {
    "to": "dana@example.com",
    "template": "refund_confirmation",
    "ticket_id": "T-1001",
    "body": "Refund issued.",
}

# A worker process: a desk from ``make_resources`` (so from SUPPORT_DESK_EFFECTS_DB) refunds
# and emails under the keys it is given, prints what it got back, and may then die by SIGKILL
# without closing anything, like a worker killed right after the effect.
WORKER = """
import json, os, signal, sys
from decimal import Decimal
from charter_examples.support_desk.tools import make_resources

key, then = sys.argv[1], sys.argv[2]
(desk,) = make_resources()
refund = desk.issue_refund(
    "T-1001", Decimal("45.00"), "acct-C-01", idempotency_key=key, authorized_by="payments-refund"
)
email = desk.send_email(
    to="dana@example.com", template="ticket_update", subject="s", body="b",
    ticket_id="T-1001", key=key + "-mail",
)
print(json.dumps({"refund": refund.refund_id, "email": email.message_id}), flush=True)
if then == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "effects.db"


@pytest.fixture
def ledger(db: Path) -> Iterator[EffectsLedger]:
    with EffectsLedger(db) as opened:
        yield opened


def worker(db: Path, key: str, then: str = "exit") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, key, then],
        env={**os.environ, EFFECTS_DB_ENV: str(db)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def desk_on(ledger: EffectsLedger) -> SupportDesk:
    desk = SupportDesk.default()
    desk.ledger = ledger
    return desk


def finish(process: subprocess.Popen[str]) -> tuple[int, dict[str, str]]:
    out, err = process.communicate(timeout=120)
    assert out, err
    return process.returncode, json.loads(out)


# -- the ledger ----------------------------------------------------------------------------


def test_first_delivery_is_recorded(ledger: EffectsLedger) -> None:
    assert ledger.effects() == []
    assert ledger.deliver("refund", "run_1:3", {"amount_usd": "45.00", "to": "a"}) == (
        "R-0001",
        True,
    )
    (effect,) = ledger.effects()
    assert effect == Effect(
        key="run_1:3",
        kind="refund",
        run_id="run_1",
        payload={"amount_usd": "45.00", "to": "a"},
        attempts=1,
        effect_id="R-0001",
        first_at=effect.first_at,
    )
    assert effect.first_at > 0


def test_a_repeated_key_counts_an_attempt_and_returns_the_first_effect(
    ledger: EffectsLedger,
) -> None:
    first = ledger.deliver("email", "run_1:4", {"body": "first"})
    assert ledger.deliver("email", "run_1:4", {"body": "second"}) == (first[0], False)
    assert ledger.deliver("email", "run_1:4", {"body": "third"}) == (first[0], False)
    (effect,) = ledger.effects()
    assert (effect.effect_id, effect.attempts) == (first[0], 3)
    assert effect.effect_id.startswith("M-")
    assert effect.payload == {"body": "first"}  # the provider keeps the first request


def test_ids_are_unique_per_key_and_effects_filter_by_kind(ledger: EffectsLedger) -> None:
    ids = [
        ledger.deliver("refund", "run_1:1", {})[0],
        ledger.deliver("email", "run_1:2", {})[0],
        ledger.deliver("refund", "run_2:1", {})[0],
    ]
    assert len(set(ids)) == 3
    assert [i[0] for i in ids] == ["R", "M", "R"]
    assert [e.key for e in ledger.effects("refund")] == ["run_1:1", "run_2:1"]
    assert [e.key for e in ledger.effects("email")] == ["run_1:2"]
    assert [e.key for e in ledger.effects()] == ["run_1:1", "run_1:2", "run_2:1"]


def test_payloads_are_canonical_json(ledger: EffectsLedger, db: Path) -> None:
    ledger.deliver("refund", "run_1:1", {"b": 1, "a": ["é", 2]})
    with closing(sqlite3.connect(db)) as raw:
        stored = raw.execute("SELECT payload FROM effects").fetchone()[0]
    assert stored == '{"a":["é",2],"b":1}'


@pytest.mark.parametrize(
    ("key", "run_id"),
    [
        ("run_0193ab:3", "run_0193ab"),  # what Run.call builds: '<run_id>:<step>'
        ("run_0193ab:3:compensate", "run_0193ab"),  # a compensation's key
        ("tenant:run-7:12", "tenant:run-7"),  # a caller-chosen run id with ':' in it
        ("idem-1", ""),  # a hand-made key names no run
    ],
)
def test_the_run_id_is_read_from_the_key(ledger: EffectsLedger, key: str, run_id: str) -> None:
    assert run_id_of(key) == run_id
    ledger.deliver("refund", key, {})
    assert ledger.effects()[0].run_id == run_id


def test_bad_input_is_refused_and_writes_nothing(ledger: EffectsLedger) -> None:
    with pytest.raises(ValueError, match=r"unknown effect kind 'sms'; expected one of"):
        ledger.deliver("sms", "run_1:1", {})
    for key in ("", "   "):
        with pytest.raises(ValueError, match="non-empty idempotency key"):
            ledger.deliver("refund", key, {})
    with pytest.raises(TypeError, match="payload must be a dict"):
        ledger.deliver("refund", "run_1:1", [1, 2])
    with pytest.raises(TypeError, match="not JSON serializable"):
        ledger.deliver("refund", "run_1:1", {"amount_usd": Decimal("1.00")})
    with pytest.raises(ValueError, match="unknown effect kind"):
        ledger.effects("sms")
    assert ledger.effects() == []
    ledger.deliver("refund", "run_1:1", {})
    with pytest.raises(ValueError, match="already used for a refund, not a email"):
        ledger.deliver("email", "run_1:1", {})
    assert [(e.kind, e.attempts) for e in ledger.effects()] == [("refund", 1)]


def test_a_closed_ledger_is_refused_and_a_ledger_is_never_pickled(db: Path) -> None:
    with EffectsLedger(db) as ledger:
        ledger.deliver("refund", "run_1:1", {})
    assert ledger.closed
    ledger.close()  # idempotent
    with pytest.raises(ValueError, match="is closed"):
        ledger.deliver("refund", "run_1:2", {})
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ledger)
    with EffectsLedger(db) as reopened:  # the file kept the effect
        assert [e.key for e in reopened.effects()] == ["run_1:1"]


def test_two_ledgers_on_one_file_dedupe_like_two_processes(db: Path) -> None:
    with EffectsLedger(db) as first, EffectsLedger(db) as second:
        refund_id, fresh = first.deliver("refund", "run_1:1", {"n": 1})
        assert fresh
        assert second.deliver("refund", "run_1:1", {"n": 1}) == (refund_id, False)
        other_id, fresh = second.deliver("refund", "run_1:2", {"n": 2})
        assert fresh
        assert other_id != refund_id
        assert first.effects() == second.effects()
        assert [(e.key, e.attempts) for e in first.effects()] == [("run_1:1", 2), ("run_1:2", 1)]


# -- other processes -----------------------------------------------------------------------


def test_a_second_process_delivering_the_same_key_dedupes(db: Path) -> None:
    _, first = finish(worker(db, "run_1:1"))
    code, second = finish(worker(db, "run_1:1"))
    assert code == 0
    assert second == first
    with EffectsLedger(db) as ledger:
        assert [(e.kind, e.key, e.attempts) for e in ledger.effects()] == [
            ("refund", "run_1:1", 2),
            ("email", "run_1:1-mail", 2),
        ]
        assert [e.effect_id for e in ledger.effects()] == [first["refund"], first["email"]]


def test_processes_starting_on_a_new_file_record_each_key_once(db: Path) -> None:
    processes = [worker(db, "run_1:1") for _ in range(4)]
    results = [finish(p) for p in processes]
    assert [code for code, _ in results] == [0, 0, 0, 0]
    assert len({json.dumps(out, sort_keys=True) for _, out in results}) == 1  # one id each
    with EffectsLedger(db) as ledger:
        assert [(e.key, e.attempts) for e in ledger.effects()] == [
            ("run_1:1", 4),
            ("run_1:1-mail", 4),
        ]


def test_processes_delivering_at_the_same_moment_pay_each_key_once(db: Path) -> None:
    # Each process opens the ledger, says it is ready and waits for "go" on stdin, so all
    # deliver together (a barrier, not a sleep); then they all deliver the same keys.
    script = """
import json, sys
from pathlib import Path
from charter_examples.support_desk.effects import EffectsLedger

ledger = EffectsLedger(Path(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
delivered = [ledger.deliver("refund", f"run_race:{i}", {"i": i}) for i in range(KEYS)]
print(json.dumps(delivered), flush=True)
"""
    keys, count = 40, 4
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script.replace("KEYS", str(keys)), str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n", process.communicate()[1]
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [p.returncode for p in processes] == [0] * count, [err for _, err in outputs]
    delivered = [json.loads(out) for out, _ in outputs]
    for i in range(keys):
        answers = [per_process[i] for per_process in delivered]
        assert len({effect_id for effect_id, _ in answers}) == 1  # one id for the key
        assert sum(first for _, first in answers) == 1  # paid by exactly one process
    with EffectsLedger(db) as ledger:
        effects = ledger.effects()
    assert [e.key for e in effects] == [f"run_race:{i}" for i in range(keys)]
    assert {e.attempts for e in effects} == {count}


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_delivered_effect_survives_kill_9_of_its_process(db: Path) -> None:
    code, out = finish(worker(db, "run_1:1", then="kill"))
    assert code == -signal.SIGKILL
    with EffectsLedger(db) as ledger:
        assert [(e.effect_id, e.attempts) for e in ledger.effects()] == [
            (out["refund"], 1),
            (out["email"], 1),
        ]
    # The killed worker's run is retried by another: still one refund and one email.
    code, again = finish(worker(db, "run_1:1"))
    assert (code, again) == (0, out)
    with EffectsLedger(db) as ledger:
        assert [e.attempts for e in ledger.effects()] == [2, 2]


# -- the desk and its tools ----------------------------------------------------------------


def test_tools_through_a_ledger_record_one_effect_per_key(ledger: EffectsLedger) -> None:
    desk = desk_on(ledger)
    refund = call("issue_refund", REFUND, context(desk, "run_1:1"))
    assert call("issue_refund", REFUND, context(desk, "run_1:1")) == refund
    sent = call("send_email", EMAIL_ARGS, context(desk, "run_1:2"))
    assert call("send_email", EMAIL_ARGS, context(desk, "run_1:2")) == sent
    # The in-memory lists hold one entry per key, with the provider's ids.
    assert [r.refund_id for r in desk.refunds] == [refund["refund_id"]]
    assert [m.message_id for m in desk.outbox] == [sent["message_id"]]
    refunds, emails = ledger.effects("refund"), ledger.effects("email")
    assert [(e.effect_id, e.key, e.run_id, e.attempts) for e in refunds] == [
        (refund["refund_id"], "run_1:1", "run_1", 2)
    ]
    assert refunds[0].payload == {**REFUND, "authorized_by": "payments-refund"}
    assert [(e.effect_id, e.attempts) for e in emails] == [(sent["message_id"], 2)]
    assert emails[0].payload == {
        "to": "dana@example.com",
        "template": "refund_confirmation",
        "subject": "Your refund for T-1001",
        "body": "Refund issued.",
        "ticket_id": "T-1001",
    }


def test_two_desks_on_one_ledger_file_pay_a_key_once(db: Path) -> None:
    """A run resumed by another worker: a fresh desk, the same provider, the same key."""
    with EffectsLedger(db) as first_ledger, EffectsLedger(db) as second_ledger:
        first, second = desk_on(first_ledger), desk_on(second_ledger)
        refund = call("issue_refund", REFUND, context(first, "run_1:1"))
        assert call("issue_refund", REFUND, context(second, "run_1:1")) == refund
        sent = call("send_email", EMAIL_ARGS, context(first, "run_1:2"))
        assert call("send_email", EMAIL_ARGS, context(second, "run_1:2")) == sent
        assert len(second.refunds) == len(second.outbox) == 1
        assert [(e.kind, e.attempts) for e in first_ledger.effects()] == [
            ("refund", 2),
            ("email", 2),
        ]


def test_calls_that_fail_deliver_nothing(ledger: EffectsLedger) -> None:
    desk = desk_on(ledger)
    with pytest.raises(KeyError, match="T-9999"):
        call("issue_refund", {**REFUND, "ticket_id": "T-9999"}, context(desk, "run_1:1"))
    with pytest.raises(ValueError, match="must be positive"):
        desk.issue_refund(
            "T-1001", Decimal(0), "a", idempotency_key="run_1:2", authorized_by="payments-refund"
        )
    with pytest.raises(KeyError, match="T-9999"):
        call("send_email", {**EMAIL_ARGS, "ticket_id": "T-9999"}, context(desk, "run_1:3"))
    with pytest.raises(PermissionError):
        call("issue_refund", REFUND, context(desk, "run_1:4", credential=False))
    assert ledger.effects() == []
    assert desk.refunds == desk.outbox == []


def test_the_ledger_is_not_part_of_the_desk_state(ledger: EffectsLedger) -> None:
    desk = desk_on(ledger)
    call("issue_refund", REFUND, context(desk, "run_1:1"))
    snapshot = desk.snapshot()
    assert "ledger" not in snapshot
    assert json.loads(json.dumps(snapshot)) == snapshot
    restored = SupportDesk.from_snapshot(snapshot)
    assert restored.ledger is None
    assert restored == desk  # the ledger is not compared
    assert "EffectsLedger" not in repr(desk)
    assert SupportDesk.from_snapshot(snapshot, ledger=ledger).ledger is ledger
    # Copying the world does not copy the provider: the copy delivers to the same ledger.
    copied = copy.deepcopy(desk)
    assert copied.ledger is ledger
    assert call("issue_refund", REFUND, context(copied, "run_1:1"))["refund_id"] == "R-0001"
    assert ledger.effects()[0].attempts == 2


def test_without_a_ledger_ids_stay_as_they_were() -> None:
    desk = SupportDesk.default()
    assert desk.ledger is None
    call("issue_refund", REFUND, context(desk, "run_1:1"))
    call("issue_refund", REFUND, context(desk, "run_1:2"))
    assert [r.refund_id for r in desk.refunds] == ["R-0001", "R-0002"]


# -- make_resources ------------------------------------------------------------------------


def test_make_resources_honours_the_effects_db_variable(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EFFECTS_DB_ENV, str(db))
    (desk,) = make_resources()
    assert isinstance(desk, SupportDesk)
    assert isinstance(desk.ledger, EffectsLedger)
    assert desk.ledger.path == db
    assert db.exists()
    call("issue_refund", REFUND, context(desk, "run_1:1"))
    desk.ledger.close()
    with EffectsLedger(db) as ledger:
        assert [e.key for e in ledger.effects()] == ["run_1:1"]


@pytest.mark.parametrize("value", [None, ""])
def test_make_resources_without_the_variable_has_no_ledger(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv(EFFECTS_DB_ENV, raising=False)
    else:
        monkeypatch.setenv(EFFECTS_DB_ENV, value)
    (desk,) = make_resources()
    assert isinstance(desk, SupportDesk)
    assert desk.ledger is None
